// The session service (proto/session.proto): one bidirectional stream per client and node, over
// which the client multiplexes every FileService operation. Each request frame is dispatched to
// the same operation the unary RPC runs (service-ops.ts), for the session's own Peer, and answered
// with one frame carrying its id: the reply message, or the errno.
//
// Decisions:
// - A session is one Peer, keyed "session:<node>:<session id hex>" (not by connection): its open
//   files, its locks and its requests in flight are its own, limited by the same limits.*PerPeer
//   as a connection's (requestsPerPeer, counted over all its streams: a request beyond it is
//   answered EAGAIN before any work). When its main stream ends, however it ends, the peer ends:
//   its open files are closed and its locks and lock waits dropped, as when a connection closes,
//   and its bulk streams are ended (EHOSTDOWN). (Leases, which will keep them for a while, hang off
//   this same SessionState.) A second main stream claiming a live session is refused (EBUSY);
//   resuming comes with leases.
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
// - Invalidations and acks: the frames exist (not sent yet); an ack is ignored.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { Errno, errnoToStatus, toErrno } from '../proto/errno.js';
import {
  SESSION_DIR_BATCH, SESSION_MAX_IO, SESSION_VERSION, decodeClientFrame, encodeServerFrame, sessionServiceDefinition, topLevelFields,
  type ClientFrameIn,
} from '../proto/session-codec.js';
import type { Callbacks } from './callbacks.js';
import type { SessionSettings } from './config.js';
import type { Peer, Peers } from './peers.js';
import type { Ops } from './service-ops.js';

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
}

export interface SessionService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Sessions with a live stream (tests, diagnostics). */
  live(): number;
}

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
    get_lk: r('lock', ops.getLk), set_lk: r('empty', ops.setLk), set_lkw: r('empty', ops.setLkW),
  };
}

/** ServerFrame field numbers of replies (session.proto): a client frame carrying one is a reply sent the wrong way. */
const isReplyField = (n: number): boolean => n >= 64 && n <= 127;
const MAX_SESSION_ID = 64;
const MAIN = 0;
const BULK = 1;

/** One session: its peer, its requests in flight over all its streams, its streams. */
class SessionState {
  inFlight = 0;
  readonly bulk = new Set<ServerStream>();
  constructor(readonly peer: Peer) {}
}

interface Shared {
  opts: SessionServiceOptions;
  routes: Readonly<Record<string, Route>>;
  bootId: Buffer;
  /** Live sessions by peer key. */
  sessions: Map<string, SessionState>;
}

export function createSessionService(opts: SessionServiceOptions): SessionService {
  const shared: Shared = { opts, routes: routesOf(opts.ops), bootId: randomBytes(16), sessions: new Map() };
  const implementation: grpc.UntypedServiceImplementation = {
    Session: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      new ServerStream(call, shared);
    },
  };
  return { definition: sessionServiceDefinition, implementation, live: () => shared.sessions.size };
}

/** One stream of a session (its main stream or a bulk one). */
class ServerStream {
  private state: SessionState | null = null;
  private main = false;
  /** This stream's requests in flight by id; aborting one tells its operation the stream is gone. */
  private readonly pending = new Map<number, AbortController>();
  private clientDone = false;
  private closed = false;
  private readonly cap: number;
  private readonly opts: SessionServiceOptions;

  constructor(private readonly call: grpc.ServerDuplexStream<Buffer, Buffer>, private readonly shared: Shared) {
    this.opts = shared.opts;
    this.cap = shared.opts.peers.limits.requestsPerPeer;
    call.on('data', (buf: Buffer) => this.onFrame(buf));
    call.on('end', () => {
      this.clientDone = true;
      this.finishIfDone();
    });
    call.on('drain', () => call.resume());
    // The client cancelled, the connection broke, or the call ended: this stream is over (and the
    // session with it when it is the main stream).
    call.on('cancelled', () => this.close());
    call.on('close', () => this.close());
    call.on('finish', () => this.close());
    call.on('error', () => this.close());
  }

  private onFrame(buf: Buffer): void {
    if (this.closed) return;
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
    if (op === 'ack') return; // no invalidation is sent yet: nothing to acknowledge
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
    this.run(id, route, f[op!] as never);
  }

  private run(id: number, route: Route, req: never): void {
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
      (reply) => this.settle(id, state, () => this.send({ id, [route.reply]: reply })),
      (err: unknown) => this.settle(id, state, () => this.sendError(id, err)),
    );
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
    const h = f['hello'] as { node: number; session_id: Buffer; boot_id: Buffer; channel: number };
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
    // The node is part of the key: under TLS only that node's certificate can name (or join) it.
    const key = `session:${h.node}:${h.session_id.toString('hex')}`;
    const sessions = this.shared.sessions;
    if (h.channel === MAIN) {
      if (sessions.has(key) || this.opts.peers.has(key)) return this.fail(new Errno('EBUSY', 'this session is open on another stream'));
      this.state = new SessionState(this.opts.peers.get(key));
      this.main = true;
      sessions.set(key, this.state);
    } else {
      const state = sessions.get(key);
      if (!state) return this.fail(new Errno('ENOENT', 'a bulk stream joins an open session: no session with this id is open'));
      this.state = state;
      state.bulk.add(this);
    }
    this.send({
      id: f.id,
      welcome: { node: this.opts.nodeId, boot_id: this.shared.bootId, max_in_flight: this.cap, max_io: SESSION_MAX_IO, version: SESSION_VERSION },
    });
  }

  private send(frame: object): void {
    if (this.closed) return;
    let buf: Buffer;
    try {
      buf = encodeServerFrame(frame);
    } catch (err) {
      // A reply protobufjs cannot write is a bug of ours: the request still gets an answer.
      buf = encodeServerFrame({ id: (frame as { id: number }).id, error: { errno: 5, message: `EIO: reply not encodable: ${toErrno(err).message}` } });
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
    this.call.emit('error', errnoToStatus(err));
  }

  /** The client has sent everything and every reply went out: end the stream (status OK). */
  private finishIfDone(): void {
    if (!this.clientDone || this.pending.size > 0 || this.closed) return;
    this.close();
    this.call.end();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const abort of this.pending.values()) abort.abort();
    const state = this.state;
    if (!state) return;
    if (!this.main) {
      state.bulk.delete(this);
      return;
    }
    // The main stream ended: so does the session, its bulk streams with it.
    this.shared.sessions.delete(state.peer.key);
    this.opts.peers.end(state.peer.key);
    for (const b of [...state.bulk]) b.fail(new Errno('EHOSTDOWN', 'the session ended (its main stream closed)'));
  }
}
