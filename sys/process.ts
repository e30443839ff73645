// Which process a thread belongs to, from /proc. A FUSE request carries the caller's THREAD id
// (the kernel's task pid), while per-process state (issue 10's special directories, issue 11's I/O
// statistics) belongs to the thread group. A process is named by its ProcessKey, tgid plus start
// time (field 22 of /proc/<tgid>/stat, clock ticks since boot): a pid is reused once its process is
// gone, the pair never is (two processes cannot start in the same tick with the same pid).
//
// Cost: a miss reads /proc/<tid>/status (Tgid, PPid, Uid) and /proc/<tgid>/stat (start time), each
// an open + read + close into one reused buffer, about 20-30 us on the development VM; a hit is a
// Map lookup, well under 1 us. Entries are kept for ttlMs (1 s): a thread's tgid never changes, and
// a tid reused within that second would need the kernel to wrap pid_max (4 194 304 on 64-bit) in
// between. Callers that receive exit events (sys/proc-events.ts) drop the entry at once with
// forget(tid), which closes even that window. PPid and uid may change (reparenting, setuid): they
// are at most ttlMs old.
import { closeSync, openSync, readSync, readlinkSync } from 'node:fs';

/** `${tgid}:${starttime}`: a process, stable across pid reuse. */
export type ProcessKey = string;

export const processKey = (tgid: number, startTime: number): ProcessKey => `${tgid}:${startTime}`;

export interface ProcessInfo {
  /** The process (thread group) id. */
  tgid: number;
  /** Start time of the process in clock ticks since boot (field 22 of /proc/<tgid>/stat). */
  startTime: number;
  key: ProcessKey;
  /** Parent process id (0 for init and kernel threads' parent). */
  ppid: number;
  /** Real and effective user ids. */
  uid: number;
  euid: number;
}

/** The fields of /proc/<pid>/stat that matter here. */
export interface ProcStat {
  pid: number;
  /** The command name, exactly as the kernel has it (may hold spaces and parentheses). */
  comm: string;
  state: string;
  ppid: number;
  startTime: number;
  /** CPU time used in user and kernel mode, in clock ticks (fields 14 and 15). */
  cpuTicks: number;
}

const buf = Buffer.allocUnsafe(4096);

/** A whole small /proc file as text, or undefined when the task is gone (ENOENT, ESRCH). */
function readProcFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
  try {
    // /proc/<pid>/stat and status are generated whole on the first read; 4 KiB holds either.
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('latin1', 0, n);
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  } finally {
    closeSync(fd);
  }
}

function isGone(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/**
 * Parses a /proc/<pid>/stat line. comm is whatever the process named itself (prctl, `exec -a`
 * changes argv, not comm, but PR_SET_NAME and writes to /proc/self/comm can put anything there,
 * including ") " sequences), so the fields are split after the LAST ')'.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`unparseable /proc stat line: ${text.slice(0, 80)}`);
  const rest = text.slice(close + 2).trim().split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0],
    ppid: Number(rest[4 - 3]),
    startTime: Number(rest[22 - 3]),
    cpuTicks: Number(rest[14 - 3]) + Number(rest[15 - 3]),
  };
}

/** /proc/<pid>/stat of a task (a thread id works too, though it is not listed in /proc), or undefined once it is gone. */
export function readStat(pid: number): ProcStat | undefined {
  const text = readProcFile(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseStat(text);
}

/** The chown family's system call numbers (chown, fchown, lchown, fchownat; arm64 has only the last two). */
const CHOWN_SYSCALLS: Partial<Record<string, readonly number[]>> = { x64: [92, 93, 94, 260], arm64: [55, 54] };

/**
 * Whether thread `tid`, blocked in a system call (e.g. waiting on our answer), is in one of the
 * chown family, read from /proc/<tid>/syscall; undefined when that cannot be told (the thread is
 * gone, or an architecture whose numbers are not listed here).
 */
export function inChownCall(tid: number): boolean | undefined {
  const numbers = CHOWN_SYSCALLS[process.arch];
  const text = numbers && readProcFile(`/proc/${tid}/syscall`);
  if (!text) return undefined;
  return numbers.includes(Number(text.slice(0, text.indexOf(' '))));
}

/** A process's anonymous resident memory in pages (RssAnon): what a migration would have to copy. */
export function readAnonPages(pid: number): number | undefined {
  const text = readProcFile(`/proc/${pid}/status`);
  if (text === undefined) return undefined;
  try {
    return Math.ceil(statusField(text, 'RssAnon') / 4); // kB to 4 KiB pages
  } catch {
    return 0; // a kernel thread has no RssAnon line
  }
}

/** One `Name:\tvalue...` line of /proc/<pid>/status, its first value. */
function statusField(text: string, name: string): number {
  const at = text.indexOf(`\n${name}:`);
  if (at < 0) throw new Error(`no ${name} in /proc status`);
  const m = /^\s*(\d+)(?:\s+(\d+))?/.exec(text.slice(at + name.length + 2, at + name.length + 64));
  if (!m) throw new Error(`bad ${name} in /proc status`);
  return Number(m[1]);
}

/** The effective uid: the second value of the Uid: line. */
function statusEuid(text: string): number {
  const at = text.indexOf('\nUid:');
  const m = at < 0 ? null : /^\s*\d+\s+(\d+)/.exec(text.slice(at + 5, at + 64));
  if (!m) throw new Error('bad Uid in /proc status');
  return Number(m[1]);
}

/** The process of a thread, read from /proc now; undefined when the thread or its process is gone. */
export function readProcessOf(tid: number): ProcessInfo | undefined {
  if (!Number.isInteger(tid) || tid <= 0) return undefined;
  const status = readProcFile(`/proc/${tid}/status`);
  if (status === undefined) return undefined;
  const tgid = statusField(status, 'Tgid');
  const stat = readStat(tgid);
  if (stat === undefined) return undefined;
  return {
    tgid,
    startTime: stat.startTime,
    key: processKey(tgid, stat.startTime),
    ppid: statusField(status, 'PPid'),
    uid: statusField(status, 'Uid'),
    euid: statusEuid(status),
  };
}

/**
 * What an exec changes and a fork does not: the executable and the command name. Without proc
 * events (sys/proc-events.ts) a caller detects an exec lazily by a change of this signature; it
 * misses an exec of the same program under the same name (a shell re-executing itself), which only
 * the events see. Undefined once the process is gone or its exe is unreadable (a kernel thread).
 */
export function execSignature(tgid: number): string | undefined {
  try {
    const stat = readStat(tgid);
    if (stat === undefined) return undefined;
    return `${readlinkSync(`/proc/${tgid}/exe`)}\0${stat.comm}`;
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

interface Cached { info: ProcessInfo; until: number }

export interface ProcessLookupOptions {
  /** How long a tid's answer is kept (ms). */
  ttlMs?: number;
  /** Entries at most (oldest dropped first). */
  maxEntries?: number;
  now?: () => number;
}

/** Thread → process, cached briefly (see the header for why that is safe). */
export class ProcessLookup {
  private readonly cache = new Map<number, Cached>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: ProcessLookupOptions = {}) {
    this.ttlMs = options.ttlMs ?? 1000;
    this.maxEntries = options.maxEntries ?? 8192;
    this.now = options.now ?? Date.now;
  }

  /** The process of thread `tid`, or undefined when it is gone (or tid is 0: a request the kernel made itself). */
  processOf(tid: number): ProcessInfo | undefined {
    const now = this.now();
    const hit = this.cache.get(tid);
    if (hit && hit.until > now) return hit.info;
    if (hit) this.cache.delete(tid);
    const info = readProcessOf(tid);
    if (info === undefined) return undefined;
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(tid, { info, until: now + this.ttlMs });
    return info;
  }

  /** Drops what is known of a thread (it exited: its tid may be reused). */
  forget(tid: number): void {
    this.cache.delete(tid);
  }

  get size(): number {
    return this.cache.size;
  }
}

const shared = new ProcessLookup();

/** The process of thread `tid` through a process-wide cache; undefined when it is gone. */
export const processOf = (tid: number): ProcessInfo | undefined => shared.processOf(tid);
