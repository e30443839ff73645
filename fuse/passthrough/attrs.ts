// Backing stat -> FUSE attr, and small helpers shared by the passthrough's operations.
import type { BigIntStats } from 'node:fs';
import type { Attr, Timespec } from '../kernel/index.js';

const NS = 1_000_000_000n;

function ts(ns: bigint): Timespec {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function toAttr(s: BigIntStats): Attr {
  return {
    ino: Number(s.ino),
    size: Number(s.size),
    blocks: Number(s.blocks),
    atime: ts(s.atimeNs),
    mtime: ts(s.mtimeNs),
    ctime: ts(s.ctimeNs),
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    blksize: Number(s.blksize),
  };
}

/**
 * A time for fs.utimes, exact to the microsecond (Node takes no nanoseconds). libuv truncates the
 * double's fraction to whole microseconds, and near 2026 a double resolves only about 0.24 us, so
 * the plain value could land on the microsecond below: half a microsecond away from zero lands
 * inside the one intended. Node replaces a negative number with "now" but takes a numeric string
 * as is, so times before 1970 go as strings.
 */
export function toUtime(t: Timespec): number | string {
  const v = t.sec + Math.floor(t.nsec / 1000) / 1e6;
  return v < 0 ? String(v - 0.5e-6) : v + 0.5e-6;
}

/** DT_* type of a mode, for dirents. */
export function direntType(mode: number): number {
  return (mode & 0o170000) >> 12;
}
