// READs that must wait for the disk, answered by worker threads. A worker reads the range with a
// blocking pread and writes the reply to /dev/fuse itself (any thread may answer any request of
// the connection), so the data goes to the kernel the moment the disk has it. On the libuv pool
// the same READ took two hand-offs instead: main thread -> pool thread for the pread, then back
// to the main thread, which had to wake (or finish whatever it was doing) before it could write
// the reply; 4 KiB random reads by 4 readers, cold, ran at 0.62-0.69x bindfs's rate that way.
//
// One job at a time per worker, in a small shared slot: the main thread fills it and wakes the
// worker with Atomics.notify; the worker sleeps in Atomics.wait (no event loop, no messages) and
// marks the slot free again after its reply. Nothing comes back to the main thread: the request
// was answered by the worker, so the session holds no state for it (an INTERRUPT for it finds
// nothing to do, and the worker's reply, or the kernel's ENOENT for a request it gave up on,
// ends it). A descriptor in a worker's hands stays open: the kernel sends no RELEASE or FORGET
// for a file while a READ of it is unanswered.
import { Worker } from 'node:worker_threads';

/** Slot states (Int32 0). */
const STARTING = 0;
const IDLE = 1;
const JOB = 2;
const STOP = 3;
/** Slot layout: Int32 [state, fd, size, 0], Float64 [_, _, offset, unique] (both < 2^53). */
const SLOT_BYTES = 32;
const F64_OFFSET = 2;
const F64_UNIQUE = 3;

const WORKER_CODE = `
const { readSync, writevSync } = require('node:fs');
const { workerData } = require('node:worker_threads');
const i32 = new Int32Array(workerData.slot);
const f64 = new Float64Array(workerData.slot);
const header = Buffer.alloc(16);
let data = Buffer.alloc(0);
Atomics.store(i32, 0, ${IDLE});
for (;;) {
  Atomics.wait(i32, 0, ${IDLE});
  const state = Atomics.load(i32, 0);
  if (state === ${STOP}) break;
  if (state !== ${JOB}) continue;
  const fd = i32[1], size = i32[2];
  if (data.length < size) data = Buffer.allocUnsafe(size);
  let n = 0, error = 0;
  try {
    n = readSync(fd, data, 0, size, f64[${F64_OFFSET}]);
  } catch (e) {
    error = Number.isInteger(e.errno) && e.errno !== 0 ? -Math.abs(e.errno) : -5;
  }
  header.writeUInt32LE(16 + n, 0);
  header.writeInt32LE(error, 4);
  header.writeBigUInt64LE(BigInt(f64[${F64_UNIQUE}]), 8);
  try {
    writevSync(workerData.device, n > 0 ? [header, data.subarray(0, n)] : [header]);
  } catch {
    // ENOENT: the kernel gave up on the request; ENODEV: unmounted. Nobody else to tell.
  }
  Atomics.store(i32, 0, ${IDLE});
}
`;

interface Slot {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly worker: Worker;
}

export class ReadWorkers {
  private readonly slots: Slot[] = [];

  constructor(private readonly device: number, private readonly max: number) {}

  /**
   * Starts the workers, if not yet: each takes tens of milliseconds of CPU to start, which had
   * better not fall in the middle of the concurrent reads they are for. The passthrough calls it
   * at the first READ that waits on the disk.
   */
  prepare(): void {
    while (this.slots.length < this.max) this.start();
  }

  /** Gives the READ to an idle worker, which answers the kernel itself: false when none is idle (or ready yet). */
  take(fd: number, size: number, offset: number, unique: bigint): boolean {
    this.prepare();
    const slot = this.slots.find((s) => Atomics.load(s.i32, 0) === IDLE);
    if (!slot) return false;
    slot.i32[1] = fd;
    slot.i32[2] = size;
    slot.f64[F64_OFFSET] = offset;
    slot.f64[F64_UNIQUE] = Number(unique);
    Atomics.store(slot.i32, 0, JOB);
    Atomics.notify(slot.i32, 0);
    return true;
  }

  /** Stops every worker (one still reading finishes its READ first). */
  close(): void {
    for (const s of this.slots.splice(0)) {
      Atomics.store(s.i32, 0, STOP);
      Atomics.notify(s.i32, 0);
      s.worker.unref();
    }
  }

  private start(): void {
    const shared = new SharedArrayBuffer(SLOT_BYTES);
    const i32 = new Int32Array(shared);
    i32[0] = STARTING;
    const worker = new Worker(WORKER_CODE, { eval: true, workerData: { slot: shared, device: this.device } });
    // A worker that fails to start (or dies) keeps its slot busy: its READs go to the pool.
    worker.on('error', () => Atomics.store(i32, 0, STOP));
    worker.unref();
    this.slots.push({ i32, f64: new Float64Array(shared), worker });
  }
}
