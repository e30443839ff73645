// Backing stat -> FUSE attr, and small helpers shared by the passthrough's operations.
import type { Attr } from '../kernel/index.js';
import type { Stat } from '../../sys/index.js';

export function toAttr(s: Stat): Attr {
  return {
    // A bigint past 2^53: Number() would round it (XFS and btrfs inode numbers may be that large).
    ino: s.ino > 9007199254740991n ? s.ino : Number(s.ino),
    size: s.size,
    blocks: s.blocks,
    atime: s.atime,
    mtime: s.mtime,
    ctime: s.ctime,
    mode: s.mode,
    nlink: s.nlink,
    uid: s.uid,
    gid: s.gid,
    rdev: s.rdev,
    blksize: s.blksize,
  };
}

/** DT_* type of a mode, for dirents. */
export function direntType(mode: number): number {
  return (mode & 0o170000) >> 12;
}
