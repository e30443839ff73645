// Wire attributes (proto/session-client.ts, 64-bit values as numbers or decimal strings) as the
// kernel layer encodes them, and the attributes of the mount's own directories (the root and the
// directories leading to an export), which have no file behind them.
import type { Attr } from '../kernel/index.js';
import type { Attr as WireAttr, Caller, U64 } from '../../proto/session-client.js';
import type { RequestContext } from '../kernel/index.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

const num = (v: U64 | undefined): number => (v === undefined ? 0 : typeof v === 'number' ? v : Number(v));
export const bigOf = (v: U64 | undefined): bigint => (v === undefined ? 0n : BigInt(v));

/** st_ino is the cluster inode number (node << 48 | local id), unique across the cluster: all 64 bits. */
export function kernelAttr(a: WireAttr): Attr {
  return {
    ino: bigOf(a.ino), size: num(a.size), blocks: num(a.blocks),
    atime: { sec: num(a.atime?.sec), nsec: a.atime?.nsec ?? 0 },
    mtime: { sec: num(a.mtime?.sec), nsec: a.mtime?.nsec ?? 0 },
    ctime: { sec: num(a.ctime?.sec), nsec: a.ctime?.nsec ?? 0 },
    mode: a.mode, nlink: a.nlink, uid: a.uid, gid: a.gid, rdev: num(a.rdev), blksize: a.blksize || 4096,
  };
}

const started = { sec: Math.floor(Date.now() / 1000), nsec: 0 };

/**
 * A read-only directory of the mount itself. Its st_ino is below 2^48, which no cluster inode
 * number uses (node numbers start at 1), so it never collides with a node's file.
 */
export function syntheticDirAttr(ino: number): Attr {
  return {
    ino, size: 0, blocks: 0, atime: started, mtime: started, ctime: started,
    mode: S_IFDIR | 0o555, nlink: 2, uid: 0, gid: 0, rdev: 0, blksize: 4096,
  };
}

/** The dirent type (DT_*) of a mode: its S_IFMT bits shifted down. */
export const direntType = (mode: number): number => (mode & S_IFMT) >> 12;

/**
 * A control file of the mount (/mfs/.control/selected): every user reads and writes its own
 * process's value through it, so 0666 (nothing of another process can be reached), size 0 like a
 * /proc file (reads return what they return), owned by root.
 */
export function controlFileAttr(ino: number): Attr {
  return {
    ino, size: 0, blocks: 0, atime: started, mtime: started, ctime: started,
    mode: S_IFREG | 0o666, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096,
  };
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
/** A character or block device: not served by /mfs (it would be this machine's driver). */
export const isDevice = (mode: number): boolean => (mode & S_IFMT) === S_IFCHR || (mode & S_IFMT) === S_IFBLK;

/** Who a FUSE request is from, as the node is told (uid, gid, groups, and the thread id as pid). */
export const callerOf = (ctx: RequestContext): Caller => ({ uid: ctx.uid, gid: ctx.gid, groups: ctx.groups, pid: ctx.pid });
