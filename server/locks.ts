// POSIX byte-range locks held by the server, so that processes on two nodes locking the same
// file exclude each other. Pure in-memory, no I/O. A session's locks outlive a daemon restart
// through its persisted record (session-store.ts reads heldBy() and reinstates them with set() at
// start); a connection's (unary peer's) die with the daemon.
//
// Semantics follow fcntl(F_SETLK) on Linux:
// - an owner never conflicts with itself; its new lock replaces whatever it held in the range
//   (merge with touching same-type ranges, split and convert otherwise); a merged range carries
//   the pid of the request that made it;
// - read locks share, a write lock excludes every other owner;
// - unlocking part of a range splits it;
// - a waiter is granted, in arrival order, when a change frees something its range overlaps.
//
// Peers: every request names the authenticated peer (connection) it came on. A lock owner is
// (peer, owner): a peer cannot unlock, convert or inherit another peer's locks by sending the same
// owner string, and all of a peer's locks and waiters go when the peer goes (releasePeer). Each
// peer may hold maxLocksPerPeer ranges and have maxWaitersPerPeer blocked SetLkW calls; past
// either the call fails ENOLCK, as fcntl does when the kernel cannot allocate a lock.
//
// Cost (issue 8: 3 000 locks and 3 000 waiters made every SetLk stall the daemon): per file, held
// locks are in two interval trees (read, write) and waiters in a third (interval-tree.ts), and
// each owner's ranges in a sorted array. A conflict check visits only overlapping locks and stops
// at the first of another owner; set() touches only the owner's ranges around the request (binary
// search); waking re-examines only the waiters overlapping a range that was actually freed (an
// unlock or a write downgraded to read), and a grant frees more only when it converts or
// unlocks. Deadlock detection follows only owners that hold ranges on the file and are themselves
// waiting (FileLocks.waitingHolders), never the locks merely held.
import { Errno } from '../proto/errno.js';
import { IntervalTree } from './interval-tree.js';

export type LockType = 'read' | 'write' | 'unlock';
/**
 * `end` is inclusive; TO_EOF (2^63-1) means "to end of file, however large it grows". `owner` is
 * the lock owner (a process of a client), `peer` the authenticated connection it came on.
 */
export interface LockRequest { start: bigint; end: bigint; type: LockType; owner: string; pid: number; peer: string }
export interface HeldLock { start: bigint; end: bigint; type: 'read' | 'write'; owner: string; pid: number }

export interface LockLimits {
  /** Lock ranges one peer may hold over all files; beyond, ENOLCK. */
  maxLocksPerPeer?: number;
  /** SetLkW calls of one peer that may be blocked at once; beyond, ENOLCK. */
  maxWaitersPerPeer?: number;
}
export const DEFAULT_LOCK_LIMITS: Readonly<Required<LockLimits>> = { maxLocksPerPeer: 10_000, maxWaitersPerPeer: 1_000 };

/** The largest offset an fcntl lock can name (OFFSET_MAX); a lock to it covers the rest of the file. */
export const TO_EOF = 2n ** 63n - 1n;

/** A held range. `who` is the owner's identity inside the table: peer and owner together. */
interface Held { start: bigint; end: bigint; seq: number; type: 'read' | 'write'; owner: string; pid: number; peer: string; who: string }

interface Waiter {
  start: bigint; end: bigint; seq: number;
  fileKey: string; req: LockRequest; who: string;
  resolve: () => void; reject: (err: Errno) => void; detach: () => void;
}

interface FileLocks {
  reads: IntervalTree<Held>;
  writes: IntervalTree<Held>;
  /** Each owner's ranges on this file: sorted, never overlapping, touching same-type ranges merged. */
  byOwner: Map<string, Held[]>;
  waiters: IntervalTree<Waiter>;
  /** Owners holding ranges here that are waiting somewhere: the only ones a deadlock can go through. */
  waitingHolders: Set<string>;
}

interface Range { start: bigint; end: bigint }

const whoOf = (peer: string, owner: string): string => `${peer.length}:${peer}:${owner}`;
const overlaps = (a: Range, b: Range): boolean => a.start <= b.end && b.start <= a.end;

function validate(req: LockRequest): void {
  if (typeof req.start !== 'bigint' || typeof req.end !== 'bigint' || req.start < 0n || req.end < req.start || req.end > TO_EOF) {
    throw new Errno('EINVAL', `bad lock range ${String(req.start)}..${String(req.end)}`);
  }
  if (req.type !== 'read' && req.type !== 'write' && req.type !== 'unlock') {
    throw new Errno('EINVAL', `bad lock type ${String(req.type)}`);
  }
}

const publicView = (h: Held): HeldLock => ({ start: h.start, end: h.end, type: h.type, owner: h.owner, pid: h.pid });

export class LockTable {
  private readonly limits: Required<LockLimits>;
  private readonly files = new Map<string, FileLocks>();
  /** Files each owner identity holds ranges on (releaseOwner and releasePeer without a scan). */
  private readonly filesOf = new Map<string, Set<string>>();
  /** Owner identities of each peer that hold something. */
  private readonly whoOfPeer = new Map<string, Set<string>>();
  /** Ranges each peer holds (ENOLCK). */
  private readonly lockCount = new Map<string, number>();
  /** Blocked calls of each owner identity (deadlock detection) and of each peer (ENOLCK, releasePeer). */
  private readonly waitsOf = new Map<string, Set<Waiter>>();
  private readonly waitsOfPeer = new Map<string, Set<Waiter>>();
  private seq = 0;

  constructor(limits: LockLimits = {}) {
    this.limits = { ...DEFAULT_LOCK_LIMITS, ...limits };
  }

  /** The conflicting lock of ANOTHER owner with the lowest start, or null (F_GETLK). */
  get(fileKey: string, req: LockRequest): HeldLock | null {
    validate(req);
    if (req.type === 'unlock') throw new Errno('EINVAL', 'F_GETLK asks about a read or write lock, not unlock');
    const found = this.firstConflict(fileKey, req, whoOf(req.peer, req.owner));
    return found ? publicView(found) : null;
  }

  /** Acquire, convert or release a range at once (F_SETLK); EAGAIN when another owner is in the way. */
  set(fileKey: string, req: LockRequest): void {
    validate(req);
    const who = whoOf(req.peer, req.owner);
    if (req.type !== 'unlock' && this.firstConflict(fileKey, req, who)) {
      throw new Errno('EAGAIN', `range ${req.start}..${req.end} is locked by another owner`);
    }
    const freed = this.apply(fileKey, req, who);
    if (freed) this.wake(fileKey, [req]);
    this.dropIfEmpty(fileKey);
  }

  /**
   * Acquire when grantable (F_SETLKW). Rejects EINTR when `signal` aborts (the caller gave up or
   * its call was cancelled) and EDEADLK when waiting would close a cycle of owners waiting on
   * each other, as Linux does, instead of hanging both forever.
   */
  setWait(fileKey: string, req: LockRequest, signal: AbortSignal): Promise<void> {
    const who = whoOf(req.peer, req.owner);
    try {
      validate(req);
      if (signal.aborted) throw new Errno('EINTR', 'lock wait interrupted');
      if (req.type === 'unlock' || !this.firstConflict(fileKey, req, who)) {
        this.set(fileKey, req);
        return Promise.resolve();
      }
      if (this.wouldDeadlock(fileKey, req, who)) {
        throw new Errno('EDEADLK', `waiting for ${req.start}..${req.end} would deadlock`);
      }
      if ((this.waitsOfPeer.get(req.peer)?.size ?? 0) >= this.limits.maxWaitersPerPeer) {
        throw new Errno('ENOLCK', `peer has ${this.limits.maxWaitersPerPeer} lock waits already`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.removeWaiter(waiter);
        this.dropIfEmpty(fileKey);
        reject(new Errno('EINTR', 'lock wait interrupted'));
      };
      const waiter: Waiter = {
        start: req.start, end: req.end, seq: ++this.seq, fileKey, req: { ...req }, who, resolve, reject,
        detach: () => signal.removeEventListener('abort', onAbort),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.file(fileKey).waiters.insert(waiter);
      if (!this.waitsOf.has(who)) this.markWaiting(who, true);
      addTo(this.waitsOf, who, waiter);
      addTo(this.waitsOfPeer, req.peer, waiter);
    });
  }

  /**
   * Drop every lock of an owner (its client went away), or only those on one file (POSIX: a
   * process closing any descriptor of a file loses its locks on that file).
   */
  releaseOwner(owner: string, fileKey?: string, peer = ''): void {
    this.releaseWho(whoOf(peer, owner), fileKey);
  }

  /** The peer is gone: its waiters fail EINTR, its locks go, and whoever waited on them is woken. */
  releasePeer(peer: string): void {
    for (const w of [...(this.waitsOfPeer.get(peer) ?? [])]) {
      this.removeWaiter(w);
      w.detach();
      w.reject(new Errno('EINTR', 'lock wait interrupted: peer gone'));
      this.dropIfEmpty(w.fileKey);
    }
    for (const who of [...(this.whoOfPeer.get(peer) ?? [])]) this.releaseWho(who);
  }

  /** Every range `peer` holds, with its file's key (a session's persisted record). */
  heldBy(peer: string): Array<HeldLock & { fileKey: string }> {
    const out: Array<HeldLock & { fileKey: string }> = [];
    for (const who of this.whoOfPeer.get(peer) ?? []) {
      for (const fileKey of this.filesOf.get(who) ?? []) {
        for (const l of this.files.get(fileKey)?.byOwner.get(who) ?? []) out.push({ fileKey, ...publicView(l) });
      }
    }
    return out;
  }

  /** A copy of the locks held on a file, sorted by start (diagnostics and tests). */
  held(fileKey: string): HeldLock[] {
    const f = this.files.get(fileKey);
    if (!f) return [];
    return [...f.reads.all(), ...f.writes.all()]
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.seq - b.seq))
      .map(publicView);
  }

  /** How many SetLkW calls are blocked on a file (diagnostics and tests). */
  waiting(fileKey: string): number {
    return this.files.get(fileKey)?.waiters.size ?? 0;
  }

  /** Ranges a peer holds and calls it has waiting (diagnostics and tests). */
  usage(peer: string): { locks: number; waiters: number } {
    return { locks: this.lockCount.get(peer) ?? 0, waiters: this.waitsOfPeer.get(peer)?.size ?? 0 };
  }

  private file(fileKey: string): FileLocks {
    let f = this.files.get(fileKey);
    if (!f) {
      f = { reads: new IntervalTree(), writes: new IntervalTree(), byOwner: new Map(), waiters: new IntervalTree(), waitingHolders: new Set() };
      this.files.set(fileKey, f);
    }
    return f;
  }

  private dropIfEmpty(fileKey: string): void {
    const f = this.files.get(fileKey);
    if (f && f.byOwner.size === 0 && f.waiters.size === 0) this.files.delete(fileKey);
  }

  /** The lowest-start lock of another owner in the way of `req`, visiting only overlapping locks. */
  private firstConflict(fileKey: string, req: Range & { type: LockType }, who: string): Held | undefined {
    const f = this.files.get(fileKey);
    if (!f) return undefined;
    const first = (tree: IntervalTree<Held>): Held | undefined => {
      let hit: Held | undefined;
      tree.someOverlap(req.start, req.end, (h) => (h.who !== who ? ((hit = h), true) : false));
      return hit;
    };
    const w = first(f.writes);
    if (req.type !== 'write') return w;
    const r = first(f.reads);
    return !w ? r : !r ? w : r.start < w.start ? r : w;
  }

  /** Whether `holder` has a range on the file in the way of `req` (binary search in its own ranges). */
  private holdsAgainst(fileKey: string, holder: string, req: Range & { type: LockType }): boolean {
    const mine = this.files.get(fileKey)?.byOwner.get(holder);
    if (!mine) return false;
    for (let i = firstIndex(mine, (l) => l.end >= req.start); i < mine.length && (mine[i] as Held).start <= req.end; i++) {
      if (req.type === 'write' || (mine[i] as Held).type === 'write') return true;
    }
    return false;
  }

  /** The owners in the way of `req` that are themselves waiting (the edges a deadlock can follow). */
  private waitingBlockers(fileKey: string, req: Range & { type: LockType }, who: string): string[] {
    const f = this.files.get(fileKey);
    if (!f) return [];
    return [...f.waitingHolders].filter((h) => h !== who && this.holdsAgainst(fileKey, h, req));
  }

  /**
   * Replace the owner's state over [start, end] with `req` (nothing, for unlock). ENOLCK, with
   * nothing changed, when the peer would hold more ranges than allowed. Returns whether anything
   * another owner could be waiting for was freed (an unlock, or a write turned into a read).
   */
  private apply(fileKey: string, req: LockRequest, who: string): boolean {
    const f = this.file(fileKey);
    const mine = f.byOwner.get(who) ?? [];
    // Ranges are sorted and disjoint, so ends are sorted too: the first one that may touch the
    // request is found by binary search, and the affected span ends at the first that starts after it.
    const from = firstIndex(mine, (l) => l.end + 1n >= req.start);
    let to = from;
    const kept: Held[] = [];
    const added: Held[] = [];
    const removed: Held[] = [];
    let start = req.start;
    let end = req.end;
    let freed = false;
    for (; to < mine.length && (mine[to] as Held).start <= req.end + 1n; to++) {
      const l = mine[to] as Held;
      if (req.type !== 'unlock' && l.type === req.type) {
        // Same type, overlapping or touching: it becomes part of the new range.
        if (l.start < start) start = l.start;
        if (l.end > end) end = l.end;
        removed.push(l);
      } else if (overlaps(l, req)) {
        removed.push(l);
        if (l.type === 'write') freed = true; // unlocked, or converted to read
        // The parts of the old range that stick out on either side of the request stay as they were.
        if (l.start < req.start) added.push(this.piece(l, l.start, req.start - 1n));
        if (l.end > req.end) added.push(this.piece(l, req.end + 1n, l.end));
      } else {
        kept.push(l); // touching, of another type: stays as it is
      }
      if (req.type === 'unlock' && overlaps(l, req)) freed = true;
    }
    if (req.type !== 'unlock') {
      added.push({ start, end, seq: ++this.seq, type: req.type, owner: req.owner, pid: req.pid, peer: req.peer, who });
    }
    const count = this.lockCount.get(req.peer) ?? 0;
    const after = count + added.length - removed.length;
    if (after > count && after > this.limits.maxLocksPerPeer) {
      this.dropIfEmpty(fileKey);
      throw new Errno('ENOLCK', `peer holds ${count} lock ranges; the limit is ${this.limits.maxLocksPerPeer}`);
    }
    for (const l of removed) this.tree(f, l).delete(l);
    for (const l of added) this.tree(f, l).insert(l);
    // At most two untouched neighbours and three new ranges: the span's new content, in order.
    const span = [...kept, ...added].sort((a, b) => (a.start < b.start ? -1 : 1));
    mine.splice(from, to - from, ...span);
    this.setCount(req.peer, after);
    if (mine.length === 0) {
      f.byOwner.delete(who);
      f.waitingHolders.delete(who);
      this.forgetFile(who, req.peer, fileKey);
    } else if (!f.byOwner.has(who)) {
      f.byOwner.set(who, mine);
      if (this.waitsOf.has(who)) f.waitingHolders.add(who);
      addTo(this.filesOf, who, fileKey);
      addTo(this.whoOfPeer, req.peer, who);
    }
    return freed;
  }

  private piece(l: Held, start: bigint, end: bigint): Held {
    return { ...l, start, end, seq: ++this.seq };
  }

  private tree(f: FileLocks, l: Held): IntervalTree<Held> {
    return l.type === 'read' ? f.reads : f.writes;
  }

  private setCount(peer: string, n: number): void {
    if (n === 0) this.lockCount.delete(peer);
    else this.lockCount.set(peer, n);
  }

  private forgetFile(who: string, peer: string, fileKey: string): void {
    const files = this.filesOf.get(who);
    files?.delete(fileKey);
    if (files && files.size === 0) {
      this.filesOf.delete(who);
      removeFrom(this.whoOfPeer, peer, who);
    }
  }

  /** Drops all ranges of one owner identity (on one file, or everywhere) and wakes who waited on them. */
  private releaseWho(who: string, fileKey?: string): void {
    const keys = fileKey === undefined ? [...(this.filesOf.get(who) ?? [])] : [fileKey];
    for (const key of keys) {
      const f = this.files.get(key);
      const mine = f?.byOwner.get(who);
      if (!f || !mine) continue;
      const peer = (mine[0] as Held).peer;
      for (const l of mine) this.tree(f, l).delete(l);
      f.byOwner.delete(who);
      f.waitingHolders.delete(who);
      this.setCount(peer, (this.lockCount.get(peer) ?? 0) - mine.length);
      this.forgetFile(who, peer, key);
      this.wake(key, mine);
      this.dropIfEmpty(key);
    }
  }

  /**
   * Grant, in arrival order, every waiter overlapping a freed range that no longer conflicts. A
   * grant that itself frees something (a conversion) makes its range the next round's.
   */
  private wake(fileKey: string, freed: Range[]): void {
    const f = this.files.get(fileKey);
    for (let ranges = freed; f && ranges.length > 0; ) {
      const candidates = new Set<Waiter>();
      for (const r of ranges) f.waiters.someOverlap(r.start, r.end, (w) => void candidates.add(w));
      ranges = [];
      for (const w of [...candidates].sort((a, b) => a.seq - b.seq)) {
        if (this.firstConflict(fileKey, w.req, w.who)) continue;
        this.removeWaiter(w);
        w.detach();
        try {
          if (this.apply(fileKey, w.req, w.who)) ranges.push(w.req);
        } catch (err) {
          w.reject(err as Errno); // ENOLCK: the peer filled its quota while it waited
          continue;
        }
        w.resolve();
      }
    }
  }

  private removeWaiter(w: Waiter): void {
    this.files.get(w.fileKey)?.waiters.delete(w);
    removeFrom(this.waitsOf, w.who, w);
    removeFrom(this.waitsOfPeer, w.req.peer, w);
    if (!this.waitsOf.has(w.who)) this.markWaiting(w.who, false);
  }

  /** Keeps waitingHolders of every file `who` holds ranges on in step with whether it waits. */
  private markWaiting(who: string, waiting: boolean): void {
    for (const key of this.filesOf.get(who) ?? []) {
      const f = this.files.get(key);
      if (waiting) f?.waitingHolders.add(who);
      else f?.waitingHolders.delete(who);
    }
  }

  /**
   * Would `who`, by waiting, close a cycle? Follow "is waiting for" edges from the owners that
   * block it; only owners that are themselves waiting can lead anywhere, so the search visits
   * waiting owners only, never the (maybe thousands of) locks merely held.
   */
  private wouldDeadlock(fileKey: string, req: LockRequest, who: string): boolean {
    const seen = new Set<string>();
    const stack = this.waitingBlockers(fileKey, req, who);
    while (stack.length > 0) {
      const owner = stack.pop() as string;
      if (seen.has(owner)) continue;
      seen.add(owner);
      for (const w of this.waitsOf.get(owner) ?? []) {
        if (this.holdsAgainst(w.fileKey, who, w.req)) return true;
        for (const b of this.waitingBlockers(w.fileKey, w.req, w.who)) if (!seen.has(b)) stack.push(b);
      }
    }
    return false;
  }
}

/** The first index whose element satisfies `ok`, for an `ok` that is false then true along the array. */
function firstIndex<T>(arr: readonly T[], ok: (x: T) => boolean): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ok(arr[mid] as T)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}
