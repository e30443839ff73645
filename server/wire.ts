// Request/reply shapes as proto-loader decodes omfs.proto (keepCase, longs as decimal strings,
// bytes as Buffer) or proto/session-codec.ts decodes session frames (64-bit values as numbers when
// they are safe integers, decimal strings when not), plus checked conversions of wire values.
// Replies carry 64-bit values the same way (U64Out): both encoders take numbers and decimal
// strings, and a number costs a session's encoder far less than a string (no decimal parsing).
import { Errno } from '../proto/errno.js';
import type { Stat, Timespec as SysTimespec } from '../sys/index.js';
import type { Caller } from './permissions.js';

export type U64 = string;
/** A 64-bit value in a reply: a number when it is a safe integer, else its decimal string. */
export type U64Out = number | string;
export interface WireCaller { uid: number; gid: number; groups: number[]; pid: number }
export interface Timespec { sec: U64Out; nsec: number }
export interface Attr {
  ino: U64Out; mode: number; nlink: number; uid: number; gid: number; rdev: U64Out; size: U64Out; blocks: U64Out;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}

/** A 64-bit reply value as U64Out. */
export function u64Out(v: bigint | number): U64Out {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : String(v);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
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

const timespec = (t: SysTimespec): Timespec => ({ sec: u64Out(t.sec), nsec: t.nsec });

/** Attributes as statx gave them, times to the nanosecond. */
export function toAttr(st: Stat, ino: bigint): Attr {
  return {
    ino: u64Out(ino), mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: u64Out(st.rdev),
    size: u64Out(st.size), blocks: u64Out(st.blocks), blksize: st.blksize,
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
