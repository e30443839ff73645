// Backing stat -> FUSE attr, and small helpers shared by the passthrough's operations.
import type { Attr } from '../kernel/index.js';
import type { Stat } from '../../sys/index.js';

export function toAttr(s: Stat): Attr {
  return {
    ino: Number(s.ino),
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
