// Request/reply shapes as proto-loader decodes omfs.proto (keepCase, longs as decimal strings,
// bytes as Buffer), plus checked conversions of wire values.
import { Errno } from '../proto/errno.js';
import type { Stat, Timespec as SysTimespec } from '../sys/index.js';
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

const timespec = (t: SysTimespec): Timespec => ({ sec: String(t.sec), nsec: t.nsec });

/** Attributes as statx gave them, times to the nanosecond. */
export function toAttr(st: Stat, ino: bigint): Attr {
  return {
    ino: ino.toString(), mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: String(st.rdev),
    size: String(st.size), blocks: String(st.blocks), blksize: st.blksize,
    atime: timespec(st.atime), mtime: timespec(st.mtime), ctime: timespec(st.ctime),
  };
}

/** A wire time for utimensat: whole seconds (int64, may be negative) and 0..999999999 ns. */
export function fromWireTime(t: Timespec | null | undefined): SysTimespec {
  const sec = Number(t?.sec);
  const nsec = Number(t?.nsec);
  if (!t || !Number.isSafeInteger(sec) || !Number.isInteger(nsec) || nsec < 0 || nsec >= 1e9) throw new Errno('EINVAL', 'missing or invalid time');
  return { sec, nsec };
}
