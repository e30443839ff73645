// A small pool of worker threads that make one export's syscalls, so an export on a slow or hung
// file system (NFS, FUSE, a failing disk) holds up only its own requests, never the event loop.
// One job per thread at a time; jobs beyond the idle threads wait in a bounded queue, and a call
// that finds the queue full fails at once with EAGAIN (a hung export must not pile up memory).
// Errors come back as SysError with the errno read on the thread that made the call (koffi's own
// async calls lose it). Threads start on first use and are unref'd while idle.
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { SysError } from './errors.js';
import * as c from './libc.js';
import { rebuffer, type SysCallName, type SysCalls } from './offthread-calls.js';
import type { Credentials } from './credentials.js';
import type { Job, Outcome } from './offthread-worker.js';

const EAGAIN = 11;
let exitPlanned = false;

/**
 * At process exit Node joins every worker thread, and a thread stuck in a syscall on a hung file
 * system (a FUSE server that stopped answering, an NFS server gone) never returns, so the process
 * would never end. Once a pool is closed with a call still out, the process ends with _exit(2)
 * after the exit listeners registered before this one have run (the daemon's, by then).
 */
function exitWithoutJoining(): void {
  if (exitPlanned) return;
  exitPlanned = true;
  process.once('exit', (code) => c.exitNow(typeof code === 'number' ? code : 0));
}
const EIO = 5;

export interface PoolOptions {
  /** Worker threads at most (each makes one call at a time). */
  threads: number;
  /** Calls waiting for a thread at most; one more fails with EAGAIN. */
  maxQueued: number;
  /** For messages: what the pool serves (an export path). */
  name: string;
  /** Told how long each call took on its thread (ms), the wait for a thread excluded. */
  onTook?: (ms: number, fn: SysCallName) => void;
}

interface Pending { job: Job; resolve: (v: unknown) => void; reject: (e: Error) => void }

/** The worker script beside this module, or the built one when this runs from the TypeScript sources (vitest). */
function workerScript(): URL {
  const beside = new URL('./offthread-worker.js', import.meta.url);
  return existsSync(beside) ? beside : new URL('../dist/sys/offthread-worker.js', import.meta.url);
}

export class SyscallPool {
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Pending>();
  private readonly queue: Pending[] = [];
  private threads = 0;
  private nextId = 1;
  private closed = false;

  constructor(readonly options: PoolOptions) {}

  /** Calls waiting for a thread plus calls running. */
  get load(): number {
    return this.queue.length + this.running.size;
  }

  /**
   * Runs sysCalls[fn](...args) on a thread of the pool as `cred` (null: as the daemon), with
   * `umask` (>= 0) set on that thread for the call; rejects like the synchronous call would.
   */
  call<K extends SysCallName>(fn: K, args: Parameters<SysCalls[K]>, cred: Credentials | null = null, umask = -1): Promise<ReturnType<SysCalls[K]>> {
    if (this.closed) return Promise.reject(new SysError(EIO, fn));
    if (this.idle.length === 0 && this.threads >= this.options.threads && this.queue.length >= this.options.maxQueued) {
      const e = new SysError(EAGAIN, fn);
      e.message = `EAGAIN: ${fn}: export ${this.options.name} is not answering (${this.load} calls waiting on it)`;
      return Promise.reject(e);
    }
    const creds = cred && { uid: cred.uid, gid: cred.gid, groups: [...cred.groups] };
    return new Promise((resolve, reject) => {
      const p: Pending = { job: { id: this.nextId++, fn, args, cred: creds, umask }, resolve: resolve as (v: unknown) => void, reject };
      const w = this.idle.pop() ?? (this.threads < this.options.threads ? this.start() : undefined);
      if (w) this.give(w, p);
      else this.queue.push(p);
    });
  }

  /** Stops the threads (a thread stuck in a syscall goes when the call returns); pending calls fail with EIO. */
  close(): void {
    this.closed = true;
    if (this.running.size > 0) exitWithoutJoining();
    for (const p of [...this.queue, ...this.running.values()]) p.reject(new SysError(EIO, p.job.fn));
    this.queue.length = 0;
    for (const w of [...this.idle, ...this.running.keys()]) void w.terminate();
    this.idle.length = 0;
    this.running.clear();
  }

  private start(): Worker {
    const w = new Worker(workerScript());
    this.threads += 1;
    w.on('message', (o: Outcome) => this.finished(w, o));
    const lost = (why: string): void => {
      if (!this.running.has(w) && !this.idle.includes(w)) return;
      this.threads -= 1;
      const p = this.running.get(w);
      this.running.delete(w);
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      if (p) {
        const e = new SysError(EIO, p.job.fn);
        e.message = `EIO: ${p.job.fn}: syscall thread for ${this.options.name} ${why}`;
        p.reject(e);
      }
    };
    w.on('error', (err) => lost(`failed: ${err.message}`));
    w.on('exit', (code) => lost(`exited (${code})`));
    return w;
  }

  private give(w: Worker, p: Pending): void {
    this.running.set(w, p);
    // Referenced while it works, so a process waiting only on this call does not exit early.
    w.ref();
    w.postMessage(p.job);
  }

  private finished(w: Worker, o: Outcome): void {
    const p = this.running.get(w);
    this.running.delete(w);
    if (p) this.options.onTook?.(o.took, p.job.fn);
    if (p && p.job.id === o.id) {
      if (o.ok) p.resolve(rebuffer(o.value));
      else {
        const e = new SysError(o.errno, o.syscall);
        if (!o.message.startsWith(e.code)) e.message = o.message;
        p.reject(e);
      }
    }
    if (this.closed) return;
    const next = this.queue.shift();
    if (next) this.give(w, next);
    else {
      w.unref();
      this.idle.push(w);
    }
  }
}
