// The session service (proto/session.proto): one bidirectional stream per client and node, over
// which the client multiplexes every FileService operation. Each request frame is dispatched to
// the same operation the unary RPC runs (service-ops.ts), for the session's own Peer, and answered
// with one frame carrying its id: the reply message, or the errno.
//
// Decisions:
// - A session is one Peer, keyed "session:<node>:<session id hex>" (not by connection): its open
//   files, its locks and its requests in flight are its own, limited by the same limits.*PerPeer
//   as a connection's (requestsPerPeer, counted over all its streams: a request beyond it is
//   answered EAGAIN before any work). The node is part of the key: under TLS only that node's
//   certificate can open, join or resume it.
// - Leases. When a session's main stream ends, however it ends (the client closed it, its
//   connection broke, keepalive found it dead), the session is "away": its callbacks are dropped,
//   its bulk streams are ended (EHOSTDOWN), every request still in flight on its streams is aborted
//   (so a SetLkW waiting is dropped: nobody could receive the grant), and its Peer (open files,
//   locks) is kept for settings.leaseMs. Then it expires: the Peer ends (files closed, locks
//   released, waiters on them woken).
// - Resume. A Hello on channel 0 with resume=true for a session the server holds takes it back
//   (Welcome.resumed): same Peer, same fhs and locks, callbacks attached afresh. If its old main
//   stream is still open (the client saw the break first), the new stream takes over and the old
//   one is ended (ECONNRESET). resume=true for a session the server does not hold (expired, fenced,
//   never opened, or lost with a daemon restart) or from another boot of the client is refused with
//   ESTALE; resume=false naming a session the server holds (live or away) is EBUSY.
// - Boot ids. The model is one client process per node (its mfsd) talking to this server: a new
//   session (resume=false) from node N with a boot id other than that of N's away sessions means N
//   restarted, and those away sessions expire at once instead of holding locks for their lease.
//   Live sessions are left alone (another process of N may legitimately hold one).
// - Fencing. A session that does not acknowledge an invalidation in time (callbacks.ts) ends at
//   once as an expired lease does; its streams end with ETIMEDOUT; a later resume gets ESTALE.
// - Persistence (session-store.ts, session-restore.ts): the server writes each session's open
//   files and locks behind (never on the read/write/getattr path); at start the sessions of the
//   last run come back away, with a fresh lease.
// - Callbacks: the main stream carries Invalidate frames (id 0), written even while the stream is
//   paused for backpressure; every frame on every stream of a session carries `after` =
//   callbacks.sentUpTo(session) at the moment it is written (proto "Ordering"). An ack on any of
//   the session's streams is passed on.
// - Bulk streams (Hello.channel 1) join a live session: the client sends its 1 MiB reads and writes
//   there, so that HTTP/2 interleaves small replies on the main stream with the bulk data instead
//   of queueing them behind whole 1 MiB messages. A bulk stream that ends alone only loses its own
//   requests in flight.
// - Hello first. Under mutual TLS the node number it claims must be the one the client certificate
//   names (CN node<N>), else the stream ends with EACCES. A first frame that is not a Hello ends the
//   stream with EINVAL. Session-level failures end the stream with an errno status
//   (proto/errno.ts); per-request failures are error frames and the session goes on.
// - Hostile input: a frame that does not decode is answered with an error frame of id 0 (EINVAL);
//   id 0, an id already in flight, a second Hello or a reply sent by the client get an EINVAL frame;
//   an operation this server does not know gets ENOSYS. None of these does any work.
// - Backpressure: replies are written in the order they complete. When the stream's write buffer is
//   full (the client does not read), the session stops reading requests until it drains, so a
//   client that floods without reading pins at most requestsPerPeer operations plus the buffered
//   replies, and HTTP/2 flow control holds the rest at the client.
// - Daemon stop (shutdown()): every stream stops taking requests, ends (ESHUTDOWN) once its
//   requests in flight are answered, and its session stays held (persisted) for the next start.
// - Two transports, one service: a stream is a gRPC call of the Session method, or a raw TLS
//   connection (proto/frame-wire.ts, server/session-raw.ts) that carries the same frames; every
//   rule above holds for both.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Errno, errnoToStatus, toErrno } from '../proto/errno.js';
import {
  SESSION_DIR_BATCH, SESSION_MAX_FRAME, SESSION_MAX_IO, SESSION_VERSION, decodeClientFrame, encodeServerFrame, sessionServiceDefinition, topLevelFields,
  type ClientFrameIn,
} from '../proto/session-codec.js';
import { invalidateMessage, type Callbacks, type Change } from './callbacks.js';
import type { SessionSettings } from './config.js';
import type { LockTable } from './locks.js';
import type { Peer, Peers } from './peers.js';
import type { Ops } from './service-ops.js';
import type { SessionStore, StoredOpen, StoredSession } from './session-store.js';
import type { SessionGate } from './mfs-access.js';
import type { WireCaller } from './wire.js';
import { countOperation } from './metrics.js';
import { afterChange } from '../proto/after-change.js';
import { RawSessionCall } from './session-raw.js';

export interface SessionServiceOptions {
  ops: Ops;
  peers: Peers;
  nodeId: number;
  /** Mutual TLS is on: check the Hello's node against the client certificate's CN node<N>. */
  checkNodeCertificate: boolean;
  /** Releases what an operation finishing after its session ended left behind (an fd, a lock). */
  releaseLeftovers(peer: Peer): void;
  /** The callback table: attach a session's main stream, pass acks on, stamp replies with `after`. */
  callbacks: Callbacks;
  /** Lease, keepalive and callback bounds. */
  settings: SessionSettings;
  /** Where sessions are persisted (none: they die with the daemon), and the locks their records list. */
  store?: SessionStore;
  locks?: LockTable;
  /** Sessions of the last run, already reinstated (session-restore.ts): held away with a fresh lease. */
  restored?: readonly StoredSession[];
  /** Who may open or resume a session now (mfsctl nomfs: server/mfs-access.ts); default: everyone. */
  gate?: SessionGate;
}

export interface SessionService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Sessions with a live main stream (tests, diagnostics). */
  live(): number;
  /** Sessions held, live or away (tests, diagnostics). */
  held(): number;
  /** Daemon stop: streams end once their requests are answered; sessions stay held (and persisted). */
  shutdown(): void;
  /** A TLS connection (handshake and client certificate checked) that asked for the raw transport. */
  acceptRaw(socket: TLSSocket): void;
}

/** How long a raw connection may take to send its preface. */
const RAW_PREFACE_MS = 10_000;

/** A stream of the service: a gRPC call, or a raw connection shaped like one. */
type SessionCall = grpc.ServerDuplexStream<Buffer, Buffer> | RawSessionCall;

type Run = (peer: Peer, req: never, signal: AbortSignal) => Promise<unknown>;
interface Route { reply: string; run: Run }

/** Each ClientFrame operation: the core operation it runs and the ServerFrame field of its reply. */
function routesOf(ops: Ops): Readonly<Record<string, Route>> {
  const r = (reply: string, run: Run): Route => ({ reply, run });
  return {
    root: r('entry', ops.root), lookup: r('entry', ops.lookup), get_attr: r('attr', ops.getAttr), set_attr: r('attr', ops.setAttr),
    access: r('empty', ops.access),
    read_dir: r('dir', (p, req, signal) => ops.readDirBatch(p, req, SESSION_DIR_BATCH, signal)),
    open: r('open', ops.open), create: r('create', ops.create),
    read: r('data', ops.readWhole), write: r('written', ops.writeOne),
    fsync: r('empty', ops.fsync), release: r('empty', ops.release),
    mkdir: r('entry', ops.mkdir), mknod: r('entry', ops.mknod), unlink: r('empty', ops.unlink), rmdir: r('empty', ops.rmdir),
    rename: r('empty', ops.rename), link: r('entry', ops.link), symlink: r('entry', ops.symlink),
    readlink: r('link_target', ops.readlink), stat_fs: r('stat_fs', ops.statFs),
    get_xattr: r('xattr', ops.getXattr), set_xattr: r('empty', ops.setXattr), list_xattr: r('xattr_names', ops.listXattr),
    remove_xattr: r('empty', ops.removeXattr), fallocate: r('empty', ops.fallocate),
    lseek: r('position', ops.lseek), copy_file_range: r('written', ops.copyFileRange),
    get_lk: r('lock', ops.getLk), set_lk: r('empty', ops.setLk), set_lkw: r('empty', ops.setLkW),
  };
}

/** Operations whose success changes what a session's persisted record holds (open files, locks). */
const PERSISTED = new Set(['open', 'create', 'release', 'set_lk', 'set_lkw']);

/** ServerFrame field numbers of replies (session.proto): a client frame carrying one is a reply sent the wrong way. */
const isReplyField = (n: number): boolean => n >= 64 && n <= 127;
const MAX_SESSION_ID = 64;
const MAIN = 0;
const BULK = 1;

/** One session the server holds: live (a main stream) or away (none, its lease running). */
class SessionState {
  inFlight = 0;
  readonly bulk = new Set<ServerStream>();
  main: ServerStream | null = null;
  lease: NodeJS.Timeout | undefined;
  /** Set once the session expired or was fenced: nothing may bring it back. */
  ended = false;
  /** Its open files, as its persisted record lists them (fh -> how to reopen). */
  readonly opens = new Map<string, StoredOpen>();
  constructor(readonly peer: Peer, readonly node: number, readonly bootId: Buffer) {}
}

interface Shared {
  opts: SessionServiceOptions;
  routes: Readonly<Record<string, Route>>;
  bootId: Buffer;
  /** Sessions held (live and away) by peer key. */
  sessions: Map<string, SessionState>;
  /** Every open stream (shutdown). */
  streams: Set<ServerStream>;
  stopping: boolean;
}

export function createSessionService(opts: SessionServiceOptions): SessionService {
  const shared: Shared = {
    opts, routes: routesOf(opts.ops), bootId: randomBytes(16), sessions: new Map(), streams: new Set(), stopping: false,
  };
  for (const r of opts.restored ?? []) {
    const state = new SessionState(opts.peers.get(r.key), r.node, Buffer.from(r.bootId, 'hex'));
    for (const o of r.opens) state.opens.set(o.fh, o);
    shared.sessions.set(r.key, state);
    startLease(shared, state);
  }
  opts.store?.setSnapshot((key) => snapshot(shared, key));
  const implementation: grpc.UntypedServiceImplementation = {
    Session: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      new ServerStream(call, shared);
    },
  };
  return {
    definition: sessionServiceDefinition,
    implementation,
    live: () => [...shared.sessions.values()].filter((s) => s.main !== null).length,
    held: () => shared.sessions.size,
    shutdown: () => {
      shared.stopping = true;
      for (const s of shared.sessions.values()) clearTimeout(s.lease);
      for (const st of [...shared.streams]) st.drain();
    },
    acceptRaw: (socket) => {
      const call = new RawSessionCall(socket, { maxPayload: SESSION_MAX_FRAME, keepaliveMs: opts.settings.keepaliveMs, prefaceMs: RAW_PREFACE_MS });
      new ServerStream(call, shared);
    },
  };
}

/** The persisted record of session `key` as it stands, or null when the server no longer holds it. */
function snapshot(shared: Shared, key: string): StoredSession | null {
  const s = shared.sessions.get(key);
  if (!s || s.ended) return null;
  const locks = (shared.opts.locks?.heldBy(key) ?? []).map((l) => ({
    file: l.fileKey, start: l.start.toString(), end: l.end.toString(), type: l.type, owner: l.owner, pid: l.pid,
  }));
  return { key, node: s.node, bootId: s.bootId.toString('hex'), opens: [...s.opens.values()], locks };
}

/** The session's main stream is gone: its state lives on for the lease, then expires. */
function startLease(shared: Shared, state: SessionState): void {
  clearTimeout(state.lease);
  if (shared.stopping) return; // kept for the next start (persisted); its lease restarts there
  const ms = shared.opts.settings.leaseMs;
  state.lease = setTimeout(() => endSession(shared, state, new Errno('ESTALE', `session expired: its lease of ${ms} ms ran out`)), ms);
  state.lease.unref();
}

/**
 * Ends a held session for good (lease expired, fenced, its client restarted): its Peer ends (files
 * closed, locks released), its streams end with `why`, its record is deleted.
 */
function endSession(shared: Shared, state: SessionState, why: Errno): void {
  if (state.ended) return;
  state.ended = true;
  clearTimeout(state.lease);
  const key = state.peer.key;
  if (shared.sessions.get(key) === state) shared.sessions.delete(key);
  shared.opts.callbacks.detach(key);
  const main = state.main;
  state.main = null;
  shared.opts.peers.end(key);
  main?.fail(why);
  for (const b of [...state.bulk]) b.fail(why);
  shared.opts.store?.touch(key);
}

/** N restarted (a new session with another boot id): its away sessions expire now. */
function expireRestarted(shared: Shared, node: number, bootId: Buffer): void {
  for (const s of [...shared.sessions.values()]) {
    if (s.node === node && !s.main && !s.bootId.equals(bootId)) {
      endSession(shared, s, new Errno('ESTALE', 'session expired: its client restarted'));
    }
  }
}

/** One stream of a session (its main stream or a bulk one). */
class ServerStream {
  private state: SessionState | null = null;
  private main = false;
  /** This stream's requests in flight by id; aborting one tells its operation the stream is gone. */
  private readonly pending = new Map<number, AbortController>();
  private clientDone = false;
  /** The client said Goodbye on this main stream: when it ends, the session ends without a lease. */
  private goodbye = false;
  private closed = false;
  /** The daemon is stopping: no new requests; the stream ends once the pending ones are answered. */
  private draining = false;
  private readonly cap: number;
  private readonly opts: SessionServiceOptions;

  constructor(private readonly call: SessionCall, private readonly shared: Shared) {
    this.opts = shared.opts;
    this.cap = shared.opts.peers.limits.requestsPerPeer;
    shared.streams.add(this);
    call.on('data', (buf: Buffer) => this.onFrame(buf));
    call.on('end', () => {
      this.clientDone = true;
      this.finishIfDone();
    });
    call.on('drain', () => {
      if (!this.draining) call.resume();
    });
    // The client cancelled, the connection broke, or the call ended: this stream is over (and the
    // session goes away when it is the main stream).
    call.on('cancelled', () => this.close());
    call.on('close', () => this.close());
    call.on('finish', () => this.close());
    call.on('error', () => this.close());
    if (shared.stopping) this.fail(new Errno('ESHUTDOWN', 'mfsd is stopping'));
  }

  private onFrame(buf: Buffer): void {
    if (this.closed || this.draining) return;
    let f: ClientFrameIn;
    try {
      f = decodeClientFrame(buf);
    } catch (err) {
      this.sendError(0, new Errno('EINVAL', `undecodable frame: ${(err as Error).message}`));
      return;
    }
    if (!this.state) {
      this.hello(f);
      return;
    }
    const id = f.id;
    const op = f.op;
    if (op === 'ack') {
      const seq = Number((f['ack'] as { seq?: number | string } | undefined)?.seq ?? 0);
      if (Number.isFinite(seq)) this.opts.callbacks.ack(this.state.peer.key, seq);
      return;
    }
    if (op === 'goodbye') {
      // Only the main stream speaks for the session; on a bulk stream it means nothing.
      if (this.main) this.goodbye = true;
      return;
    }
    if (op === 'hello') return this.sendError(id, new Errno('EINVAL', 'the session is already open: one Hello per stream'));
    const route = op === undefined ? undefined : this.shared.routes[op];
    if (!route) {
      const reply = topLevelFields(buf).some(isReplyField);
      return this.sendError(id, reply ? new Errno('EINVAL', 'a reply frame: a client sends requests') : new Errno('ENOSYS', 'no operation this server knows'));
    }
    if (id === 0) return this.sendError(0, new Errno('EINVAL', 'request id 0 is reserved'));
    if (this.pending.has(id)) return this.sendError(id, new Errno('EINVAL', `request id ${id} is already in flight`));
    if (this.state.inFlight >= this.cap) {
      return this.sendError(id, new Errno('EAGAIN', `more than ${this.cap} requests in flight on this session (limits.requestsPerPeer)`));
    }
    this.run(id, op!, route, f[op!] as never);
  }

  private run(id: number, op: string, route: Route, req: never): void {
    const state = this.state!;
    const peer = state.peer;
    const abort = new AbortController();
    this.pending.set(id, abort);
    state.inFlight += 1;
    let done: Promise<unknown>;
    try {
      done = route.run(peer, req, abort.signal);
    } catch (err) {
      done = Promise.reject(err);
    }
    done.then(
      (reply) => {
        countOperation(peer.key, op, req, reply);
        // Recorded even when the stream is gone meanwhile: the fh or lock is the session's until it ends.
        if (PERSISTED.has(op)) this.persisted(state, op, req, reply);
        const attrs = afterChange<object>(reply);
        this.settle(id, state, () => this.send(attrs.length > 0 ? { id, [route.reply]: reply, attrs } : { id, [route.reply]: reply }));
      },
      (err: unknown) => this.settle(id, state, () => this.sendError(id, err)),
    );
  }

  /** Keeps the session's record in step with an open, create, release or lock call that succeeded. */
  private persisted(state: SessionState, op: string, req: unknown, reply: unknown): void {
    const store = this.opts.store;
    if (!store || state.ended) return;
    if (op === 'open' || op === 'create') {
      const q = req as { caller: WireCaller; handle?: Buffer; flags: number };
      const r = reply as { fh: string | number; entry?: { handle: Buffer } };
      const handle = op === 'open' ? q.handle : r.entry?.handle;
      if (!handle) return;
      const fh = String(r.fh);
      const c = q.caller;
      state.opens.set(fh, { fh, handle: handle.toString('base64'), flags: q.flags >>> 0, caller: { uid: c.uid, gid: c.gid, groups: [...(c.groups ?? [])], pid: c.pid } });
    } else if (op === 'release') {
      state.opens.delete(String((req as { fh: string | number }).fh));
    }
    store.touch(state.peer.key);
  }

  private settle(id: number, state: SessionState, answer: () => void): void {
    this.pending.delete(id);
    state.inFlight -= 1;
    const peer = state.peer;
    if (peer.gone) {
      // The session ended while this ran: what it opened or locked goes with the session.
      this.opts.releaseLeftovers(peer);
      return;
    }
    answer();
    this.finishIfDone();
  }

  private hello(f: ClientFrameIn): void {
    if (f.op !== 'hello') return this.fail(new Errno('EINVAL', 'the first frame of a session must be a Hello'));
    const h = f['hello'] as { node: number; session_id: Buffer; boot_id: Buffer; channel: number; resume?: boolean };
    if (h.session_id.length === 0 || h.session_id.length > MAX_SESSION_ID) {
      return this.fail(new Errno('EINVAL', `a session id is 1 to ${MAX_SESSION_ID} bytes`));
    }
    if (h.channel !== MAIN && h.channel !== BULK) return this.fail(new Errno('EINVAL', `unknown channel ${h.channel}`));
    if (this.opts.checkNodeCertificate) {
      const cn = this.call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
      if (typeof cn !== 'string' || cn !== `node${h.node}`) {
        return this.fail(new Errno('EACCES', `the session claims node ${h.node} but the client certificate names ${typeof cn === 'string' ? JSON.stringify(cn) : 'no node'}`));
      }
    }
    // mfsctl nomfs: a new session of another node is refused (EACCES), a resume waits (EHOSTDOWN).
    const refused = this.opts.gate?.admit(h.node, h.channel === MAIN && !h.resume, (why) => this.fail(why), this.call);
    if (refused) return this.fail(refused);
    // The node is part of the key: under TLS only that node's certificate can name (or join) it.
    const key = `session:${h.node}:${h.session_id.toString('hex')}`;
    const sessions = this.shared.sessions;
    let resumed = false;
    if (h.channel === MAIN) {
      const bootId = Buffer.from(h.boot_id ?? Buffer.alloc(0));
      if (h.resume) {
        const held = sessions.get(key);
        if (!held || held.ended) return this.fail(new Errno('ESTALE', 'session expired: its open files and locks were released'));
        if (!held.bootId.equals(bootId)) {
          // Another boot of the client: what the session holds is not this process's.
          if (!held.main) endSession(this.shared, held, new Errno('ESTALE', 'session expired: its client restarted'));
          return this.fail(new Errno('ESTALE', 'session expired: resumed from another boot of its client'));
        }
        // The client saw the break before the server: the new stream takes over.
        held.main?.fail(new Errno('ECONNRESET', 'another stream resumed this session'));
        this.state = held;
        resumed = true;
      } else {
        expireRestarted(this.shared, h.node, bootId);
        if (sessions.has(key) || this.opts.peers.has(key)) return this.fail(new Errno('EBUSY', 'this session is open on another stream'));
        this.state = new SessionState(this.opts.peers.get(key), h.node, bootId);
        sessions.set(key, this.state);
      }
      this.main = true;
      this.attach(this.state);
    } else {
      const state = sessions.get(key);
      if (!state || !state.main) return this.fail(new Errno('ENOENT', 'a bulk stream joins an open session: no session with this id is open'));
      this.state = state;
      state.bulk.add(this);
    }
    this.send({
      id: f.id,
      welcome: {
        node: this.opts.nodeId, boot_id: this.shared.bootId, max_in_flight: this.cap, max_io: SESSION_MAX_IO, version: SESSION_VERSION,
        resumed, lease_ms: this.opts.settings.leaseMs,
      },
    });
  }

  /** This stream becomes its session's main stream: the lease stops, callbacks flow to it. */
  private attach(state: SessionState): void {
    clearTimeout(state.lease);
    state.lease = undefined;
    state.main = this;
    const key = state.peer.key;
    this.opts.callbacks.attach(key, {
      send: (seq: number, change: Change) => this.send({ id: 0, invalidate: invalidateMessage(seq, change) }),
      fence: (why: string) => endSession(this.shared, state,
        new Errno('ETIMEDOUT', `session fenced for not acknowledging an invalidation (${why}): its open files and locks were released`)),
    }, this.opts.settings.leaseMs);
    this.opts.store?.touch(key);
  }

  /** Writes one frame, stamped with `after` (proto "Ordering"); never dropped for backpressure. */
  private send(frame: Record<string, unknown>): void {
    if (this.closed) return;
    frame['after'] = this.state ? this.opts.callbacks.sentUpTo(this.state.peer.key) : 0;
    let buf: Buffer;
    try {
      buf = encodeServerFrame(frame);
    } catch (err) {
      // A reply protobufjs cannot write is a bug of ours: the request still gets an answer.
      buf = encodeServerFrame({ id: frame['id'], after: frame['after'], error: { errno: 5, message: `EIO: reply not encodable: ${toErrno(err).message}` } });
    }
    // The client is not taking replies: stop taking requests until it does ('drain' resumes).
    if (!this.call.write(buf)) this.call.pause();
  }

  private sendError(id: number, err: unknown): void {
    const e = toErrno(err);
    this.send({ id, error: { errno: e.errno, message: e.message } });
  }

  /** Ends the stream with an errno status (session-level failure). */
  fail(err: Errno): void {
    if (this.closed) return;
    this.close();
    if (this.call instanceof RawSessionCall) this.call.fail(err);
    else this.call.emit('error', errnoToStatus(err));
  }

  /** Daemon stop: take no more requests; end (ESHUTDOWN) once those in flight are answered. */
  drain(): void {
    if (this.closed) return;
    this.draining = true;
    this.call.pause();
    this.finishIfDone();
  }

  /** The client has sent everything (or the daemon stops) and every reply went out: end the stream. */
  private finishIfDone(): void {
    if (this.closed || this.pending.size > 0) return;
    if (this.draining) return this.fail(new Errno('ESHUTDOWN', 'mfsd is stopping: resume the session when it is back'));
    if (!this.clientDone) return;
    this.close();
    this.call.end();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shared.streams.delete(this);
    for (const abort of this.pending.values()) abort.abort();
    const state = this.state;
    if (!state) return;
    if (!this.main) {
      state.bulk.delete(this);
      return;
    }
    // Ended by endSession, or replaced by a resuming stream: nothing more to do here.
    if (state.main !== this) return;
    if (this.goodbye) return endSession(this.shared, state, new Errno('ESTALE', 'session closed by its client'));
    // The main stream ended: the session goes away, its bulk streams end, its lease starts.
    state.main = null;
    this.opts.callbacks.detach(state.peer.key);
    for (const b of [...state.bulk]) b.fail(new Errno('EHOSTDOWN', 'the session is away (its main stream closed)'));
    startLease(this.shared, state);
  }
}
