// Callbacks: the cache-consistency promise of sessions (proto/session.proto, "Callbacks").
//
// A callback is (session, inode, bits): the session may cache the inode's attributes (ATTR), its
// data (DATA) or, for a directory, its names and listing (NAMES). Inodes are cluster inode numbers
// (Attr.ino) as bigint. Replies register callbacks (service-ops.ts); a change sends an Invalidate
// to every other session holding a matching callback and waits for its ack.
//
// Decisions:
// - An attr invalidation consumes the ATTR callback (the client drops the attributes and registers
//   again when it fetches them). DATA and NAMES stay: the client drops only the range or the name
//   it is told about and may keep the rest of the file or directory cached.
// - The race between a reply being made and a change: an operation notes `now()` before it touches
//   the file system and calls `registered()` after; a change recorded in between (it did not reach
//   this session, whose callback did not exist yet) is sent to this session right away, before its
//   reply is written. Changes are remembered per inode in a bounded map; an inode evicted from it
//   counts as changed at the highest evicted seq (conservative: an extra invalidation, never a
//   missed one).
// - A change also waits for every session still holding an unacknowledged invalidation about the
//   same inode (sent for a direct change, a recall, or another change nobody waited on): such a
//   session may not hold the callback any more (an attr invalidation uses it up) yet still answer
//   from its cache until it applied that invalidation.
// - Acks are cumulative: the frames of one session travel in order on its main stream and the
//   client handles them in order, so an ack of seq s acknowledges every seq <= s.
// - A session that does not ack within its timeout (its lease) is fenced: it loses its callbacks
//   and the sink ends the session as an expired lease would. Its waiters are released, so one dead
//   client stalls a writer for at most the lease.
// - Per-session bound: the oldest callbacks (least recently registered) are recalled when a
//   session holds more than `perSession`: invalidations are sent and not waited for.
import { LRUCache } from 'lru-cache';
import { countInvalidation } from './metrics.js';

/** What changed, as sent in an Invalidate. */
export type Change =
  | { kind: 'attr'; ino: bigint }
  /** length 0n: to the end of the file. */
  | { kind: 'data'; ino: bigint; offset: bigint; length: bigint }
  /** name empty: every name of the directory and its listing. */
  | { kind: 'name'; dir: bigint; name: Buffer };

/** How the callback table reaches one session's main stream (session.ts provides it). */
export interface CallbackSink {
  /** Writes one Invalidate frame {seq, change} on the session's main stream. Must not throw. */
  send(seq: number, change: Change): void;
  /** The session did not acknowledge in time: end it as an expired lease does (release everything). */
  fence(why: string): void;
}

/** The Invalidate message of ServerFrame.invalidate for `change` (64-bit values as numbers or decimal strings). */
export function invalidateMessage(seq: number, change: Change): object {
  switch (change.kind) {
    case 'attr': return { seq, attr: { ino: u64(change.ino) } };
    case 'data': return { seq, data: { ino: u64(change.ino), offset: u64(change.offset), length: u64(change.length) } };
    case 'name': return { seq, name: { dir: u64(change.dir), name: change.name } };
  }
}
const u64 = (n: bigint): number | string => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString());

export const ATTR = 1;
export const DATA = 2;
export const NAMES = 4;

const ALL_NAMES = Buffer.alloc(0);
/** Inodes whose last change seq is remembered exactly. */
const CHANGES_REMEMBERED = 65_536;

interface Waiter { seq: number; resolve(): void }

/**
 * The last change to an inode: its seq and who made it (a session's key; undefined for a unary call
 * or a direct change), and an upper bound of the seqs of changes made by anyone else. A session's
 * own change is never news to it (it made it, and is never sent its own invalidations): without
 * `others`, every create would recall the directory it was just told about from its own session.
 */
interface LastChange { seq: number; by: string | undefined; others: number }

function nextChange(prev: LastChange | undefined, seq: number, by: string | undefined): LastChange {
  if (!prev) return { seq, by, others: 0 };
  if (by !== undefined && prev.by === by) return { seq, by, others: prev.others };
  // The previous change was someone else's (or not a session's): it counts as another's from now on.
  return { seq, by, others: Math.max(prev.others, prev.seq) };
}

/** The seq of the last change to the inode that `session` did not make itself (0: none known). */
function changedByOthers(c: LastChange | undefined, session: string, evictedUpTo: number): number {
  if (!c) return evictedUpTo;
  return c.by === session ? c.others : c.seq;
}

/** One attached session. */
class Holder {
  /** Seq of the last Invalidate sent, and of the last one acknowledged. */
  sent = 0;
  acked = 0;
  waiters: Waiter[] = [];
  timer: NodeJS.Timeout | undefined;
  /** Inode -> the seq of the last invalidation sent about it, while not acknowledged yet. */
  readonly unacked = new Map<bigint, number>();
  /** Inode -> callback bits, least recently registered first (the bound recalls from there). */
  readonly held: LRUCache<bigint, number>;

  constructor(readonly key: string, readonly sink: CallbackSink, readonly ackTimeoutMs: number, max: number, evicted: (h: Holder, ino: bigint, bits: number) => void) {
    this.held = new LRUCache<bigint, number>({
      max,
      dispose: (bits, ino, reason) => {
        if (reason === 'evict') evicted(this, ino, bits);
      },
    });
  }
}

export class Callbacks {
  private readonly sessions = new Map<string, Holder>();
  /** Inode -> the sessions holding a callback on it. */
  private readonly byIno = new Map<bigint, Set<Holder>>();
  /** Inode -> the sessions told about it that have not acknowledged yet (see invalidate). */
  private readonly unackedByIno = new Map<bigint, Set<Holder>>();
  /** Global change counter and, per inode, the seq of its last change (see `registered`). */
  private changeSeq = 0;
  private evictedUpTo = 0;
  private readonly lastChange = new LRUCache<bigint, LastChange>({
    max: CHANGES_REMEMBERED,
    dispose: (c, _ino, reason) => {
      if (reason === 'evict' && c.seq > this.evictedUpTo) this.evictedUpTo = c.seq;
    },
  });

  constructor(readonly nodeId: number, readonly perSession: number) {}

  /** A session's main stream is up: it may hold callbacks from now on. */
  attach(session: string, sink: CallbackSink, ackTimeoutMs: number): void {
    this.detach(session);
    this.sessions.set(session, new Holder(session, sink, ackTimeoutMs, this.perSession, (h, ino, bits) => {
      // Over the bound: the least recently registered callback is recalled.
      this.unhold(h, ino);
      this.recall(h, ino, bits);
    }));
  }

  /** The session's main stream ended (or it was fenced): its callbacks are dropped, nobody waits for its acks. */
  detach(session: string): void {
    const h = this.sessions.get(session);
    if (!h) return;
    this.sessions.delete(session);
    clearTimeout(h.timer);
    for (const ino of h.held.keys()) this.unhold(h, ino);
    h.held.clear();
    for (const ino of h.unacked.keys()) this.settled(h, ino);
    for (const w of h.waiters) w.resolve();
    h.waiters = [];
  }

  /** An InvalidateAck arrived on the session's stream (acknowledging every seq up to `seq`). */
  ack(session: string, seq: number): void {
    const h = this.sessions.get(session);
    if (!h || !(seq > h.acked)) return;
    h.acked = Math.min(seq, h.sent);
    for (const [ino, s] of h.unacked) if (s <= h.acked) this.settled(h, ino);
    const still: Waiter[] = [];
    for (const w of h.waiters) {
      if (w.seq <= h.acked) w.resolve();
      else still.push(w);
    }
    h.waiters = still;
    clearTimeout(h.timer);
    h.timer = undefined;
    if (still.length > 0) this.armTimer(h);
  }

  /** The seq of the last Invalidate sent to `session` (ServerFrame.after); 0 when none. */
  sentUpTo(session: string): number {
    return this.sessions.get(session)?.sent ?? 0;
  }

  /** Whether any session holds a callback on `ino` (the direct-change watcher skips the rest). */
  watched(ino: bigint): boolean {
    return this.byIno.has(ino);
  }

  /** Whether any session is attached (changes then need to know what they touched). */
  get active(): boolean {
    return this.sessions.size > 0;
  }

  /** Whether `session` is attached (only sessions register callbacks; unary peers do not). */
  isAttached(session: string): boolean {
    return this.sessions.has(session);
  }

  /** The change counter, noted by an operation before it touches the file system. */
  now(): number {
    return this.changeSeq;
  }

  /**
   * `session` may now cache `bits` of `ino`, as learned by an operation that noted `since = now()`
   * before touching the file system. If the inode changed after that, the session is told at once
   * (before its reply is written), so it never keeps what the reply says.
   */
  registered(session: string, ino: bigint, bits: number, since: number): void {
    const h = this.sessions.get(session);
    if (!h) return;
    h.held.set(ino, (h.held.get(ino) ?? 0) | bits);
    let holders = this.byIno.get(ino);
    if (!holders) this.byIno.set(ino, (holders = new Set()));
    holders.add(h);
    if (changedByOthers(this.lastChange.get(ino), session, this.evictedUpTo) > since) this.recall(h, ino, bits);
  }

  /**
   * Sends each change to every session but `except` that holds a callback on it, and resolves when
   * all of them acknowledged (or were fenced for not doing so in time). Never rejects.
   */
  invalidate(changes: readonly Change[], except?: string): Promise<void> {
    const seq = ++this.changeSeq;
    const told = new Set<Holder>();
    // A session told earlier about one of these inodes and not done with it yet (a direct change,
    // a recall, another writer's change, whose ack nobody waits for) may still answer from what it
    // cached, and no longer holds the callback (an attr invalidation uses it up): this change too
    // returns only once it acknowledged that.
    const earlier: Array<Promise<void>> = [];
    for (const c of changes) {
      const ino = c.kind === 'name' ? c.dir : c.ino;
      for (const h of this.unackedByIno.get(ino) ?? []) {
        if (h.key !== except) earlier.push(this.acknowledged(h, h.unacked.get(ino) ?? 0));
      }
    }
    for (const c of changes) {
      const ino = c.kind === 'name' ? c.dir : c.ino;
      this.lastChange.set(ino, nextChange(this.lastChange.get(ino), seq, except));
      const holders = this.byIno.get(ino);
      if (!holders) continue;
      const need = c.kind === 'attr' ? ATTR : c.kind === 'data' ? DATA : NAMES;
      for (const h of holders) {
        if (h.key === except) continue;
        const bits = h.held.peek(ino) ?? 0;
        if ((bits & need) === 0) continue;
        // The attributes are dropped by the client: its callback on them is used up.
        if (need === ATTR) this.drop(h, ino, ATTR);
        this.send(h, c);
        told.add(h);
      }
    }
    if (told.size === 0 && earlier.length === 0) return Promise.resolve();
    return Promise.all([...earlier, ...[...told].map((h) => this.acknowledged(h, h.sent))]).then(() => undefined);
  }

  /** Sends to `h` what it must forget of `ino` (a recall: nobody waits for the ack). */
  private recall(h: Holder, ino: bigint, bits: number): void {
    if (bits & ATTR) this.send(h, { kind: 'attr', ino });
    if (bits & DATA) this.send(h, { kind: 'data', ino, offset: 0n, length: 0n });
    if (bits & NAMES) this.send(h, { kind: 'name', dir: ino, name: ALL_NAMES });
  }

  private send(h: Holder, change: Change): void {
    h.sent += 1;
    countInvalidation(h.key);
    const ino = change.kind === 'name' ? change.dir : change.ino;
    h.unacked.set(ino, h.sent);
    let told = this.unackedByIno.get(ino);
    if (!told) this.unackedByIno.set(ino, (told = new Set()));
    told.add(h);
    h.sink.send(h.sent, change);
  }

  /** `h` acknowledged everything it was told about `ino` (or is gone). */
  private settled(h: Holder, ino: bigint): void {
    h.unacked.delete(ino);
    const told = this.unackedByIno.get(ino);
    told?.delete(h);
    if (told?.size === 0) this.unackedByIno.delete(ino);
  }

  /** Removes `bits` of `ino` from what `h` holds. */
  private drop(h: Holder, ino: bigint, bits: number): void {
    const left = (h.held.peek(ino) ?? 0) & ~bits;
    if (left !== 0) {
      h.held.set(ino, left);
      return;
    }
    h.held.delete(ino);
    this.unhold(h, ino);
  }

  private unhold(h: Holder, ino: bigint): void {
    const holders = this.byIno.get(ino);
    if (!holders) return;
    holders.delete(h);
    if (holders.size === 0) this.byIno.delete(ino);
  }

  /** Resolves when `h` acknowledged `seq`, or was fenced or detached. */
  private acknowledged(h: Holder, seq: number): Promise<void> {
    if (h.acked >= seq || !this.sessions.has(h.key)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      h.waiters.push({ seq, resolve });
      if (!h.timer) this.armTimer(h);
    });
  }

  /** The oldest unacknowledged invalidation of `h` must be acked within its timeout, or `h` is fenced. */
  private armTimer(h: Holder): void {
    h.timer = setTimeout(() => {
      h.timer = undefined;
      if (this.sessions.get(h.key) !== h || h.waiters.length === 0) return;
      this.detach(h.key);
      h.sink.fence(`no acknowledgement of invalidation ${h.acked + 1} within ${h.ackTimeoutMs} ms`);
    }, h.ackTimeoutMs);
    h.timer.unref();
  }
}
