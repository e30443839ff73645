// POSIX byte-range locks held by the server, so that processes on two nodes locking the same
// file exclude each other. Pure in-memory, no I/O: locks die with the daemon, as they die with
// a local kernel on reboot (a client re-acquires after a restart, like NFS lock recovery).
//
// Semantics follow fcntl(F_SETLK) on Linux:
// - an owner never conflicts with itself; its new lock replaces whatever it held in the range
//   (merge with touching same-type ranges, split and convert otherwise);
// - read locks share, a write lock excludes every other owner;
// - unlocking part of a range splits it;
// - a waiter is woken whenever anything changes on its file, and is granted in arrival order.
import { Errno } from '../proto/errno.js';

export type LockType = 'read' | 'write' | 'unlock';
/** `end` is inclusive; TO_EOF (2^63-1) means "to end of file, however large it grows". */
export interface LockRequest { start: bigint; end: bigint; type: LockType; owner: string; pid: number }
export interface HeldLock { start: bigint; end: bigint; type: 'read' | 'write'; owner: string; pid: number }

/** The largest offset an fcntl lock can name (OFFSET_MAX); a lock to it covers the rest of the file. */
export const TO_EOF = 2n ** 63n - 1n;

interface Waiter {
  fileKey: string;
  req: LockRequest;
  resolve: () => void;
  reject: (err: Errno) => void;
  detach: () => void;
}

function overlaps(a: { start: bigint; end: bigint }, b: { start: bigint; end: bigint }): boolean {
  return a.start <= b.end && b.start <= a.end;
}

function conflicts(held: HeldLock, req: LockRequest): boolean {
  return held.owner !== req.owner && overlaps(held, req) && (held.type === 'write' || req.type === 'write');
}

function validate(req: LockRequest): void {
  if (req.start < 0n || req.end < req.start || req.end > TO_EOF) {
    throw new Errno('EINVAL', `bad lock range ${req.start}..${req.end}`);
  }
  if (req.type !== 'read' && req.type !== 'write' && req.type !== 'unlock') {
    throw new Errno('EINVAL', `bad lock type ${String(req.type)}`);
  }
}

export class LockTable {
  /** Held locks per file, sorted by start; a file with no lock has no entry. */
  private readonly files = new Map<string, HeldLock[]>();
  /** Blocked SetLkW calls per file, in arrival order. */
  private readonly waiters = new Map<string, Waiter[]>();

  /** The first lock of ANOTHER owner that conflicts with `req`, or null (F_GETLK). */
  get(fileKey: string, req: LockRequest): HeldLock | null {
    validate(req);
    if (req.type === 'unlock') throw new Errno('EINVAL', 'F_GETLK asks about a read or write lock, not unlock');
    const found = this.firstConflict(fileKey, req);
    return found ? { ...found } : null;
  }

  /** Acquire, convert or release a range at once (F_SETLK); EAGAIN when another owner is in the way. */
  set(fileKey: string, req: LockRequest): void {
    validate(req);
    if (req.type !== 'unlock' && this.firstConflict(fileKey, req)) {
      throw new Errno('EAGAIN', `range ${req.start}..${req.end} is locked by another owner`);
    }
    this.apply(fileKey, req);
    this.wake(fileKey);
  }

  /**
   * Acquire when grantable (F_SETLKW). Rejects EINTR when `signal` aborts (the caller gave up or
   * its call was cancelled) and EDEADLK when waiting would close a cycle of owners waiting on
   * each other, as Linux does, instead of hanging both forever.
   */
  setWait(fileKey: string, req: LockRequest, signal: AbortSignal): Promise<void> {
    try {
      validate(req);
      if (signal.aborted) throw new Errno('EINTR', 'lock wait interrupted');
      if (req.type === 'unlock' || !this.firstConflict(fileKey, req)) {
        this.set(fileKey, req);
        return Promise.resolve();
      }
      if (this.wouldDeadlock(fileKey, req)) {
        throw new Errno('EDEADLK', `waiting for ${req.start}..${req.end} would deadlock`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.removeWaiter(waiter);
        reject(new Errno('EINTR', 'lock wait interrupted'));
      };
      const waiter: Waiter = {
        fileKey, req: { ...req }, resolve, reject,
        detach: () => signal.removeEventListener('abort', onAbort),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const queue = this.waiters.get(fileKey) ?? [];
      queue.push(waiter);
      this.waiters.set(fileKey, queue);
    });
  }

  /**
   * Drop every lock of an owner (its client went away), or only those on one file (POSIX: a
   * process closing any descriptor of a file loses its locks on that file).
   */
  releaseOwner(owner: string, fileKey?: string): void {
    const keys = fileKey === undefined ? [...this.files.keys()] : [fileKey];
    for (const key of keys) {
      const locks = this.files.get(key);
      if (!locks) continue;
      const kept = locks.filter((l) => l.owner !== owner);
      if (kept.length === locks.length) continue;
      this.store(key, kept);
      this.wake(key);
    }
  }

  /** A copy of the locks held on a file, sorted by start (diagnostics and tests). */
  held(fileKey: string): HeldLock[] {
    return (this.files.get(fileKey) ?? []).map((l) => ({ ...l }));
  }

  /** How many SetLkW calls are blocked on a file (diagnostics and tests). */
  waiting(fileKey: string): number {
    return this.waiters.get(fileKey)?.length ?? 0;
  }

  private firstConflict(fileKey: string, req: LockRequest): HeldLock | undefined {
    return this.files.get(fileKey)?.find((l) => conflicts(l, req));
  }

  /** Replace the owner's state over [start, end] with `req` (nothing, for unlock). */
  private apply(fileKey: string, req: LockRequest): void {
    const out: HeldLock[] = [];
    for (const l of this.files.get(fileKey) ?? []) {
      if (l.owner !== req.owner || !overlaps(l, req)) {
        out.push(l);
        continue;
      }
      // Keep the parts of the owner's old lock that stick out on either side of the request.
      if (l.start < req.start) out.push({ ...l, end: req.start - 1n });
      if (l.end > req.end) out.push({ ...l, start: req.end + 1n });
    }
    if (req.type !== 'unlock') {
      out.push({ start: req.start, end: req.end, type: req.type, owner: req.owner, pid: req.pid });
    }
    out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.store(fileKey, mergeTouching(out));
  }

  private store(fileKey: string, locks: HeldLock[]): void {
    if (locks.length === 0) this.files.delete(fileKey);
    else this.files.set(fileKey, locks);
  }

  /** Grant, in arrival order, every waiter on the file that no longer conflicts. */
  private wake(fileKey: string): void {
    // A granted waiter may convert its own lock and so free an earlier one: repeat until quiet.
    for (let granted = true; granted; ) {
      granted = false;
      for (const w of [...(this.waiters.get(fileKey) ?? [])]) {
        if (this.firstConflict(fileKey, w.req)) continue;
        this.removeWaiter(w);
        w.detach();
        this.apply(fileKey, w.req);
        w.resolve();
        granted = true;
      }
    }
  }

  private removeWaiter(w: Waiter): void {
    const queue = this.waiters.get(w.fileKey);
    if (!queue) return;
    const i = queue.indexOf(w);
    if (i >= 0) queue.splice(i, 1);
    if (queue.length === 0) this.waiters.delete(w.fileKey);
  }

  /**
   * Would `req`'s owner, by waiting, close a cycle? Follow "is waiting for" edges from the
   * owners that block it: if any path leads back to the requester, nobody would ever move.
   */
  private wouldDeadlock(fileKey: string, req: LockRequest): boolean {
    const seen = new Set<string>();
    const stack = this.blockers(fileKey, req);
    while (stack.length > 0) {
      const owner = stack.pop() as string;
      if (owner === req.owner) return true;
      if (seen.has(owner)) continue;
      seen.add(owner);
      for (const queue of this.waiters.values()) {
        for (const w of queue) {
          if (w.req.owner === owner) stack.push(...this.blockers(w.fileKey, w.req));
        }
      }
    }
    return false;
  }

  private blockers(fileKey: string, req: LockRequest): string[] {
    return (this.files.get(fileKey) ?? []).filter((l) => conflicts(l, req)).map((l) => l.owner);
  }
}

/** Coalesce sorted locks of the same owner and type that overlap or touch (end + 1 == start). */
function mergeTouching(sorted: HeldLock[]): HeldLock[] {
  const out: HeldLock[] = [];
  for (const l of sorted) {
    const prev = findMergeable(out, l);
    if (prev) {
      if (l.end > prev.end) prev.end = l.end;
      prev.pid = l.pid;
    } else {
      out.push({ ...l });
    }
  }
  return out;
}

function findMergeable(out: HeldLock[], l: HeldLock): HeldLock | undefined {
  // Only the owner's own locks can merge, and they never overlap each other after apply(), so
  // the candidate is the owner's last lock so far.
  for (let i = out.length - 1; i >= 0; i--) {
    const c = out[i] as HeldLock;
    if (c.owner !== l.owner) continue;
    return c.type === l.type && c.end + 1n >= l.start ? c : undefined;
  }
  return undefined;
}
