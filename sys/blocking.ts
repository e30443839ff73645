// Calls that may wait on the disk (fallocate of a large range, for one) run on a worker thread so
// the event loop keeps serving other requests. koffi's own async calls lose errno (it lives on the
// pool thread that made the call), so the worker makes the plain synchronous call and sends errno
// back with the result. One worker, started on first use and unref'd: these calls are rare.
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { SysError } from './errors.js';

export type BlockingCall = { fn: 'fallocate'; args: [fd: number, mode: number, offset: number, len: number] };

interface Reply { id: number; ret: number; errno: number }

let worker: Worker | undefined;
let nextId = 1;
const waiting = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void; fn: string }>();

/**
 * The worker script beside this module; when this module runs from the TypeScript sources (vitest),
 * there is no .js beside it and a worker thread cannot load .ts: the built one in dist/ is used.
 */
function workerScript(): URL {
  const beside = new URL('./blocking-worker.js', import.meta.url);
  return existsSync(beside) ? beside : new URL('../dist/sys/blocking-worker.js', import.meta.url);
}

function start(): Worker {
  const w = new Worker(workerScript());
  w.unref();
  w.on('message', (r: Reply) => {
    const job = waiting.get(r.id);
    if (!job) return;
    waiting.delete(r.id);
    if (waiting.size === 0) w.unref();
    if (r.ret === -1) job.reject(new SysError(r.errno, job.fn));
    else job.resolve(r.ret);
  });
  w.on('error', (err) => {
    for (const job of waiting.values()) job.reject(err);
    waiting.clear();
    worker = undefined;
  });
  return w;
}

/** Runs the call on the blocking-call worker; rejects with SysError like the synchronous version. */
export function runBlocking(call: BlockingCall): Promise<number> {
  worker ??= start();
  const id = nextId++;
  const w = worker;
  // Referenced while a call is pending, so a process waiting only on it does not exit early.
  if (waiting.size === 0) w.ref();
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject, fn: call.fn });
    w.postMessage({ id, ...call });
  });
}
