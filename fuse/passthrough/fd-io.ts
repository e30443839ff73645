// Data I/O on open descriptors. Metadata syscalls run synchronously on the main thread on purpose:
// a passthrough of a local disk spends microseconds in each, and the libuv pool's two thread
// hand-offs per request measured 3-10x slower on create/stat/unlink (2 shared cores: pool 330
// creates/s vs bindfs 1270-1870/s). fsync and fallocate stay asynchronous: they can take long.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { ANSWERED_ELSEWHERE } from '../kernel/index.js';
import * as sys from '../../sys/index.js';

export const close = (fd: number): void => fs.closeSync(fd);
export const fsync = promisify(fs.fsync);
export const fdatasync = promisify(fs.fdatasync);

/**
 * One buffer for every inline read: a synchronous answer is written to /dev/fuse before the next
 * request is read, so it is free again by then. A fresh buffer per READ cost an mmap, page faults
 * and an munmap each (glibc serves 128 KiB and more with mmap).
 */
let inlineBuf = Buffer.allocUnsafe(0);

/**
 * A READ. Inline when every byte is in the backing page cache (preadv2 RWF_NOWAIT never waits for
 * the disk). Otherwise it must wait for the disk, and the question is who else would wait with it:
 * when no other read is on the pool and no request is waiting in /dev/fuse (`othersWaiting`), it
 * runs inline too, since a pool round trip (~50 us) only adds to the one caller's wait (grep -r, cp:
 * one process, one request at a time). With other requests about, it goes to a read worker that
 * answers it itself (`handOver`), or when none is free to the libuv pool, so disk waits overlap
 * (the kernel keeps several READs in flight). Measured for random 4 KiB reads,
 * 4 readers, cold cache: pool 7300-7600 IOPS, inline synchronous 5100-7400 (disk waits serialize).
 */
export function read(fd: number, size: number, position: number, unique: bigint, othersWaiting: () => boolean, handOver?: Hand): Buffer | Promise<Buffer> | typeof ANSWERED_ELSEWHERE {
  if (inlineBuf.length < size) inlineBuf = Buffer.allocUnsafe(size);
  const n = sys.preadCached(fd, inlineBuf, size, position);
  // A short count is the end of the file, or only a cached prefix of the range.
  if (n !== null && (n === size || position + n >= sys.fstat(fd).size)) return inlineBuf.subarray(0, n);
  if (poolReads === 0 && !othersWaiting()) {
    handOver?.prepare();
    return inlineBuf.subarray(0, fs.readSync(fd, inlineBuf, 0, size, position));
  }
  if (handOver?.take(fd, size, position, unique)) return ANSWERED_ELSEWHERE;
  return poolRead(fd, size, position);
}

/** Something that answers a READ waiting on the disk itself (see read-workers.ts). */
export interface Hand {
  /** Gets ready (a READ had to wait on the disk). */
  prepare(): void;
  /** Takes the READ (request `unique`): true if it will answer it. */
  take(fd: number, size: number, position: number, unique: bigint): boolean;
}

/** Reads on the pool right now. */
let poolReads = 0;

function poolRead(fd: number, size: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  poolReads++;
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, 0, size, position, (e, n) => {
      poolReads--;
      if (e) reject(e);
      else resolve(n === size ? buf : buf.subarray(0, n));
    }),
  );
}

export function pwrite(fd: number, data: Buffer, position: number): number {
  return fs.writeSync(fd, data, 0, data.length, position);
}

/** pwrite until all of `data` is written (a regular file takes it in one call, but need not). */
export function writeAll(fd: number, data: Buffer, offset: number): number {
  let done = 0;
  while (done < data.length) done += pwrite(fd, done === 0 ? data : data.subarray(done), offset + done);
  return done;
}
