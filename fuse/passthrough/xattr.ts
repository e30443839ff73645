// Extended attributes of backing inodes, by syscall (sys/). A node's descriptor is O_PATH, which
// has no f*xattr calls, so they name the inode as /proc/self/fd/N: the kernel resolves that magic
// link to the inode itself, whatever its names are now. A symlink cannot be reached that way (the
// call would follow it), and Linux allows no user.* attributes on symlinks anyway: they have none
// here, and setting one is refused as the bare directory refuses user.* on a symlink.
import * as sys from '../../sys/index.js';
import { KernelErrno } from '../kernel/index.js';
import type { Node } from './nodes.js';

const S_IFLNK = 0o120000;
/** Shared: the kernel asks for security.capability before every write, and it is never there. */
const NO_DATA = new KernelErrno('ENODATA');
const NOT_PERMITTED = new KernelErrno('EPERM');

const target = (node: Node): sys.XattrTarget => ({ path: sys.fdPath(node.fd), follow: true });
const isSymlink = (node: Node): boolean => node.type === S_IFLNK;

export function getxattr(node: Node, name: string): Buffer {
  if (isSymlink(node)) throw NO_DATA;
  const value = sys.getxattrIfExists(target(node), name);
  if (value === undefined) throw NO_DATA;
  return value;
}

export function listxattr(node: Node): Buffer {
  return isSymlink(node) ? Buffer.alloc(0) : sys.listxattr(target(node));
}

/** XATTR_CREATE / XATTR_REPLACE go to the kernel, which applies them atomically. */
export function setxattr(node: Node, name: string, value: Buffer, flags: number): void {
  if (isSymlink(node)) throw NOT_PERMITTED;
  sys.setxattr(target(node), name, value, flags);
}

export function removexattr(node: Node, name: string): void {
  if (isSymlink(node)) throw NO_DATA;
  sys.removexattr(target(node), name);
}
