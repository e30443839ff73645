// Extended attributes, by syscall (sys/), run as the caller: the kernel decides who may read and
// write user.* (read/write permission, ACLs, regular files and directories only, the sticky-directory
// owner rule) and system.posix_acl_* (only the owner or root sets an ACL). mfsd keeps its own rule
// only where a root daemon keeps a capability under the caller's fsuid: trusted.* (CAP_SYS_ADMIN)
// is root only, and so is writing security.*.
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { isRoot } from './permissions.js';
import type { OpenFiles } from './open-files.js';
import { callerOf, type U64, type WireCaller } from './wire.js';

const XATTR_SIZE_MAX = 65536;

function checkXattrName(name: unknown, node: Node, writing: boolean): string {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) throw new Errno('EINVAL', 'invalid xattr name');
  if (Buffer.byteLength(name) > 255) throw new Errno('ERANGE', 'xattr name too long');
  const ns = name.slice(0, name.indexOf('.') + 1);
  if (!['user.', 'trusted.', 'security.', 'system.'].includes(ns) || name === ns) throw new Errno('EOPNOTSUPP', 'unknown xattr namespace');
  // As the kernel answers a caller without CAP_SYS_ADMIN (which setfsuid leaves to the daemon).
  if (ns === 'trusted.' && !isRoot(node.caller)) throw new Errno(writing ? 'EPERM' : 'ENODATA', 'trusted xattrs are root only');
  if (ns === 'security.' && writing && !isRoot(node.caller)) throw new Errno('EPERM', 'security xattrs are root only');
  if (writing && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  return name;
}

interface XattrIn { caller: WireCaller; handle: Buffer; name: string; fh?: U64 }

/**
 * Runs an xattr call on the node's file: through the caller's open fd (f*xattr), or through the
 * /proc link of a verified O_PATH fd, which resolves to the pinned inode itself; as the caller
 * (the failure names the syscall, never the /proc path). A symlink's
 * xattrs are never looked at (the /proc link would be followed through it): `onSymlink` answers.
 */
async function xattrCall<T>(node: Node, onSymlink: () => T, fn: (t: sys.XattrTarget) => Promise<T>): Promise<T> {
  if (sys.isLnk(node.st.mode)) return onSymlink();
  return withPinnedAsync(node, (fd, io) => fn(io ? { fd } : { path: sys.fdPath(fd), follow: true }));
}

const noXattrsOnSymlinks = (code: string) => (): never => {
  throw new Errno(code, 'no xattrs on symlinks');
};

export async function getXattr(lfs: LocalFs, files: OpenFiles, req: XattrIn): Promise<{ value: Buffer }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const name = checkXattrName(req.name, node, false);
  return { value: await xattrCall(node, noXattrsOnSymlinks('ENODATA'), (t) => node.exp.io.call(node.caller, 'getxattr', t, name)) };
}

export async function listXattr(lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; handle: Buffer; fh?: U64 }): Promise<{ names: string[] }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  // listxattr(2) needs no permission on the file, as on the bare directory.
  const list = await xattrCall(node, () => Buffer.alloc(0), (t) => node.exp.io.call(node.caller, 'listxattr', t));
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
  await xattrCall(node, noXattrsOnSymlinks('EPERM'), (t) => node.exp.io.call(node.caller, 'setxattr', t, name, value, flags));
  return {};
}

export async function removeXattr(lfs: LocalFs, files: OpenFiles, req: XattrIn): Promise<Record<string, never>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const name = checkXattrName(req.name, node, true);
  await xattrCall(node, noXattrsOnSymlinks('EPERM'), (t) => node.exp.io.call(node.caller, 'removexattr', t, name));
  return {};
}
