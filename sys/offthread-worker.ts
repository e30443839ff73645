// One thread of an export's syscall pool (offthread.ts): plain synchronous calls from the shared
// table, with the caller's filesystem credentials set on THIS thread (setfsuid/setfsgid and the raw
// setgroups syscall are per thread) and errno read on this same thread. The thread unshares its
// fs_struct (CLONE_FS) first, so a creator's umask set here is this thread's alone: process.umask
// on the event loop and this thread no longer see each other's.
import { parentPort } from 'node:worker_threads';
import * as c from './libc.js';
import { asCaller, type Credentials } from './credentials.js';
import { rebuffer, sysCalls, type SysCallName } from './offthread-calls.js';

export interface Job { id: number; fn: SysCallName; args: unknown[]; cred: Credentials | null; umask: number }
export type Outcome =
  | { id: number; ok: true; value: unknown; took: number }
  | { id: number; ok: false; errno: number; syscall: string; message: string; took: number };

const CLONE_FS = 0x200;
const ownUmask = c.unshare(CLONE_FS) === 0;

function run(m: Job): unknown {
  const fn = sysCalls[m.fn] as (...a: unknown[]) => unknown;
  if (typeof fn !== 'function') throw new Error(`unknown call ${String(m.fn)}`);
  const args = m.args.map(rebuffer);
  const call = (): unknown => (m.cred ? asCaller(m.cred, () => fn(...args)) : fn(...args));
  if (m.umask < 0) return call();
  // Without a private fs_struct the umask would leak into the whole process: refuse instead.
  if (!ownUmask) throw Object.assign(new Error('this thread has no umask of its own'), { errno: 5, syscall: 'unshare' });
  const old = c.umask(m.umask & 0o777);
  try {
    return call();
  } finally {
    c.umask(old);
  }
}

parentPort!.on('message', (m: Job) => {
  const t0 = performance.now();
  let out: Outcome;
  let transfer: ArrayBuffer[] = [];
  try {
    const value = run(m);
    // preadNew's buffer is this thread's own allocation: hand it over instead of copying it.
    if (m.fn === 'preadNew' && value instanceof Uint8Array) transfer = [value.buffer as ArrayBuffer];
    out = { id: m.id, ok: true, value, took: performance.now() - t0 };
  } catch (err) {
    const e = err as { errno?: unknown; syscall?: unknown; message?: unknown };
    out = {
      id: m.id, ok: false, errno: typeof e.errno === 'number' ? e.errno : 5,
      syscall: typeof e.syscall === 'string' ? e.syscall : m.fn, message: String(e.message ?? err), took: performance.now() - t0,
    };
  }
  parentPort!.postMessage(out, transfer);
});
