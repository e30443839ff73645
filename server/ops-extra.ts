// Extended attributes, by syscall (sys/).
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { withPinned, type LocalFs, type Node } from './local-fs.js';
import { checkAccess, isOwnerOrRoot, isRoot, R_OK, W_OK } from './permissions.js';
import type { OpenFiles } from './open-files.js';
import { callerOf, type U64, type WireCaller } from './wire.js';

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
