// /dev/fuse I/O on the main thread's event loop, without the libuv pool. The device is pollable, so
// libuv watches it with epoll like a socket and reads each request the moment it arrives: no
// thread is parked in read() (which would pin one of the pool's 4 threads and starve every
// fs.promises call), and no request pays a hop from a reader thread to the main thread (that hop
// cost about half of each metadata operation: stat 0.43x bindfs with a reader worker, see
// bench/fuse-passthrough.ts). Replies are written synchronously: a reply write never blocks.
// Notifications can block (the kernel may wait on page locks held by requests only we can
// answer), so they go through their own worker.
//
// Node has no public API to poll an arbitrary fd. The pipe handle of `pipe_wrap` (one of the
// bindings process.binding still allows; DEP0111 is documentation-only, but the binding is gone
// under Node's permission model) opens any pollable fd as a libuv stream; net.Socket's
// `onread` then reads into one buffer of our size (the kernel refuses reads smaller than its
// largest request) instead of libuv's 64 KiB default.
import { writeSync, writevSync } from 'node:fs';
import { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
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

interface PipeHandle {
  /** Adopts fd as a libuv stream; returns 0 or a negative libuv error. */
  open(fd: number): number;
}
interface PipeWrapBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

function pipeWrap(): PipeWrapBinding {
  const binding = (process as unknown as { binding(name: string): unknown }).binding('pipe_wrap');
  return binding as PipeWrapBinding;
}

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

export interface DeviceOptions {
  bufferSize: number;
  /** One request, in a buffer of its own (copied out of the reused read buffer, or that buffer itself for a large WRITE). */
  onFrame(frame: Buffer): void;
  /** Called once when reading stops: ENODEV = unmounted, ECONNABORTED = aborted. */
  onEnd(reason: string): void;
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

  constructor(readonly fd: number) {}

  /**
   * Start reading requests. Call it after mount(8) has attached the fd to a mount (before that the
   * kernel refuses reads with EPERM); the kernel keeps INIT queued until then. From here on the
   * device owns the fd: close() (or the end of the session) closes it.
   */
  start(options: DeviceOptions): void {
    const { Pipe, constants } = pipeWrap();
    const handle = new Pipe(constants.SOCKET);
    const err = handle.open(this.fd);
    if (err !== 0) throw new Error(`cannot watch /dev/fuse fd ${this.fd}: libuv error ${err}`);
    const end = (reason: string): void => {
      if (this.ended) return;
      this.ended = true;
      options.onEnd(reason);
    };
    // net.Socket asks `buffer()` for the buffer of the next read after each callback: the same one,
    // unless the last frame kept it (a large WRITE).
    let buffer = newReadBuffer(options.bufferSize);
    let handedOver = false;
    const next = (): Buffer => {
      if (handedOver) {
        handedOver = false;
        buffer = this.spare.pop() ?? newReadBuffer(options.bufferSize);
      }
      return buffer;
    };
    const onRead = (n: number): boolean => {
      handedOver = n >= HAND_OVER_BYTES && buffer.readUInt32LE(4) === OPCODE_WRITE;
      if (!handedOver) {
        options.onFrame(copyOut(buffer, n));
        return true;
      }
      const frame = buffer.subarray(0, n);
      markWriteHeadroom(frame);
      // Before the handler runs: a synchronous one may give the buffer back at once (it is then
      // the spare that next() picks up again).
      this.lent.add(buffer.buffer);
      options.onFrame(frame);
      return true;
    };
    const stream = new Socket({
      handle,
      readable: true,
      writable: false,
      onread: { buffer: next, callback: onRead },
    } as ConstructorParameters<typeof Socket>[0]);
    stream.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? String(e)));
    stream.on('end', () => end('EOF'));
    this.stream = stream;
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

  /** Send a notification from the notify worker; resolves with the error code or undefined. */
  notify(frame: Buffer): Promise<string | undefined> {
    if (!this.notifier) {
      this.notifier = new Worker(NOTIFIER_CODE, { eval: true, workerData: { fd: this.fd } });
      this.notifier.on('message', (m: { ok: boolean; code?: string }) => this.notifyWaiters.shift()?.(m.ok ? undefined : m.code));
      this.notifier.unref();
    }
    const copy = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length);
    return new Promise((resolve) => {
      this.notifyWaiters.push(resolve);
      this.notifier!.postMessage(copy, [copy as ArrayBuffer]);
    });
  }

  /** Stop reading and close the fd (once, also when never started), and stop the notify worker. */
  async close(): Promise<void> {
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
