// /dev/fuse I/O without the libuv pool. Blocking reads sit in worker threads (a read on /dev/fuse
// waits until the kernel has a request, and on the pool it would pin one of its 4 threads per
// reader, starving every fs.promises call of the filesystem itself). Replies are written from the
// main thread: a reply write never blocks. Notifications can block (the kernel may wait on page
// locks held by requests only we can answer), so they go through their own worker.
import { writeSync, writevSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

// Inline so it runs the same from dist/ and from vitest's TypeScript. Each reader owns one buffer
// of `size` bytes (the kernel insists on room for the largest request) and hands each request to
// the main thread as a transferred ArrayBuffer holding exactly that request.
const READER_CODE = `
const { readSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const { fd, size } = workerData;
const buf = Buffer.allocUnsafe(size);
for (;;) {
  let n;
  try {
    n = readSync(fd, buf, 0, size, null);
  } catch (e) {
    // EINTR/EAGAIN: retry; ENOENT: the request was interrupted before we read it.
    if (e.code === 'EINTR' || e.code === 'EAGAIN' || e.code === 'ENOENT') continue;
    parentPort.postMessage({ end: e.code || String(e) });
    break;
  }
  if (n === 0) { parentPort.postMessage({ end: 'EOF' }); break; }
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(buf.subarray(0, n));
  parentPort.postMessage(ab, [ab]);
}
`;

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

export interface DeviceOptions {
  readers: number;
  bufferSize: number;
  onFrame(frame: Buffer): void;
  /** Called once when the first reader stops: ENODEV = unmounted, ECONNABORTED = aborted. */
  onEnd(reason: string): void;
}

export class FuseDevice {
  private readonly readers: Worker[] = [];
  private notifier: Worker | undefined;
  private readonly notifyWaiters: Array<(code: string | undefined) => void> = [];
  private ended = false;

  constructor(readonly fd: number) {}

  start(options: DeviceOptions): void {
    for (let i = 0; i < options.readers; i++) {
      const w = new Worker(READER_CODE, { eval: true, workerData: { fd: this.fd, size: options.bufferSize } });
      w.on('message', (msg: ArrayBuffer | { end: string }) => {
        if (msg instanceof ArrayBuffer) options.onFrame(Buffer.from(msg));
        else if (!this.ended) {
          this.ended = true;
          options.onEnd(msg.end);
        }
      });
      w.on('error', (err) => {
        if (!this.ended) {
          this.ended = true;
          options.onEnd(String(err));
        }
      });
      // Readers stay referenced: they are what keeps a serving process alive.
      this.readers.push(w);
    }
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

  /** Stop the workers (readers blocked in read() die with the process or on ENODEV). */
  async close(): Promise<void> {
    await Promise.all([...this.readers, ...(this.notifier ? [this.notifier] : [])].map((w) => w.terminate().catch(() => 0)));
  }
}
