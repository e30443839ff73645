// Where an export's syscalls run, so that one slow or hung export stalls only itself.
//
// Inline (the common case: a local ext4/xfs/btrfs export): the call is made right here on the
// event loop, synchronously, a few microseconds; nothing pays for a thread hop. Off-thread: the
// export's own small pool of worker threads (sys/offthread.ts) makes the call with the caller's
// credentials set on that thread, and the event loop only awaits the answer; a pool whose threads
// are all stuck queues a bounded number of calls and then fails fast with EAGAIN.
//
// The unit that moves is one syscall, not one operation: an operation's code interleaves syscalls
// with LevelDB reads and writes (the handle store lives on the main thread), so it cannot run on
// another thread as a whole; a hop costs tens of microseconds, nothing next to a slow disk's call.
//
// Which exports go off-thread:
// - from the start, exports on file systems whose calls can block for long (network, cluster and
//   user-space ones, by statfs f_type: FUSE, NFS, CIFS/SMB, 9P, Ceph, AFS, Lustre, GPFS...);
// - a local export at its `strikes`-th inline call slower than `slowCallMs` within
//   `strikeWindowMs`, or at once after one inline call longer than `stallMs` (those calls have
//   stalled the loop; the next ones do not). One slightly slow call is not enough: on a loaded
//   machine a GC pause or the scheduler makes an occasional fast call look slow (this 2-core VM
//   under load showed lone 37 and 89 ms statx calls on a healthy tmpfs). It comes back
//   inline after `quietMs` in which no
//   call on its threads took longer than slowCallMs and none is pending: a disk that had a bad
//   moment gets its fast path back, one that stays slow stays off-thread.
//
// Data I/O of an inline export: writes, and reads of what the page cache holds (preadv2
// RWF_NOWAIT), are inline calls (a 1 MiB copy, ~0.1 ms: less than the two thread wake-ups of a
// pool trip on every 1 MiB request's critical path, which on this loaded 2-core VM cost more than
// the copy), judged the same way but against stallMs / 2 rather than slowCallMs. Reads that must
// wait for the disk, and fsyncs, run on libuv's pool, which LevelDB shares: an export may hold at
// most `poolSlots` of its threads at once (the rest queue), and one whose pool call has been out
// for longer than `slowDataMs` moves off-thread too, so a disk that hangs on reads cannot take the
// whole pool (an fsync holds a slot but is never judged: its time says how much it flushed).
// Off-thread exports read and write on their own threads and never touch libuv's pool.
import * as fs from 'node:fs';
import * as sys from '../sys/index.js';
import type { Credentials } from '../sys/index.js';
import { sysCalls, type SysCallName, type SysCalls } from '../sys/offthread-calls.js';
import { SyscallPool } from '../sys/offthread.js';
import { markHeadroom } from '../proto/session-codec.js';

/** Spare bytes before each read's data: room for a read reply's frame fields (id, after, tags, lengths). */
const READ_HEADROOM = 64;

export interface ExportIoSettings {
  /** An inline call slower than this moves the export off-thread (ms; config sessions.slowCallMs). */
  slowCallMs: number;
  /** A libuv pool read/write/fsync out longer than this moves the export off-thread (ms). */
  slowDataMs: number;
  /** Inline calls slower than slowCallMs within strikeWindowMs that move a local export off-thread. */
  strikes: number;
  strikeWindowMs: number;
  /** One inline call longer than this moves a local export off-thread at once (ms). */
  stallMs: number;
  /** Quiet time after which a local export that was moved off-thread comes back inline (ms). */
  quietMs: number;
  /** Worker threads per off-thread export. */
  threads: number;
  /** Calls waiting for a thread per off-thread export; one more fails with EAGAIN. */
  maxQueued: number;
  /** libuv pool threads one inline export may hold at once. */
  poolSlots: number;
}

const UV_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

export const DEFAULT_EXPORT_IO: ExportIoSettings = {
  slowCallMs: 20, slowDataMs: 1_000, strikes: 3, strikeWindowMs: 1_000, stallMs: 200, quietMs: 60_000, threads: 4, maxQueued: 256, poolSlots: Math.max(1, UV_THREADS - 1),
};

/** statfs f_type of file systems whose calls may block for long (linux/magic.h and the file systems' own headers). */
export const HANG_PRONE_FS = new Map<bigint, string>([
  [0x65735546n, 'fuse'], [0x6969n, 'nfs'], [0xff534d42n, 'cifs'], [0xfe534d42n, 'smb2'], [0x517bn, 'smb'],
  [0x01021997n, '9p'], [0x00c36400n, 'ceph'], [0x5346414fn, 'afs'], [0x6b414653n, 'afs'], [0x73757245n, 'coda'],
  [0x564cn, 'ncp'], [0x0bd00bd0n, 'lustre'], [0x47504653n, 'gpfs'], [0x19830326n, 'beegfs'], [0x01161970n, 'gfs2'],
  [0x7461636fn, 'ocfs2'], [0x20030528n, 'orangefs'],
]);

/**
 * Which export each open file's fd belongs to, so that code holding only the fd (the open-file
 * table) closes it where its export's calls run: a FUSE or NFS file's close(2) waits for the file
 * system (FLUSH), which must not happen on the event loop for a slow export.
 */
const fdOwners = new Map<number, ExportIo>();

/** Closes an fd opened by an export's io (`adopt`) on that export's io; any other fd right here. */
export function closeFd(fd: number): void {
  const io = fdOwners.get(fd);
  if (io) io.close(fd);
  else fs.closeSync(fd);
}

/**
 * Calls whose duration says how much work they were given, not how healthy the disk is: an fsync
 * of a large dirty file takes seconds on a good disk. They hold a pool slot but never move an export.
 */
const UNTIMED = new Set<SysCallName>(['fsync', 'fallocate']);

/** Calls that copy up to 1 MiB: judged against stallMs / 2, as inline data calls are (see inline()). */
const DATA_CALLS = new Set<SysCallName>(['preadNew', 'pwriteAll']);

const CLOSE_RETRY_MS = 1_000;

type Result<K extends SysCallName> = ReturnType<SysCalls[K]>;
type Args<K extends SysCallName> = Parameters<SysCalls[K]>;

export class ExportIo {
  private threaded: boolean;
  private pool: SyscallPool | undefined;
  private lastSlowAt = 0;
  /** When the recent slow inline calls ended (at most `strikes` kept). */
  private readonly strikesAt: number[] = [];
  /** Start times of this export's judged libuv pool calls still out; fsyncs are only counted. */
  private readonly poolOut = new Set<number>();
  private unjudgedOut = 0;
  private readonly poolWaiting: Array<() => void> = [];

  /**
   * @param fsName the file system's name when it is one whose calls may hang (off-thread for good), else null
   * @param log where a move between inline and off-thread is told (the daemon's stderr)
   */
  constructor(
    readonly path: string, readonly fsName: string | null, readonly settings: ExportIoSettings = DEFAULT_EXPORT_IO,
    private readonly log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  ) {
    this.threaded = fsName !== null;
  }

  /** Decides from the root fd's file system type (one fstatfs at startup). */
  static forRoot(path: string, rootFd: number, settings?: ExportIoSettings, log?: (line: string) => void): ExportIo {
    return new ExportIo(path, HANG_PRONE_FS.get(sys.fstatfs(rootFd).type) ?? null, settings, log);
  }

  /** Whether calls are waiting or running on the export's threads. */
  get busy(): boolean {
    return (this.pool?.load ?? 0) > 0;
  }

  /** Whether calls currently run on the export's own threads. */
  get offThread(): boolean {
    return this.threaded;
  }

  /** sysCalls[fn](...args) as `cred` (null: as the daemon itself), inline or on the export's threads. */
  call<K extends SysCallName>(cred: Credentials | null, fn: K, ...args: Args<K>): Promise<Result<K>> {
    return this.run(cred, -1, fn, args);
  }

  /** call() with the creator's umask in force (mkdirat, mknodat, openat with O_CREAT). */
  create<K extends SysCallName>(cred: Credentials | null, umask: number, fn: K, ...args: Args<K>): Promise<Result<K>> {
    return this.run(cred, umask & 0o777, fn, args);
  }

  /**
   * Closes an fd where its close may wait (a FUSE file's close waits for FLUSH). Errors are dropped
   * (close(2) frees the fd whatever it answers), except a full queue: then the close is tried again
   * later, as the fd stays ours until it is closed.
   */
  close(fd: number): void {
    if (fdOwners.get(fd) === this) fdOwners.delete(fd);
    const attempt = (): void => {
      this.call(null, 'close', fd).catch((err: { code?: string }) => {
        if (err.code === 'EAGAIN') setTimeout(attempt, CLOSE_RETRY_MS).unref();
      });
    };
    attempt();
  }

  /** Notes that `fd` (an open file kept beyond this call) is this export's: closeFd closes it here. */
  adopt(fd: number): number {
    fdOwners.set(fd, this);
    return fd;
  }

  /** Bytes at `offset`, at most `size` (fewer at end of file). */
  async read(fd: number, size: number, offset: number): Promise<Buffer> {
    if (this.isThreaded()) return this.pooled().call('preadNew', [fd, size, offset]);
    // Read after a few spare bytes, marked free: a session reply frame is then encoded around the
    // data in place (proto/session-codec.ts HEADROOM) instead of copying it.
    const buf = Buffer.allocUnsafeSlow(READ_HEADROOM + size).subarray(READ_HEADROOM);
    markHeadroom(buf);
    // What the page cache already holds is copied right here (preadv2 RWF_NOWAIT never waits for
    // the disk): a 1 MiB copy costs ~0.1 ms, a trip through libuv's pool two thread wake-ups, which
    // on a loaded machine cost more than the copy. Only what is not cached yet goes to the pool.
    const cached = this.inline('pread', () => sys.preadCached(fd, buf, size, offset));
    if (cached === size) return buf;
    const have = cached ?? 0;
    const n = await this.onUvPool((done) => fs.read(fd, buf, have, size - have, offset + have, done));
    const total = have + n;
    return total === buf.length ? buf : buf.subarray(0, total);
  }

  /** Writes all of `data` at `offset` (null: at the file's position, its end for O_APPEND); the bytes written. */
  async write(fd: number, data: Buffer, offset: number | null): Promise<number> {
    if (this.isThreaded()) return this.pooled().call('pwriteAll', [fd, data, offset]);
    // Inline: a write lands in the page cache (a copy, ~0.1 ms per MiB) and the writer waits for
    // its reply, so a pool trip's two thread wake-ups would be on every write's critical path. A
    // disk that throttles writers (dirty pages over the limit) makes these calls slow, and slow
    // inline calls move the export to its own threads (strike), where writes then go.
    return this.inline('pwrite', () => sysCalls.pwriteAll(fd, data, offset));
  }

  async fsync(fd: number, datasync: boolean): Promise<void> {
    if (this.isThreaded()) return this.pooled().call('fsync', [fd, datasync]);
    await this.onUvPool((done) => (datasync ? fs.fdatasync : fs.fsync)(fd, (err) => done(err, 0)), false);
  }

  /** Stops the threads (at daemon shutdown). */
  shutdown(): void {
    this.pool?.close();
    this.pool = undefined;
  }

  private run<K extends SysCallName>(cred: Credentials | null, umask: number, fn: K, args: Args<K>): Promise<Result<K>> {
    if (this.isThreaded()) return this.pooled().call(fn, args, cred, umask);
    const f = sysCalls[fn] as unknown as (...a: Args<K>) => Result<K>;
    const t0 = performance.now();
    try {
      const call = (): Result<K> => (cred ? sys.asCaller(cred, () => f(...args)) : f(...args));
      if (umask < 0) return Promise.resolve(call());
      const old = process.umask(umask);
      try {
        return Promise.resolve(call());
      } finally {
        process.umask(old);
      }
    } catch (err) {
      return Promise.reject(err);
    } finally {
      const took = performance.now() - t0;
      if (took > this.settings.slowCallMs) this.strike(took, `a ${fn} took ${took.toFixed(1)} ms`);
    }
  }

  /**
   * A data call (up to 1 MiB copied) on the event loop. It is judged against half of stallMs, not
   * slowCallMs: a 1 MiB copy on this loaded 2-core VM took 20-30 ms now and then with a healthy page
   * cache (the slowCallMs judgement moved a tmpfs export off-thread within seconds of a sequential
   * read), while a disk that throttles writers makes every write wait up to 200 ms.
   */
  private inline<T>(what: string, fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      const took = performance.now() - t0;
      if (took > this.settings.stallMs / 2) this.strike(took, `a ${what} took ${took.toFixed(1)} ms`);
    }
  }

  /** Off-thread now? Also where a local export that has been quiet long enough comes back inline. */
  private isThreaded(): boolean {
    if (!this.threaded) {
      // A pool call out for too long: this export's disk is hanging on data; stop feeding the pool.
      if (this.poolOut.size > 0) {
        const oldest = Math.min(...this.poolOut);
        if (performance.now() - oldest > this.settings.slowDataMs) this.moveOff('a data call has been out for more than ' + `${this.settings.slowDataMs} ms`);
      }
      return this.threaded;
    }
    if (this.fsName === null && (this.pool?.load ?? 0) === 0 && performance.now() - this.lastSlowAt > this.settings.quietMs) {
      this.threaded = false;
      this.log(`mfsd: export ${this.path}: no slow call for ${this.settings.quietMs} ms: its calls run inline again`);
    }
    return this.threaded;
  }

  /** A slow inline call: the export moves off-thread when it is not the only one lately. */
  private strike(took: number, why: string): void {
    const now = performance.now();
    if (took > this.settings.stallMs) {
      this.strikesAt.length = 0;
      this.moveOff(why);
      return;
    }
    this.strikesAt.push(now);
    while (this.strikesAt.length > 0 && now - this.strikesAt[0]! > this.settings.strikeWindowMs) this.strikesAt.shift();
    if (this.strikesAt.length < this.settings.strikes) return;
    this.strikesAt.length = 0;
    this.moveOff(`${why} (${this.settings.strikes} slow calls within ${this.settings.strikeWindowMs} ms)`);
  }

  private moveOff(why: string): void {
    this.lastSlowAt = performance.now();
    if (this.threaded) return;
    this.threaded = true;
    this.log(`mfsd: export ${this.path}: ${why}: its calls now run on threads of their own`);
  }

  private pooled(): SyscallPool {
    this.pool ??= new SyscallPool({
      threads: this.settings.threads, maxQueued: this.settings.maxQueued, name: this.path,
      onTook: (ms, fn) => {
        const limit = DATA_CALLS.has(fn) ? this.settings.stallMs / 2 : this.settings.slowCallMs;
        if (ms > limit && !UNTIMED.has(fn)) this.lastSlowAt = performance.now();
      },
    });
    return this.pool;
  }

  /** A libuv pool call, at most poolSlots at once for this export; a slow one moves the export off-thread. */
  private async onUvPool(start: (done: (err: Error | null, n: number) => void) => void, judged = true): Promise<number> {
    while (this.poolOut.size + this.unjudgedOut >= this.settings.poolSlots) await new Promise<void>((r) => this.poolWaiting.push(r));
    let t0 = performance.now();
    while (this.poolOut.has(t0)) t0 += 1e-6; // the set is keyed by start time: keep keys distinct
    if (judged) this.poolOut.add(t0);
    else this.unjudgedOut += 1;
    try {
      return await new Promise<number>((resolve, reject) => start((err, n) => (err ? reject(err) : resolve(n))));
    } finally {
      if (judged) this.poolOut.delete(t0);
      else this.unjudgedOut -= 1;
      const took = performance.now() - t0;
      if (judged && took > this.settings.slowDataMs) this.moveOff(`a data call took ${took.toFixed(0)} ms`);
      this.poolWaiting.shift()?.();
    }
  }
}
