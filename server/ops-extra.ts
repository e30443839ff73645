// Extended attributes (by syscall, sys/) and POSIX byte-range locks (held in the LockTable, keyed
// by the file's node-local id so that every handle and open of the same file locks together).
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { withPinned, type LocalFs, type Node } from './local-fs.js';
import { checkAccess, isOwnerOrRoot, isRoot, R_OK, W_OK } from './permissions.js';
import type { LockTable, LockType } from './locks.js';
import type { OpenFiles } from './open-files.js';
import { bigU64, callerOf, type U64, type WireCaller } from './wire.js';

const XATTR_SIZE_MAX = 65536;

function checkXattrName(name: unknown, node: Node, writing: boolean): string {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) throw new Errno('EINVAL', 'invalid xattr name');
  if (Buffer.byteLength(name) > 255) throw new Errno('ERANGE', 'xattr name too long');
  const ns = name.slice(0, name.indexOf('.') + 1);
  if (!['user.', 'trusted.', 'security.', 'system.'].includes(ns) || name === ns) throw new Errno('EOPNOTSUPP', 'unknown xattr namespace');
  if (ns === 'trusted.' && !isRoot(node.caller)) throw new Errno(writing ? 'EPERM' : 'ENODATA', 'trusted xattrs are root only');
  if (ns === 'security.' && writing && !isRoot(node.caller)) throw new Errno('EPERM', 'security xattrs are root only');
  // system.posix_acl_*: an ACL is the file's permissions; Linux lets only the owner change them.
  if (ns === 'system.' && writing && !isOwnerOrRoot(node.st, node.caller)) throw new Errno('EPERM', 'only the owner sets system xattrs');
  if (ns === 'user.' && writing && !sys.isReg(node.st.mode) && !sys.isDir(node.st.mode)) throw new Errno('EPERM', 'user xattrs only on files and directories');
  checkAccess(node.st, node.caller, writing ? W_OK : R_OK);
  if (writing && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  return name;
}

interface XattrIn { caller: WireCaller; handle: Buffer; name: string; fh?: U64 }

/**
 * Runs an xattr call on the node's file: through the caller's open fd (f*xattr), or through the
 * /proc link of a verified O_PATH fd, which resolves to the pinned inode itself. A symlink's
 * xattrs are never looked at (the /proc link would be followed through it): `onSymlink` answers.
 */
function xattrCall<T>(node: Node, onSymlink: () => T, fn: (t: sys.XattrTarget) => T): T {
  if (sys.isLnk(node.st.mode)) return onSymlink();
  return withPinned(node, (fd, io) => fn(io ? { fd } : { path: sys.fdPath(fd), follow: true }));
}

const noXattrsOnSymlinks = (code: string) => (): never => {
  throw new Errno(code, 'no xattrs on symlinks');
};

export async function getXattr(lfs: LocalFs, files: OpenFiles, req: XattrIn): Promise<{ value: Buffer }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const name = checkXattrName(req.name, node, false);
  return { value: xattrCall(node, noXattrsOnSymlinks('ENODATA'), (t) => sys.getxattr(t, name)) };
}

export async function listXattr(lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; handle: Buffer; fh?: U64 }): Promise<{ names: string[] }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  checkAccess(node.st, node.caller, R_OK);
  const list = xattrCall(node, () => Buffer.alloc(0), (t) => sys.listxattr(t));
  const names: string[] = [];
  for (let at = 0; at < list.length;) {
    let end = list.indexOf(0, at);
    if (end < 0) end = list.length;
    if (end > at) names.push(list.toString('utf8', at, end));
    at = end + 1;
  }
  return { names: isRoot(node.caller) ? names : names.filter((n) => !n.startsWith('trusted.')) };
}

/** XATTR_CREATE (EEXIST when present) and XATTR_REPLACE (ENODATA when missing) are the kernel's, atomic. */
export async function setXattr(
  lfs: LocalFs, files: OpenFiles, req: XattrIn & { value: Buffer; flags: number },
): Promise<Record<string, never>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const name = checkXattrName(req.name, node, true);
  const value = Buffer.isBuffer(req.value) ? req.value : Buffer.alloc(0);
  if (value.length > XATTR_SIZE_MAX) throw new Errno('E2BIG', 'xattr value too large');
  const flags = req.flags >>> 0;
  if (flags & ~(sys.XATTR_CREATE | sys.XATTR_REPLACE)) throw new Errno('EINVAL', 'unknown xattr flags');
  xattrCall(node, noXattrsOnSymlinks('EPERM'), (t) => sys.setxattr(t, name, value, flags));
  return {};
}

export async function removeXattr(lfs: LocalFs, files: OpenFiles, req: XattrIn): Promise<Record<string, never>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const name = checkXattrName(req.name, node, true);
  xattrCall(node, noXattrsOnSymlinks('EPERM'), (t) => sys.removexattr(t, name));
  return {};
}

export interface LockIn { caller: WireCaller; handle: Buffer; client_id: string; lock_owner: string; start: string; end: string; type: number }

const LOCK_TYPES: readonly LockType[] = ['read', 'write', 'unlock'];

async function lockArgs(lfs: LocalFs, req: LockIn) {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const type = LOCK_TYPES[req.type];
  if (type === undefined) throw new Errno('EINVAL', 'unknown lock type');
  const start = bigU64(req.start);
  const end = bigU64(req.end);
  if (end < start) throw new Errno('EINVAL', 'lock range ends before it starts');
  if (typeof req.client_id !== 'string' || req.client_id === '') throw new Errno('EINVAL', 'missing client id');
  const owner = `${req.client_id}:${bigU64(req.lock_owner)}`;
  return { key: node.id.toString(), lock: { start, end, type, owner, pid: node.caller.pid } };
}

export async function getLk(locks: LockTable, lfs: LocalFs, req: LockIn) {
  const { key, lock } = await lockArgs(lfs, req);
  const held = locks.get(key, lock);
  if (!held) return { conflict: false, start: '0', end: '0', type: 2, pid: 0 };
  return { conflict: true, start: held.start.toString(), end: held.end.toString(), type: held.type === 'read' ? 0 : 1, pid: held.pid };
}

export async function setLk(locks: LockTable, lfs: LocalFs, req: LockIn): Promise<Record<string, never>> {
  const { key, lock } = await lockArgs(lfs, req);
  locks.set(key, lock);
  return {};
}

export async function setLkW(locks: LockTable, lfs: LocalFs, req: LockIn, signal: AbortSignal): Promise<Record<string, never>> {
  const { key, lock } = await lockArgs(lfs, req);
  await locks.setWait(key, lock, signal);
  return {};
}

/** Releases every lock `owner` holds on file `key` (a close drops the process's locks on the file). */
export function unlockAll(locks: LockTable, key: string, owner: string, pid: number): void {
  locks.set(key, { start: 0n, end: 2n ** 63n - 1n, type: 'unlock', owner, pid });
}
