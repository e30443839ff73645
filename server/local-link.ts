// The node's own mount reaching the node's own exports (issue 10, "One daemon per node": DFSA's
// short-circuit): a NodeLink (proto/node-link.ts) whose calls run the file service's operations
// in this process, on the same operation table as session frames (service-ops.ts), with no socket,
// no gRPC and no protobuf encoding in between.
//
// Decisions:
// - One link is one Peer of its own ("local:<node>:<random hex>"), like a session: its open files
//   and locks are its own, under the same per-peer limits (requestsPerPeer: EAGAIN beyond it).
// - Callbacks: the link attaches to the callback table as a session's main stream does, so (a) a
//   change by anyone else (another node's session, a unary call, a process writing the export
//   directly) invalidates what the mount cached, with the same typed Invalidation the session
//   library emits, and the change completes only once the link's listeners' promises settled (the
//   ack); (b) a change made through the link runs the same wrapped operations, so it invalidates
//   every other session's callbacks before it returns. Its own changes are not sent back to it.
// - Ordering: a reply is handed back only after the invalidations sent to the link before it was
//   ready have been delivered (its listeners called: the mount's bookkeeping of what it may cache
//   is then up to date), so the mount never takes a reply for fresher than an invalidation that
//   preceded it. It does not wait for the listeners' promises (the kernel applying them), unlike
//   the session's `after` rule: the kernel's entry invalidation in a directory waits for that
//   directory's lock, which the request being answered may hold (a create in it, recalled by a
//   change someone else made meanwhile): waiting would deadlock the request and the notification.
// - Replies have the shapes the session library returns (64-bit values as numbers, or decimal
//   strings beyond 2^53; bytes as Buffers).
// - Fencing: a link that does not ack in time (the mount's kernel notification is stuck) loses its
//   callbacks like a fenced session, and is told so ('reset': drop every cache), then attached
//   afresh. Unlike a session its open files and locks stay: they belong to processes of this very
//   machine, which are still there.
// - close() (mount gone, daemon stopping): calls in flight are aborted, later ones fail EHOSTDOWN,
//   and the Peer ends (its files closed, its locks released).
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Errno, toErrno } from '../proto/errno.js';
import type { NodeLink } from '../proto/node-link.js';
import type {
  Attr, Caller, DirEntry, Entry, Invalidation, LockArgs, LockReply, Name, SessionStatus, U64,
} from '../proto/session-client.js';
import type { Callbacks, Change } from './callbacks.js';
import type { Peer, Peers } from './peers.js';
import { MAX_IO, type Ops } from './service-ops.js';

export interface LocalLinkOptions {
  ops: Ops;
  peers: Peers;
  callbacks: Callbacks;
  nodeId: number;
  /** How long an invalidation may wait for the link's ack before the link is fenced (the sessions' lease). */
  ackTimeoutMs: number;
  /** Entries per ReadDir batch (the sessions' SESSION_DIR_BATCH). */
  dirBatch: number;
  /** Releases what an operation finishing after the link closed left behind (an fd, a lock). */
  releaseLeftovers(peer: Peer): void;
  /** Called once the link closed (the file service forgets it). */
  onClose?(link: LocalLink): void;
}

/** Names the session library takes as Buffer or string (proto/file-client.ts nameBytes). */
const bytes = (n: Name): Buffer => (typeof n === 'string' ? Buffer.from(n, 'utf8') : n);

/** A 64-bit reply value as the session library returns it: a number when it is a safe integer. */
function u64Shape(v: unknown): U64 {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  const s = String(v ?? 0);
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
}

const u64Fields = ['fh', 'written', 'start', 'end'] as const;
/** The reply with its top-level 64-bit fields in the session library's shape. */
function shaped<T>(reply: T): T {
  if (reply && typeof reply === 'object') {
    const r = reply as Record<string, unknown>;
    for (const f of u64Fields) if (f in r) r[f] = u64Shape(r[f]);
  }
  return reply;
}

/** The typed Invalidation the session library would emit for `change`. */
function invalidationOf(seq: number, change: Change): Invalidation {
  const s = BigInt(seq);
  switch (change.kind) {
    case 'attr': return { seq: s, kind: 'attr', ino: change.ino };
    case 'data': return { seq: s, kind: 'data', ino: change.ino, offset: change.offset, length: change.length };
    case 'name': return { seq: s, kind: 'name', dir: change.dir, name: change.name };
  }
}

type Run = (peer: Peer, req: never, signal: AbortSignal) => Promise<unknown>;

export class LocalLink extends EventEmitter implements NodeLink {
  /** Never reset by a broken stream (there is none); bumped when the link was fenced. */
  epoch = 0;
  private closedWith: Errno | null = null;
  private calls = 0;
  private readonly key: string;
  private readonly peer: Peer;
  private readonly abort = new AbortController();
  /** The ack chain: invalidations are acknowledged in order, each once its listeners settled. */
  private acking: Promise<void> = Promise.resolve();
  /** Settles once the last invalidation sent was delivered to the listeners (replies wait for it). */
  private delivered: Promise<void> = Promise.resolve();
  /** Bumped by a fence: what the old ack chain still holds is dropped (the mount was told to drop everything). */
  private generation = 0;

  constructor(private readonly o: LocalLinkOptions) {
    super();
    this.key = `local:${o.nodeId}:${randomBytes(8).toString('hex')}`;
    this.peer = o.peers.get(this.key);
    this.attach();
  }

  get status(): SessionStatus {
    return this.closedWith ? 'closed' : 'connected';
  }

  get inFlight(): number {
    return this.calls;
  }

  /** The peer key this link's calls run as (tests, diagnostics). */
  get peerKey(): string {
    return this.key;
  }

  close(): void {
    if (this.closedWith) return;
    this.closedWith = new Errno('EHOSTDOWN', 'local link closed');
    this.abort.abort();
    this.o.callbacks.detach(this.key);
    this.o.peers.end(this.key);
    this.emit('state', 'closed');
    this.o.onClose?.(this);
  }

  private attach(): void {
    this.o.callbacks.attach(this.key, {
      send: (seq, change) => this.invalidated(seq, change),
      fence: (why) => this.fenced(why),
    }, this.o.ackTimeoutMs);
  }

  /** One Invalidate: the listeners run now; the ack goes once they (and every earlier one) settled. */
  private invalidated(seq: number, change: Change): void {
    const generation = this.generation;
    // The listeners run in a microtask, off the callback table's own loop (as a session's would,
    // on the frame's arrival): whatever they do cannot reenter the table while it is sending.
    // Deliveries keep their order (microtasks run in order); acks wait for every earlier one too.
    const delivery = Promise.resolve().then(() => (generation === this.generation ? this.tellAll('invalidate', invalidationOf(seq, change)) : []));
    this.delivered = delivery.then(() => undefined);
    const settled = delivery.then((waits) => Promise.all(waits));
    this.acking = Promise.all([this.acking, settled]).then(() => {
      if (generation === this.generation && !this.closedWith) this.o.callbacks.ack(this.key, seq);
    });
  }

  /** The link did not ack in time: its callbacks are gone; the mount must drop all it cached from this node. */
  private fenced(why: string): void {
    if (this.closedWith) return;
    this.epoch += 1;
    // The stuck ack chain is abandoned: replies no longer wait behind it, later invalidations start a new one.
    this.generation += 1;
    this.acking = Promise.resolve();
    this.tellAll('reset', new Errno('ETIMEDOUT', `local link fenced: ${why}`));
    this.attach();
  }

  /** Calls each listener; returns the promises among what they returned (failures reported, not thrown). */
  private tellAll(event: string, ...args: unknown[]): Array<Promise<unknown>> {
    const out: Array<Promise<unknown>> = [];
    for (const listener of this.listeners(event) as Array<(...a: unknown[]) => unknown>) {
      try {
        const r = listener.apply(this, args);
        if (r instanceof Promise) out.push(r.catch((err: unknown) => process.emitWarning(`omfs local link: an '${event}' listener failed: ${String(err)}`)));
      } catch (err) {
        process.emitWarning(`omfs local link: a '${event}' listener threw: ${String(err)}`);
      }
    }
    return out;
  }

  /** Runs one operation for this link's peer, as a session frame would run it. */
  private async run<T>(op: Run, req: object): Promise<T> {
    if (this.closedWith) throw this.closedWith;
    const cap = this.o.peers.limits.requestsPerPeer;
    if (this.calls >= cap) throw new Errno('EAGAIN', `more than ${cap} requests in flight on this link (limits.requestsPerPeer)`);
    this.calls += 1;
    try {
      const reply = await op(this.peer, req as never, this.abort.signal);
      // Invalidations sent before the reply was ready reach the listeners first (see Ordering).
      await this.delivered;
      if (this.peer.gone) {
        this.o.releaseLeftovers(this.peer);
        throw this.closedWith ?? new Errno('EHOSTDOWN', 'local link closed');
      }
      return shaped(reply as T);
    } catch (err) {
      throw toErrno(err);
    } finally {
      this.calls -= 1;
    }
  }

  // ---- typed operations (as the session library's) ----
  private get ops(): Ops {
    return this.o.ops;
  }

  root(caller: Caller, exportPath: string): Promise<Entry> { return this.run(this.ops.root, { caller, export_path: exportPath }); }
  lookup(caller: Caller, dir: Buffer, name: Name): Promise<Entry> { return this.run(this.ops.lookup, { caller, dir, name: bytes(name) }); }
  async getAttr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Attr> {
    return (await this.run<{ attr: Attr }>(this.ops.getAttr, { caller, handle, fh })).attr;
  }
  async setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr> {
    return (await this.run<{ attr: Attr }>(this.ops.setAttr, { caller, handle, ...fields })).attr;
  }
  access(caller: Caller, handle: Buffer, mask: number): Promise<unknown> { return this.run(this.ops.access, { caller, handle, mask }); }
  mkdir(caller: Caller, dir: Buffer, name: Name, mode = 0o755, umask = 0): Promise<Entry> {
    return this.run(this.ops.mkdir, { caller, dir, name: bytes(name), mode, umask });
  }
  mknod(caller: Caller, dir: Buffer, name: Name, mode: number, umask = 0, rdev: U64 = 0): Promise<Entry> {
    return this.run(this.ops.mknod, { caller, dir, name: bytes(name), mode, umask, rdev });
  }
  create(caller: Caller, dir: Buffer, name: Name, flags: number, mode = 0o644, umask = 0): Promise<{ entry: Entry; fh: U64 }> {
    return this.run(this.ops.create, { caller, dir, name: bytes(name), flags, mode, umask });
  }
  async open(caller: Caller, handle: Buffer, flags: number): Promise<U64> {
    return (await this.run<{ fh: U64 }>(this.ops.open, { caller, handle, flags })).fh;
  }
  release(caller: Caller, fh: U64, handle?: Buffer, locks?: { clientId: string; lockOwner: U64 }): Promise<unknown> {
    return this.run(this.ops.release, {
      caller, fh, handle: handle ?? Buffer.alloc(0), flush_locks: locks !== undefined, client_id: locks?.clientId ?? '', lock_owner: locks?.lockOwner ?? 0,
    });
  }
  unlink(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.run(this.ops.unlink, { caller, dir, name: bytes(name) }); }
  rmdir(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.run(this.ops.rmdir, { caller, dir, name: bytes(name) }); }
  rename(caller: Caller, oldDir: Buffer, oldName: Name, newDir: Buffer, newName: Name, flags = 0): Promise<unknown> {
    return this.run(this.ops.rename, { caller, old_dir: oldDir, old_name: bytes(oldName), new_dir: newDir, new_name: bytes(newName), flags });
  }
  link(caller: Caller, handle: Buffer, newDir: Buffer, newName: Name): Promise<Entry> {
    return this.run(this.ops.link, { caller, handle, new_dir: newDir, new_name: bytes(newName) });
  }
  symlink(caller: Caller, dir: Buffer, name: Name, target: Name): Promise<Entry> {
    return this.run(this.ops.symlink, { caller, dir, name: bytes(name), target: bytes(target) });
  }
  async readlink(caller: Caller, handle: Buffer): Promise<Buffer> {
    return (await this.run<{ target: Buffer }>(this.ops.readlink, { caller, handle })).target;
  }
  async statFs(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Record<string, U64>> {
    const r = await this.run<Record<string, unknown>>(this.ops.statFs, { caller, handle, fh });
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, u64Shape(v)]));
  }
  fsync(caller: Caller, handle: Buffer, fh: U64, datasync = false): Promise<unknown> { return this.run(this.ops.fsync, { caller, handle, fh, datasync }); }
  fallocate(caller: Caller, handle: Buffer, fh: U64, offset: number, length: number, mode = 0): Promise<unknown> {
    return this.run(this.ops.fallocate, { caller, handle, fh, offset, length, mode });
  }
  async copyFileRange(caller: Caller, inHandle: Buffer, fhIn: U64, offIn: number, outHandle: Buffer, fhOut: U64, offOut: number, length: number): Promise<number> {
    return Number((await this.run<{ written: U64 }>(this.ops.copyFileRange, {
      caller, handle_in: inHandle, fh_in: fhIn, offset_in: offIn, handle_out: outHandle, fh_out: fhOut, offset_out: offOut, length, flags: 0,
    })).written);
  }
  async lseek(caller: Caller, handle: Buffer, fh: U64, offset: number, whence: number): Promise<number> {
    return Number((await this.run<{ offset: U64 }>(this.ops.lseek, { caller, handle, fh, offset, whence })).offset);
  }
  async getXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<Buffer> {
    return (await this.run<{ value: Buffer }>(this.ops.getXattr, { caller, handle, name, fh })).value;
  }
  setXattr(caller: Caller, handle: Buffer, name: string, value: Buffer, flags = 0, fh: U64 = 0): Promise<unknown> {
    return this.run(this.ops.setXattr, { caller, handle, name, value, flags, fh });
  }
  async listXattr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<string[]> {
    return (await this.run<{ names: string[] }>(this.ops.listXattr, { caller, handle, fh })).names;
  }
  removeXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<unknown> {
    return this.run(this.ops.removeXattr, { caller, handle, name, fh });
  }
  getLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<LockReply> { return this.run(this.ops.getLk, lockReq(caller, handle, lock)); }
  setLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.run(this.ops.setLk, lockReq(caller, handle, lock)); }
  setLkW(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.run(this.ops.setLkW, lockReq(caller, handle, lock)); }

  /** Reads up to `size` bytes in MAX_IO pieces (the operation's own bound); stops at a short one (end of file). */
  async read(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags = 0): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let at = 0; at < size || at === 0; at += MAX_IO) {
      const want = Math.min(MAX_IO, size - at);
      const { data } = await this.run<{ data: Buffer }>(this.ops.readWhole, { caller, handle, fh, flags, offset: offset + at, size: want });
      parts.push(data);
      if (data.length < want || size === 0) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Writes `data` in MAX_IO pieces, one after the other (O_APPEND keeps their order). */
  async write(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags = 0): Promise<number> {
    let written = 0;
    for (let at = 0; at < data.length || at === 0; at += MAX_IO) {
      const piece = data.subarray(at, at + MAX_IO);
      written += Number((await this.run<{ written: U64 }>(this.ops.writeOne, { caller, handle, fh, flags, offset: offset + at, data: piece })).written);
      if (data.length === 0) break;
    }
    return written;
  }

  async readDirBatch(caller: Caller, dir: Buffer, cookie: U64 = 0): Promise<{ entries: DirEntry[]; eof: boolean }> {
    const max = this.o.dirBatch;
    const run: Run = (p, r, signal) => this.ops.readDirBatch(p, r, max, signal);
    const b = await this.run<{ entries: DirEntry[]; eof: boolean }>(run, { caller, dir, cookie });
    return { entries: b.entries.map((e) => (e.entry ? { name: e.name, cookie: u64Shape(e.cookie), entry: e.entry } : { name: e.name, cookie: u64Shape(e.cookie) })), eof: b.eof };
  }
}

const lockReq = (caller: Caller, handle: Buffer, l: LockArgs): object => ({
  caller, handle, client_id: l.clientId, lock_owner: l.lockOwner, start: l.start, end: l.end, type: l.type,
});
