// The calls an export's syscall pool (offthread.ts) may make, by name: the same functions serve the
// inline path (called right here on the event loop) and the worker threads, so a call behaves the
// same wherever it runs. Arguments and results cross threads by structured clone: numbers, strings,
// bigints, plain objects and bytes (which arrive as Uint8Array and are turned back into Buffers).
import * as s from './index.js';

/** A read into a fresh buffer: the worker owns it and hands it over (transferred, not copied). */
function preadNew(fd: number, size: number, offset: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(size);
  const n = s.pread(fd, buf, size, offset);
  return buf.subarray(0, n);
}

/** Every write of buf (a short write is continued), at `offset` or at the file's position (null). */
function pwriteAll(fd: number, buf: Buffer, offset: number | null): number {
  let done = 0;
  while (done < buf.length) {
    const n = s.pwrite(fd, buf.subarray(done), offset === null ? null : offset + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** statatIfExists of many names in one directory (a readdir batch): one trip to a worker for all. */
function statMany(dirfd: number, names: Buffer[], flags: number): Array<s.Stat | undefined> {
  return names.map((n) => {
    try {
      return s.statatIfExists(dirfd, n, flags);
    } catch {
      return undefined;
    }
  });
}

export const sysCalls = {
  statat: s.statat, statatIfExists: s.statatIfExists, fstat: s.fstat, statMany,
  openat: s.openat, close: s.close,
  mkdirat: s.mkdirat, mknodat: s.mknodat, symlinkat: s.symlinkat, readlinkat: s.readlinkat,
  unlinkat: s.unlinkat, renameat2: s.renameat2, linkat: s.linkat,
  fchownat: s.fchownat, fchmodat: s.fchmodat, fchmod: s.fchmod, utimensat: s.utimensat, faccessat2: s.faccessat2,
  fstatfs: s.fstatfs, fallocate: s.fallocate, ftruncate: s.ftruncate, fsync: s.fsync, lseek: s.lseek,
  getxattr: s.getxattr, listxattr: s.listxattr, setxattr: s.setxattr, removexattr: s.removexattr,
  getdents: s.getdents, seekdir: s.seekdir, preadNew, pwriteAll,
};

export type SysCalls = typeof sysCalls;
export type SysCallName = keyof SysCalls;

/** Bytes that crossed a thread boundary as a Uint8Array, as a Buffer again (no copy); arrays and plain objects one level down. */
export function rebuffer(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(rebuffer);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (o[k] instanceof Uint8Array) o[k] = rebuffer(o[k]);
  }
  return v;
}
