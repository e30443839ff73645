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

/** Seconds as a double for fs.utimes (Node takes no separate nanoseconds). */
export function toSeconds(t: Timespec): number {
  return t.sec + t.nsec / 1e9;
}

/** DT_* type of a mode, for dirents. */
export function direntType(mode: number): number {
  return (mode & 0o170000) >> 12;
}
