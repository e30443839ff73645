// /dev/fuse I/O on the main thread's event loop, without the libuv pool. The device is pollable, so
// libuv watches it with epoll like a socket and reads each request the moment it arrives: no
// thread is parked in read() (which would pin one of the pool's 4 threads and starve every
// fs.promises call), and no request pays a hop from a reader thread to the main thread (that hop
// cost about half of each metadata operation: stat 0.43x bindfs with a reader worker, see
// bench/fuse-passthrough.ts). Replies are written synchronously: a reply write never blocks.
// Notifications can block (the kernel may wait on page locks held by requests only we can
// answer), so they go through their own worker.
//
// sys/fd-stream.ts makes the fd a libuv stream; net.Socket's `onread` then reads into one buffer of
// our size (the kernel refuses reads smaller than its largest request) instead of libuv's 64 KiB
// default.
import { writeSync, writevSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { Worker } from 'node:worker_threads';
import { readStreamOfFd } from '../../sys/fd-stream.js';
import { closeFuseDevice } from './mount.js';

const NOTIFIER_CODE = `
const { writeSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
parentPort.on('message', (ab) => {
  try {
    writeSync(workerData.fd, new Uint8Array(ab));
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, code: e.code || String(e) });
  }
});
`;

/** The first n bytes of the shared read buffer, in a buffer of their own. */
function copyOut(buffer: Buffer, n: number): Buffer {
  const frame = Buffer.allocUnsafe(n);
  buffer.copy(frame, 0, 0, n);
  return frame;
}

const OPCODE_WRITE = 16;
/** fuse_in_header + fuse_write_in: where a WRITE's size is (write_in.size) and its payload starts. */
const WRITE_SIZE_AT = 40 + 16;
const WRITE_HEADER_BYTES = 80;
/**
 * Spare bytes before each read buffer. With the request's own headers (no longer read once it is
 * decoded), they are the headroom in front of a handed-over WRITE's payload, marked under
 * Symbol.for('omfs.headroom') (the convention of proto/session-codec.ts HEADROOM, which this layer
 * may not import): the /mfs mount encodes its session Write frame there instead of copying 1 MiB.
 */
const READ_HEADROOM = 512;
const HEADROOM = Symbol.for('omfs.headroom');
/** Read buffers kept for reuse (giveBack): one per WRITE the kernel may have in flight is plenty. */
const MAX_SPARE = 8;

function newReadBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(READ_HEADROOM + size).subarray(READ_HEADROOM);
}

/** Marks the memory before a WRITE frame's payload as free (see READ_HEADROOM); a malformed frame gets no mark. */
function markWriteHeadroom(frame: Buffer): void {
  const payload = frame.readUInt32LE(WRITE_SIZE_AT);
  if (payload + WRITE_HEADER_BYTES !== frame.length) return;
  (frame.buffer as ArrayBufferLike & { [HEADROOM]?: number })[HEADROOM] = frame.byteOffset + WRITE_HEADER_BYTES;
}
/**
 * A WRITE frame at least this large keeps the read buffer itself (the device reads the next request
 * into a new one) instead of being copied out: its payload then goes to the filesystem with no
 * copy at all. Smaller frames are copied, so the read buffer is not replaced for every metadata op.
 */
const HAND_OVER_BYTES = 64 * 1024;

/**
 * Busy polling. A client waiting on a FUSE request sleeps on one CPU while this thread sleeps in
 * epoll on another; on a VM each of those wakeups is an interrupt through the hypervisor, and on
 * the 2-vCPU machine a cold lstat through the mount took ~135 µs against ~90 µs with this thread
 * still awake when the next request came (same measure, bench/fuse-passthrough.ts). So once every
 * request is answered, the device keeps reading for a short while before it goes back to epoll.
 * It backs off when the spins find nothing (a client that pauses between calls), and it yields to
 * the event loop at least every SPIN_SLICE_US even while requests keep coming.
 */
export interface BusyPoll {
  /** How long to keep reading after the last answer, in microseconds (0: never). */
  microseconds: number;
  /** A read(2) of the (non-blocking) device that never throws: bytes read, or -errno (-EAGAIN: nothing yet). */
  readNow(fd: number, into: Buffer): number;
  /**
   * Called between two reads that found nothing: sched_yield(2). The client whose answer was just
   * written is often woken on this very CPU, and the scheduler may leave it waiting while the spin
   * runs: in a listing of 3000 names, a third of the replies reached their reader only once the
   * 200 us spin was over.
   */
  idle?(): void;
}
/**
 * A default budget: longer than most of a client's pauses between two calls. Measured on the 2-vCPU
 * VM: 10-30 us for find and grep, but 40-70 us (p50 47, p90 73, p99 106) for a Node program awaiting
 * fs.promises calls one at a time, whose answer hops from a libuv worker to its main thread. A
 * 50 us budget caught 81 of 10 000 cold lstats of such a loop (the backoff then stopped it spinning);
 * 200 us caught 80%, and the loop went from 165-230 to 100-160 us per lstat (bindfs: 96-117).
 */
export const DEFAULT_BUSY_POLL_US = 200;
const SPIN_SLICE_US = 2000;
const EAGAIN = constants.errno.EAGAIN;
/** Spins skipped at most after empty ones: a spin in MAX_SKIP + 1 when clients pause between calls. */
const MAX_SKIP = 64;
/**
 * How far the budget may grow, as a multiple of the configured one. A spin that found nothing is
 * judged by when the next request came: soon after (within the largest budget), the client is just
 * slower than the budget, which doubles; later, the client pauses, and the budget goes back to the
 * configured one (and spins are skipped, MAX_SKIP). As KVM's halt polling grows and shrinks its
 * window. In a cold listing of 3000 names each reply kept its reader 250-290 us (the kernel caches
 * the entries), just over 200: every spin missed, and each READDIR, served from memory in 40 us,
 * took 160-310 us with the wakeup.
 */
const MAX_BUDGET_FACTOR = 4;

export interface DeviceOptions {
  bufferSize: number;
  /** One request, in a buffer of its own (copied out of the reused read buffer, or that buffer itself for a large WRITE). */
  onFrame(frame: Buffer): void;
  /** Called once when reading stops: ENODEV = unmounted, ECONNABORTED = aborted. */
  onEnd(reason: string): void;
  busyPoll?: BusyPoll;
  /** Whether every request read so far is answered: spinning while one waits on the event loop would stall it. */
  allAnswered?(): boolean;
}

export class FuseDevice {
  private stream: Socket | undefined;
  private notifier: Worker | undefined;
  private readonly notifyWaiters: Array<(code: string | undefined) => void> = [];
  private ended = false;
  /** Read buffers handed over with a WRITE frame, by their memory: giveBack() takes only these. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  /** Read buffers given back, used before allocating new ones (each new 1 MiB Buffer brings V8's next full GC closer). */
  private readonly spare: Buffer[] = [];
  /** Reads the next request without waiting, when start() was given a BusyPoll. */
  private spin: { spin(): void; arrived(): void } | undefined;

  constructor(readonly fd: number) {}

  /**
   * Start reading requests. Call it after mount(8) has attached the fd to a mount (before that the
   * kernel refuses reads with EPERM); the kernel keeps INIT queued until then. From here on the
   * device owns the fd: close() (or the end of the session) closes it.
   */
  start(options: DeviceOptions): void {
    const end = (reason: string): void => {
      if (this.ended) return;
      this.ended = true;
      options.onEnd(reason);
    };
    // net.Socket asks `buffer()` for the buffer of the next read right after each callback, and
    // keeps it registered until that read: the same one, unless the last frame kept it (a large WRITE).
    const newBuffer = (): Buffer => this.spare.pop() ?? newReadBuffer(options.bufferSize);
    let buffer = newReadBuffer(options.bufferSize);
    let handedOver = false;
    const next = (): Buffer => {
      if (handedOver) {
        handedOver = false;
        buffer = newBuffer();
      }
      return buffer;
    };
    /** Hands the frame of n bytes in `from` to the session; true if it kept `from` itself (a large WRITE). */
    const take = (from: Buffer, n: number): boolean => {
      if (n < HAND_OVER_BYTES || from.readUInt32LE(4) !== OPCODE_WRITE) {
        options.onFrame(copyOut(from, n));
        return false;
      }
      const frame = from.subarray(0, n);
      markWriteHeadroom(frame);
      // Before the handler runs: a synchronous one may give the buffer back at once (it is then
      // a spare for the next new buffer).
      this.lent.add(from.buffer);
      options.onFrame(frame);
      return true;
    };
    if (options.busyPoll && options.busyPoll.microseconds > 0) {
      // The spin reads into a buffer of its own: the stream's is registered for its next read
      // whatever the spin does meanwhile, so it must never be lent by a frame the spin read.
      const poll = options.busyPoll;
      let spinBuffer: Buffer | undefined;
      const read = (): number => (this.ended ? 0 : poll.readNow(this.fd, (spinBuffer ??= newBuffer())));
      const taken = (n: number): void => {
        if (take(spinBuffer!, n)) spinBuffer = undefined;
      };
      this.spin = spinner(poll, read, taken, options.allAnswered ?? (() => true));
    }
    const onRead = (n: number): boolean => {
      this.spin?.arrived();
      handedOver = take(buffer, n);
      this.spinIfIdle();
      return true;
    };
    const stream = readStreamOfFd(this.fd, { onread: { buffer: next, callback: onRead } });
    stream.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? String(e)));
    stream.on('end', () => end('EOF'));
    this.stream = stream;
  }

  /** Busy-poll the device for the next request (see BusyPoll), if start() was given one; call it when every request is answered. */
  spinIfIdle(): void {
    this.spin?.spin();
  }

  /**
   * A handed-over WRITE frame (any view of it, e.g. its payload) that nobody will read again comes
   * back to be read into. Only the session's owner knows that moment (see SessionOptions.reuseWriteBuffers).
   */
  giveBack(view: Buffer): void {
    const memory = view.buffer;
    if (!this.lent.has(memory) || this.spare.length >= MAX_SPARE) return;
    this.lent.delete(memory);
    delete (memory as ArrayBufferLike & { [HEADROOM]?: number })[HEADROOM];
    this.spare.push(Buffer.from(memory, READ_HEADROOM, memory.byteLength - READ_HEADROOM));
  }

  /** Write one reply. Returns the error code, or undefined on success. */
  reply(pieces: Buffer | Buffer[]): string | undefined {
    try {
      if (Buffer.isBuffer(pieces)) writeSync(this.fd, pieces);
      else if (pieces.length === 1) writeSync(this.fd, pieces[0]!);
      else writevSync(this.fd, pieces);
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  }

  /** Start the notify worker if it is not running yet. */
  prepare(): Worker {
    if (!this.notifier) {
      this.notifier = new Worker(NOTIFIER_CODE, { eval: true, workerData: { fd: this.fd } });
      this.notifier.on('message', (m: { ok: boolean; code?: string }) => this.notifyWaiters.shift()?.(m.ok ? undefined : m.code));
      this.notifier.unref();
    }
    return this.notifier;
  }

  /** Send a notification from the notify worker; resolves with the error code or undefined. */
  notify(frame: Buffer): Promise<string | undefined> {
    const notifier = this.prepare();
    const copy = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length);
    return new Promise((resolve) => {
      this.notifyWaiters.push(resolve);
      // Copied, not transferred: detaching an ArrayBuffer, once in the process's life, makes V8
      // throw away all its optimized code that reads Buffers (the first listing after a change in
      // the source then ran interpreted, 21 ms instead of 7).
      notifier.postMessage(copy);
    });
  }

  /** Stop reading and close the fd (once, also when never started), and stop the notify worker. */
  async close(): Promise<void> {
    this.spin = undefined; // the fd is about to be closed, and its number reused
    if (!this.stream && !this.ended) {
      this.ended = true;
      closeFuseDevice(this.fd);
    }
    const closed = this.stream && !this.stream.destroyed ? new Promise((r) => this.stream!.once('close', r)) : undefined;
    this.stream?.destroy();
    await closed;
    await this.notifier?.terminate().catch(() => 0);
  }
}

/**
 * The busy-poll loop of one device: read and handle requests as long as each comes within the
 * budget of the previous answer, every request is answered synchronously, and the slice lasts.
 * Re-entry (an answer sent from inside the loop) is a no-op. `arrived` is told of each request the
 * event loop read (the spin was over or skipped), to adapt the budget (MAX_BUDGET_FACTOR).
 */
function spinner(poll: BusyPoll, read: () => number, take: (n: number) => void, allAnswered: () => boolean): { spin(): void; arrived(): void } {
  const idle = poll.idle ?? (() => {});
  const base = BigInt(Math.round(poll.microseconds * 1000));
  const maxBudget = base * BigInt(MAX_BUDGET_FACTOR);
  const slice = BigInt(SPIN_SLICE_US * 1000);
  let budget = base;
  let spinning = false;
  let skip = 0;
  let skipsLeft = 0;
  /** When the last spin gave up empty-handed, until the next request comes. */
  let gaveUpAt: bigint | undefined;
  const spin = (): void => {
    if (spinning || !allAnswered()) return;
    if (skipsLeft > 0) {
      skipsLeft--;
      return;
    }
    spinning = true;
    try {
      const start = process.hrtime.bigint();
      let last = start;
      let found = false;
      for (;;) {
        const n = read();
        const now = process.hrtime.bigint();
        if (n > 0) {
          found = true;
          take(n);
          if (!allAnswered() || now - start > slice) break;
          last = process.hrtime.bigint();
        } else if (n === 0 || n !== -EAGAIN || now - last > budget) {
          if (n === -EAGAIN) gaveUpAt = now;
          break; // 0: the device is closed; another error: the event loop's read reports it
        } else {
          idle();
        }
      }
      skip = found ? 0 : Math.min(MAX_SKIP, skip * 2 || 1);
      skipsLeft = skip;
    } finally {
      spinning = false;
    }
  };
  const arrived = (): void => {
    if (gaveUpAt === undefined) return;
    const late = process.hrtime.bigint() - gaveUpAt;
    gaveUpAt = undefined;
    if (late <= maxBudget) {
      // Missed by a little: spin longer, and at once.
      budget = budget * 2n < maxBudget ? budget * 2n : maxBudget;
      skip = 0;
      skipsLeft = 0;
    } else {
      budget = base;
    }
  };
  return { spin, arrived };
}
