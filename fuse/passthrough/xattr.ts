// Extended attributes of backing inodes, by syscall (sys/). An O_PATH descriptor has no f*xattr
// calls, so a node is named as /proc/self/fd/N: the kernel resolves that magic link to the inode
// itself, whatever its names are now. That would follow a symlink, so a symlink's own xattrs are
// reached by its latest name in its directory with the *xattrat calls (Linux 6.13), after checking
// the name still holds that inode. Without those calls, or with the name gone, a symlink shows no
// xattrs and refuses to get one.
import * as sys from '../../sys/index.js';
import { KernelErrno } from '../kernel/index.js';
import { keyOf, type Node, type NodeTable } from './nodes.js';

const S_IFLNK = 0o120000;
/** Shared: the kernel asks for security.capability before every write, and it is never there. */
const NO_DATA = new KernelErrno('ENODATA');
const NOT_PERMITTED = new KernelErrno('EPERM');

const byPath = (node: Node): sys.XattrTarget => ({ path: sys.fdPath(node.fd), follow: true });

/** The symlink's (directory fd, name), if its recorded name still holds it. */
function symlinkName(nodes: NodeTable, node: Node): { dir: number; name: Buffer } | undefined {
  const link = node.link;
  if (!link || !nodes.isLive(link.parent)) return undefined;
  const st = sys.statatIfExists(link.parent.fd, link.name, sys.AT_SYMLINK_NOFOLLOW);
  return st && keyOf(st) === node.key ? { dir: link.parent.fd, name: link.name } : undefined;
}

export function getxattr(nodes: NodeTable, node: Node, name: string): Buffer {
  if (node.type === S_IFLNK) {
    const at = symlinkName(nodes, node);
    const value = at && sys.getxattrAt(at.dir, at.name, name);
    if (!value) throw NO_DATA;
    return value;
  }
  const value = sys.getxattrIfExists(byPath(node), name);
  if (value === undefined) throw NO_DATA;
  return value;
}

/**
 * The names, as listxattr(2) gives them to this caller: a filesystem lists trusted.* only to a
 * caller with CAP_SYS_ADMIN, and we list as root, so they are dropped here for anyone but root.
 */
export function listxattr(nodes: NodeTable, node: Node, callerUid: number): Buffer {
  let names: Buffer;
  if (node.type === S_IFLNK) {
    const at = symlinkName(nodes, node);
    names = (at && sys.listxattrAt(at.dir, at.name)) ?? Buffer.alloc(0);
  } else {
    names = sys.listxattr(byPath(node));
  }
  return callerUid === 0 ? names : withoutTrusted(names);
}

const TRUSTED = Buffer.from('trusted.');

function withoutTrusted(names: Buffer): Buffer {
  const kept: Buffer[] = [];
  for (let at = 0; at < names.length;) {
    let end = names.indexOf(0, at);
    if (end < 0) end = names.length;
    const name = names.subarray(at, end + 1); // with its NUL
    if (!name.subarray(0, TRUSTED.length).equals(TRUSTED)) kept.push(name);
    at = end + 1;
  }
  return Buffer.concat(kept);
}

/** XATTR_CREATE / XATTR_REPLACE go to the kernel, which applies them atomically. */
export function setxattr(nodes: NodeTable, node: Node, name: string, value: Buffer, flags: number): void {
  if (node.type === S_IFLNK) {
    const at = symlinkName(nodes, node);
    if (!at || !sys.setxattrAt(at.dir, at.name, name, value, flags)) throw NOT_PERMITTED;
    return;
  }
  sys.setxattr(byPath(node), name, value, flags);
}

export function removexattr(nodes: NodeTable, node: Node, name: string): void {
  if (node.type === S_IFLNK) {
    const at = symlinkName(nodes, node);
    if (!at || !sys.removexattrAt(at.dir, at.name, name)) throw NO_DATA;
    return;
  }
  sys.removexattr(byPath(node), name);
}
