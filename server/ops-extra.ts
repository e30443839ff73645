// Extended attributes (through the attr package's getfattr/setfattr: Node has no xattr API) and
// POSIX byte-range locks (held in the LockTable, keyed by the file's node-local id so that every
// handle and open of the same file locks together).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Errno } from '../proto/errno.js';
import { withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { checkAccess, isRoot, R_OK, W_OK } from './permissions.js';
import type { LockTable, LockType } from './locks.js';
import { bigU64, callerOf, type WireCaller } from './wire.js';

const run = promisify(execFile);
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const XATTR_SIZE_MAX = 65536;

function checkXattrName(name: unknown, node: Node, writing: boolean): string {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) throw new Errno('EINVAL', 'invalid xattr name');
  if (Buffer.byteLength(name) > 255) throw new Errno('ERANGE', 'xattr name too long');
  const ns = name.slice(0, name.indexOf('.') + 1);
  if (!['user.', 'trusted.', 'security.', 'system.'].includes(ns) || name === ns) throw new Errno('EOPNOTSUPP', 'unknown xattr namespace');
  if (ns === 'trusted.' && !isRoot(node.caller)) throw new Errno(writing ? 'EPERM' : 'ENODATA', 'trusted xattrs are root only');
  if (ns === 'security.' && writing && !isRoot(node.caller)) throw new Errno('EPERM', 'security xattrs are root only');
  if (ns === 'user.' && writing && !node.st.isFile() && !node.st.isDirectory()) throw new Errno('EPERM', 'user xattrs only on files and directories');
  checkAccess(node.st, node.caller, writing ? W_OK : R_OK);
  if (writing && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  return name;
}

/** Runs getfattr/setfattr on the pinned file, mapping their messages back to errnos. */
async function attrTool(node: Node, tool: 'getfattr' | 'setfattr', args: string[]): Promise<Buffer> {
  // The tools would follow a symlink (through the /proc link too): a symlink's xattrs are never
  // looked at, so nothing outside the export can be read or changed through one.
  if (node.st.isSymbolicLink()) {
    if (tool === 'setfattr') throw new Errno('EPERM', 'no xattrs on symlinks');
    if (args.includes('--only-values')) throw new Errno('ENODATA', 'no xattrs on symlinks');
    return Buffer.alloc(0);
  }
  return withPinnedAsync(node, async (pinned) => {
    const path = pinned.replace('/proc/self/', `/proc/${process.pid}/`);
    try {
      const { stdout } = await run(tool, [...(tool === 'getfattr' ? ['--absolute-names'] : []), ...args, path], { encoding: 'buffer', maxBuffer: 4 * XATTR_SIZE_MAX });
      return stdout;
    } catch (err) {
      const msg = String((err as { stderr?: Buffer }).stderr ?? '');
      if (/No such attribute/.test(msg)) throw new Errno('ENODATA', 'no such attribute');
      if (/not supported/i.test(msg)) throw new Errno('EOPNOTSUPP', msg.trim());
      if (/Permission denied/.test(msg)) throw new Errno('EACCES', msg.trim());
      if (/No space/.test(msg)) throw new Errno('ENOSPC', msg.trim());
      throw new Errno('EIO', `${tool} failed: ${msg.trim()}`);
    }
  });
}

export async function getXattr(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; name: string }): Promise<{ value: Buffer }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const name = checkXattrName(req.name, node, false);
  return { value: await attrTool(node, 'getfattr', ['--only-values', '-n', name]) };
}

export async function listXattr(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<{ names: string[] }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  checkAccess(node.st, node.caller, R_OK);
  const out = (await attrTool(node, 'getfattr', ['-m', '-'])).toString('utf8');
  const names = out.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return { names: isRoot(node.caller) ? names : names.filter((n) => !n.startsWith('trusted.')) };
}

async function hasXattr(node: Node, name: string): Promise<boolean> {
  try {
    await attrTool(node, 'getfattr', ['--only-values', '-n', name]);
    return true;
  } catch (err) {
    if ((err as Errno).code === 'ENODATA') return false;
    throw err;
  }
}

/** XATTR_CREATE/XATTR_REPLACE are checked before setting: a concurrent set can slip between (documented). */
export async function setXattr(
  lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; name: string; value: Buffer; flags: number },
): Promise<Record<string, never>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const name = checkXattrName(req.name, node, true);
  const value = Buffer.isBuffer(req.value) ? req.value : Buffer.alloc(0);
  if (value.length > XATTR_SIZE_MAX) throw new Errno('E2BIG', 'xattr value too large');
  if (req.flags & ~(XATTR_CREATE | XATTR_REPLACE)) throw new Errno('EINVAL', 'unknown xattr flags');
  if (req.flags & (XATTR_CREATE | XATTR_REPLACE)) {
    const has = await hasXattr(node, name);
    if ((req.flags & XATTR_CREATE) && has) throw new Errno('EEXIST', 'attribute exists');
    if ((req.flags & XATTR_REPLACE) && !has) throw new Errno('ENODATA', 'no such attribute');
  }
  await attrTool(node, 'setfattr', ['-n', name, '-v', `0s${value.toString('base64')}`]);
  return {};
}

export async function removeXattr(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; name: string }): Promise<Record<string, never>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const name = checkXattrName(req.name, node, true);
  await attrTool(node, 'setfattr', ['-x', name]);
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
