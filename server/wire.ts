// Request/reply shapes as proto-loader decodes omfs.proto (keepCase, longs as decimal strings,
// bytes as Buffer), plus checked conversions of wire values.
import type { Stats } from 'node:fs';
import { Errno } from '../proto/errno.js';
import type { Caller } from './permissions.js';

export type U64 = string;
export interface WireCaller { uid: number; gid: number; groups: number[]; pid: number }
export interface Timespec { sec: U64; nsec: number }
export interface Attr {
  ino: U64; mode: number; nlink: number; uid: number; gid: number; rdev: U64; size: U64; blocks: U64;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}
export interface Entry { handle: Buffer; attr: Attr }

/** A caller as the server trusts it: numbers in range, at most 256 groups (NGROUPS is larger, but no caller needs it). */
export function callerOf(c: WireCaller | null | undefined): Caller {
  if (!c) throw new Errno('EINVAL', 'missing caller');
  const groups = Array.isArray(c.groups) ? c.groups : [];
  if (groups.length > 256) throw new Errno('EINVAL', 'too many groups');
  return { uid: c.uid >>> 0, gid: c.gid >>> 0, groups: groups.map((g) => g >>> 0), pid: c.pid >>> 0 };
}

/** A uint64 from the wire as a safe integer (offsets and sizes beyond 2^53 are refused). */
export function u64(value: U64 | number | undefined, what: string): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new Errno('EFBIG', `${what} out of range`);
  return n;
}

export function bigU64(value: U64 | number | undefined): bigint {
  try {
    return BigInt(value ?? 0);
  } catch {
    throw new Errno('EINVAL', 'not an integer');
  }
}

/** A Stats time (ms as a double, good to about a microsecond) as seconds and nanoseconds. */
function timespec(ms: number): Timespec {
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6)));
  return { sec: String(sec), nsec };
}

export function toAttr(st: Stats, ino: bigint): Attr {
  return {
    ino: ino.toString(), mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: String(st.rdev),
    size: String(st.size), blocks: String(st.blocks), blksize: st.blksize,
    atime: timespec(st.atimeMs), mtime: timespec(st.mtimeMs), ctime: timespec(st.ctimeMs),
  };
}
