// The client side of an omfs session (proto/session.proto): one bidirectional stream to one node's
// mfsd, over which every FileService operation is a request frame with an id; replies are matched
// to their requests by id, in whatever order they come. The methods mirror FileClient's
// (proto/file-client.ts): names and targets as Buffer or UTF-8 string, handles as Buffer, errors as
// Errno. 64-bit values come back as numbers when they fit in 2^53 and as decimal strings when they
// do not (inode numbers, directory cookies): pass them back as they are, or read them with
// Number()/BigInt(), which take both. Nothing here throws from a gRPC callback (issue 8).
//
// Streams: the session's main stream carries every operation but reads and writes, which go on a
// second, bulk stream of the same session (SessionOptions.bulkStream), so that a getattr's reply
// is not queued behind whole 1 MiB messages: HTTP/2 interleaves the two streams' data.
// Transport: with SessionOptions.tls each stream is a TLS connection of its own carrying the frames
// directly (proto/frame-wire.ts, proto/session-raw.ts); without it, a gRPC call on one channel.
// Everything below holds for both.
//
// Reconnect. When a stream of an open session breaks for any reason but close() (the node went
// away, the daemon restarted, the server ended the stream: fenced, shut down), the session
// reconnects on its own, with exponential backoff and jitter (50 ms doubling to 2 s): a Hello with
// the same node, session id and boot id and resume=true, then a new bulk stream.
// - Welcome.resumed: the server kept the session's open files and locks: 'resumed'.
// - Refused with ESTALE (the lease expired, or the session was fenced), or Welcome.resumed false
//   (a server that keeps no state across streams): the session's state on the server is gone.
//   'expired' is emitted (assume every fh and lock from this node lost) and the session goes on as
//   a new one (ESTALE: a new session id, resume false; resumed=false: the server already opened a
//   fresh session under the old id), so later calls work; an old fh then gets EBADF, as it should.
// - Refused with EBUSY: the server has not yet noticed that the old stream is gone; retried (it
//   notices within its keepalive).
// - Any other errno the server answers the Hello with (EACCES: the certificate no longer names
//   this node, EINVAL) is final: the session closes and every call fails with it.
// A dead server (no RST, no FIN: a partition, a stopped host) is noticed by keepalive pings (HTTP/2's
// or the raw transport's; SessionOptions.keepaliveMs, default 5 s) within about twice that.
//
// Hard and soft (SessionOptions.mode), as NFS mounts:
// - hard: calls made while the node is away wait and are sent once the session is back; calls in
//   flight when the stream broke are sent again (a new id) on the new stream. A non-idempotent call
//   whose reply was lost (create, mkdir, unlink, rename, link, a write with O_APPEND) may therefore
//   run twice and answer as the second run saw it (EEXIST, ENOENT, appended twice), as on NFS
//   without a duplicate request cache.
// - soft: the same, but a call waits at most timeoMs (default 10 s) while the node is away, then
//   fails with EIO. A call the server is working on (a SetLkW waiting for its lock) is never timed
//   out while the session is up: only the node's absence counts.
// The default is soft: a library call (a tool, a test, a benchmark) then fails when a node is gone
// instead of hanging forever; a mount that wants hard semantics (the `/mfs` mount's default, as
// NFS's) says so. Session.open() of a node that cannot be reached rejects with EHOSTDOWN, whatever
// the mode, unless `waitToOpen` (hard only): then it retries as a reconnect does until the node
// answers (or close(); a Hello refusal still rejects).
//
// Caches. 'invalidate' (an Invalidation: what changed on the server) is emitted for each Invalidate
// frame; the ack is sent after the listeners returned, so the server's changing call returns only
// once they ran. 'reset' is emitted whenever the stream breaks: the server dropped this session's
// callbacks, so a cache must drop everything it holds from this node (and again on 'expired', when
// fhs and locks are gone too). A reply to a request sent before a reset may come back after it
// (or be re-sent): caching it could keep data no callback covers, so a cache only keeps replies
// to requests made in the current `epoch` (incremented at every reset).
// Ordering (session.proto): every reply carries `after`, the last Invalidate seq the server had sent
// on this session when it wrote it. A reply with after > the last Invalidate this client emitted and
// acked is held until that Invalidate was processed (a bulk-stream reply may overtake Invalidates on
// the main stream), so the cache never sees a reply before an invalidation that preceded it.
//
// Events: 'invalidate' (Invalidation), 'reset' (Errno: why the stream broke), 'resumed',
// 'expired', 'state' (SessionStatus: connected / reconnecting / closed).
import { Client, credentials as grpcCredentials, Metadata, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { setAfterChange } from './after-change.js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Errno, statusToErrno, toErrno } from './errno.js';
import { nameBytes, type Caller, type Name } from './file-client.js';
import { RawClientStream, type RawTls } from './session-raw.js';
import {
  SESSION_MAX_IO, SESSION_METHOD_PATH, SESSION_STREAM_WINDOW, SESSION_VERSION, decodeServerFrame, encodeClientFrame, type ServerFrameIn, type U64,
} from './session-codec.js';

export type { Caller, Name, U64 };
export interface Timespec { sec: U64; nsec: number }
export interface Attr {
  ino: U64; mode: number; nlink: number; uid: number; gid: number; rdev: U64; size: U64; blocks: U64;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}
export interface Entry { handle: Buffer; attr: Attr }
/** `entry` is absent when the caller may read the directory but not search it (names only). */
export interface DirEntry { name: Buffer; cookie: U64; entry?: Entry }
export interface LockReply { conflict: boolean; start: U64; end: U64; type: number; pid: number }
export interface Welcome {
  node: number; boot_id: Buffer; max_in_flight: number; max_io: number; version: number;
  /** The Hello resumed the session's state (open files, locks) on the server. */
  resumed: boolean;
  /** How long the server keeps the session's state after its stream ends (0: a server without leases). */
  lease_ms: number;
}

/**
 * What changed on the server, by cluster inode number (Attr.ino). 64-bit values as bigint.
 * attr: the inode's attributes. data: a byte range of its data (length 0n: to the end of the file).
 * name: a name in directory `dir` (name empty: every name and the listing of the directory).
 */
export type Invalidation =
  | { seq: bigint; kind: 'attr'; ino: bigint }
  | { seq: bigint; kind: 'data'; ino: bigint; offset: bigint; length: bigint }
  | { seq: bigint; kind: 'name'; dir: bigint; name: Buffer };

export type SessionMode = 'hard' | 'soft';
export type SessionStatus = 'connected' | 'reconnecting' | 'closed';

export interface SessionOptions {
  /** This client's node number: under mutual TLS it must be the one its certificate names (node<N>). */
  node: number;
  /** Default: 16 random bytes. */
  sessionId?: Buffer;
  /** Default: one random id per process (a restarted client is a new client). */
  bootId?: Buffer;
  /** Extra gRPC channel options (e.g. grpc.use_local_subchannel_pool for a connection of its own). */
  channelOptions?: ChannelOptions;
  /** Reads and writes on a bulk stream of their own (default true); false: everything on one stream. */
  bulkStream?: boolean;
  /** While the node is away: 'hard' calls wait, 'soft' calls fail EIO after timeoMs. Default 'soft'. */
  mode?: SessionMode;
  /** soft: how long a call waits for an absent node (default 10 000 ms). */
  timeoMs?: number;
  /** HTTP/2 keepalive ping interval and timeout (default 5 000 ms): a dead node is noticed in about twice this. */
  keepaliveMs?: number;
  /** hard only: open() waits for a node that cannot be reached instead of rejecting EHOSTDOWN. */
  waitToOpen?: boolean;
  /**
   * The cluster's TLS material: the session's streams then go over the raw transport
   * (proto/frame-wire.ts), mutual TLS without HTTP/2, instead of gRPC (`creds` and `channelOptions`
   * are then unused). Without it: gRPC with `creds`.
   */
  tls?: RawTls;
}

const PROCESS_BOOT_ID = randomBytes(16);
/** Hello.channel: the session's main stream, a bulk stream joining it. */
const MAIN = 0;
const BULK = 1;
/** The Hello's request id on each stream (requests proper start at 1 too: the Hello is alone on its stream until answered). */
const HELLO_ID = 1;
/** 1 MiB requests one read() keeps in flight. */
const READ_AHEAD = 8;
const DEFAULT_TIMEO_MS = 10_000;
const DEFAULT_KEEPALIVE_MS = 5_000;
/** Reconnect backoff: from 50 ms, doubling, at most 2 s, each wait drawn in [half, full] (jitter: clients of a restarted node do not all come back at once). */
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2_000;
const backoffMs = (attempt: number): number => {
  const full = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16));
  return full / 2 + Math.random() * (full / 2);
};
const identity = (b: Buffer): Buffer => b;
/** The largest frame a client takes from a server (a 1 MiB read, or a listing batch, fits many times). */
const MAX_SERVER_FRAME = 8 * SESSION_MAX_IO;

type Stream = ClientDuplexStream<Buffer, Buffer> | RawClientStream;
/** How long close() lets the server end the session before it cancels the streams (then the lease applies). */
const GOODBYE_MS = 2000;

/** One call, from the request to its reply; re-sent under a new id when its stream broke (hard, or soft within timeo). */
interface Call {
  op: string;
  req: object;
  expect: string;
  bulk: boolean;
  /** Its id on the current link while sent, 0 while it waits for the node. */
  id: number;
  resolve(v: unknown): void;
  reject(e: Errno): void;
  /** soft: fires timeoMs after the call started waiting for the absent node. */
  timeo?: NodeJS.Timeout;
}

/** The streams of one connection; frames of a connection that was replaced are ignored. */
class Conn {
  /** Set by dial() right after the Conn exists (its streams' handlers need the Conn). */
  main?: Stream;
  bulk?: Stream;
  /** Streams whose Hello is still unanswered, with their waiter. */
  readonly greeting = new Map<Stream, { resolve(w: Welcome): void; reject(e: Errno): void }>();
  /** The highest Invalidate seq emitted and acknowledged on this connection. */
  seen = 0;
  /** The last ack still waiting for its listeners' promises (acks go out in order), or null. */
  acking: Promise<void> | null = null;
  /** Replies whose `after` is beyond `seen`, in arrival order. */
  held: Array<{ after: number; frame: ServerFrameIn }> = [];
  down = false;
  /** Why a stream of this connection ended after its Hello was answered (before the session adopted it, too). */
  ended: Errno | null = null;
}

/**
 * Hello refusals that no later attempt can change: this client may not have the session (its
 * certificate, its node number) or speaks something the server does not take. Anything else (the
 * node away, shutting down (ESHUTDOWN), the old stream not yet noticed gone (EBUSY), a bulk stream
 * that lost its session meanwhile (ENOENT)) is worth another attempt.
 */
const FINAL_REFUSALS = new Set(['EACCES', 'EPERM', 'EINVAL', 'EPROTO', 'ENOSYS']);
const transient = (e: Errno): boolean => !FINAL_REFUSALS.has(e.code);

export class Session extends EventEmitter {
  /** The gRPC channel; null on the raw transport (each stream is then a TLS connection of its own). */
  private client: Client | null;
  /** Streams go over the raw transport (SessionOptions.tls), until a node turns out not to speak it. */
  private raw: boolean;
  private readonly opts: SessionOptions;
  private readonly mode: SessionMode;
  private readonly timeoMs: number;
  private readonly keepaliveMs: number;
  private sessionId: Buffer;
  private conn: Conn | null = null;
  /** Calls sent on the current connection, by id. */
  private readonly sent = new Map<number, Call>();
  /** Calls waiting for the node to come back, in the order they were made. */
  private queue: Call[] = [];
  private nextId = 0;
  /** Set once close() ran or the server refused the session for good; every call is rejected with it. */
  private failure: Errno | null = null;
  /** Ends the reconnect backoff's current wait early (close()). */
  private wakeRetry: (() => void) | null = null;
  private state: SessionStatus = 'reconnecting';
  /** Incremented at every reset: a cache keeps only replies to requests made in the current epoch. */
  epoch = 0;
  /** What the server said in its last Welcome. */
  welcome: Welcome | null = null;

  private constructor(private readonly address: string, private readonly creds: ChannelCredentials, opts: SessionOptions) {
    super();
    this.opts = opts;
    this.mode = opts.mode ?? 'soft';
    this.timeoMs = opts.timeoMs ?? DEFAULT_TIMEO_MS;
    this.sessionId = opts.sessionId ?? randomBytes(16);
    this.keepaliveMs = opts.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    this.raw = opts.tls !== undefined;
    this.client = this.raw ? null : this.grpcClient();
  }

  /** The gRPC channel of a session that does not (or can no longer) use the raw transport. */
  private grpcClient(): Client {
    return new Client(this.address, this.creds, {
      'grpc.max_receive_message_length': MAX_SERVER_FRAME,
      // The window this client grants the server, for the stream and the connection (why:
      // SESSION_STREAM_WINDOW). grpc-js has no option for the frame size it accepts: replies come
      // in 16 KiB frames.
      'grpc-node.flow_control_window': SESSION_STREAM_WINDOW,
      'grpc.keepalive_time_ms': this.keepaliveMs,
      'grpc.keepalive_timeout_ms': this.keepaliveMs,
      'grpc.keepalive_permit_without_calls': 1,
      // The channel's own reconnect backoff (1 s to 120 s by default) would otherwise keep our
      // attempts failing fast long after the node is back.
      'grpc.initial_reconnect_backoff_ms': BACKOFF_MIN_MS,
      'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      ...this.opts.channelOptions,
    });
  }

  /**
   * Opens a session (Hello, Welcome). Rejects with the server's Errno (EACCES: wrong node; EBUSY:
   * the id is live) or EHOSTDOWN (the node cannot be reached; with waitToOpen in hard mode it waits).
   */
  static async open(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure(), opts: SessionOptions): Promise<Session> {
    const s = new Session(address, creds, opts);
    const wait = s.mode === 'hard' && opts.waitToOpen === true;
    for (let attempt = 0; ; attempt++) {
      try {
        s.adopt(await s.dial(false));
        return s;
      } catch (err) {
        const e = toErrno(err);
        // EBUSY here is not a stale stream of ours: the caller named a session id that is in use.
        if (!wait || !transient(e) || e.code === 'EBUSY') {
          s.close();
          throw e;
        }
        await s.sleep(backoffMs(attempt));
      }
    }
  }

  /**
   * Ends the session's streams; calls waiting fail EHOSTDOWN. The server keeps the session's open
   * files and locks for its lease (it cannot tell a close from a break), then releases them.
   */
  close(): void {
    const link = this.conn;
    // Said goodbye (a Goodbye frame, then the streams half-closed) rather than dropped: the server releases the
    // session's open files and locks at once instead of holding them for its lease.
    const polite = link !== null && !link.down;
    if (polite) this.goodbye(link);
    this.shutdown(new Errno('EHOSTDOWN', 'session closed'), !polite);
  }

  /** Half-closes `link`'s streams and lets the server end them; cancels them if it has not within GOODBYE_MS. */
  private goodbye(link: Conn): void {
    link.down = true;
    this.conn = null;
    const streams = [...new Set([link.main, link.bulk])].filter((s): s is Stream => s !== undefined);
    let open = streams.length;
    const client = this.client;
    const done = (): void => {
      if (--open > 0) return;
      clearTimeout(timer);
      client?.close();
    };
    const timer = setTimeout(() => {
      for (const stream of streams) {
        try {
          stream.cancel();
        } catch {
          // already gone
        }
      }
      client?.close();
    }, GOODBYE_MS);
    timer.unref();
    try {
      link.main?.write(encodeClientFrame({ id: 0, goodbye: {} }));
    } catch {
      // the stream is already gone: the lease applies
    }
    for (const stream of streams) {
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        done();
      };
      stream.on('status', end);
      stream.on('error', end);
      // The bulk stream first: the server ends the session (and its bulk streams) with the main one.
      try {
        stream.end();
      } catch {
        end();
      }
    }
  }

  /** connected, reconnecting (the node is away: hard calls wait, soft ones until timeo), closed. */
  get status(): SessionStatus {
    return this.state;
  }

  /** Calls made and not answered yet, sent or waiting for the node (tests, diagnostics). */
  get inFlight(): number {
    return this.sent.size + this.queue.length;
  }

  /**
   * Sends one operation (the ClientFrame field name, e.g. 'get_attr') and resolves with its reply
   * message (the ServerFrame field `expect`); `bulk`: on the bulk stream. Every typed method below is this.
   */
  request<T>(op: string, req: object, expect: string, bulk = false): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const call: Call = { op, req, expect, bulk, id: 0, resolve: resolve as (v: unknown) => void, reject };
      if (this.state === 'connected') this.send(call);
      else this.wait(call);
    });
  }

  // ---- calls ----

  /** Writes `call` on the current link under a fresh id. */
  private send(call: Call): void {
    const link = this.conn!;
    let frame: Buffer;
    const id = this.freeId();
    try {
      frame = encodeClientFrame({ id, [call.op]: call.req });
    } catch (err) {
      call.reject(toErrno(err));
      return;
    }
    call.id = id;
    this.sent.set(id, call);
    (call.bulk ? link.bulk : link.main)!.write(frame);
  }

  /** The node is away: `call` waits for the link (soft: at most timeoMs from now). */
  private wait(call: Call): void {
    call.id = 0;
    this.queue.push(call);
    if (this.mode !== 'soft') return;
    call.timeo = setTimeout(() => {
      this.queue = this.queue.filter((c) => c !== call);
      call.reject(new Errno('EIO', `node ${this.welcome?.node ?? '?'} did not answer within timeo (${this.timeoMs} ms, soft session)`));
    }, this.timeoMs);
  }

  private freeId(): number {
    do {
      this.nextId = (this.nextId + 1) >>> 0;
    } while (this.nextId === 0 || this.sent.has(this.nextId));
    return this.nextId;
  }

  /** A reply (or error) frame for the call it names; frames nothing waits for (id 0, a duplicate) are dropped. */
  private deliver(f: ServerFrameIn): void {
    const call = this.sent.get(f.id);
    if (!call) return;
    this.sent.delete(f.id);
    if (f.reply === 'error') {
      const e = f['error'] as { errno: number; message: string };
      call.reject(Errno.fromNumber(e.errno, e.message));
    } else if (f.reply === call.expect) {
      const reply = f[f.reply];
      setAfterChange(reply, f['attrs'] as Attr[] | undefined);
      call.resolve(reply);
    } else {
      call.reject(new Errno('EIO', `unexpected reply ${f.reply ?? 'none'} (expected ${call.expect})`));
    }
  }

  // ---- connections ----

  /** Opens the main stream (and the bulk one) with Hellos; resolves once each was welcomed. */
  private async dial(resume: boolean): Promise<Conn> {
    try {
      return await this.dialOnce(resume);
    } catch (err) {
      // An mfsd from before the raw transport answers it with an HTTP error: this node gets gRPC
      // from now on (a cluster may be upgraded one node at a time).
      if (!this.raw || toErrno(err).code !== 'EPROTONOSUPPORT') throw err;
      this.raw = false;
      this.client = this.grpcClient();
      return this.dialOnce(resume);
    }
  }

  private async dialOnce(resume: boolean): Promise<Conn> {
    const link = new Conn();
    const hello = { node: this.opts.node, session_id: this.sessionId, boot_id: this.opts.bootId ?? PROCESS_BOOT_ID, version: SESSION_VERSION };
    try {
      link.main = link.bulk = this.openStream(link);
      const welcome = await this.greet(link, link.main, { ...hello, channel: MAIN, resume });
      if (this.opts.bulkStream ?? true) {
        link.bulk = this.openStream(link);
        await this.greet(link, link.bulk, { ...hello, channel: BULK, resume: false });
      }
      // The main stream may have ended while the bulk one was being welcomed.
      if (link.ended) throw link.ended;
      this.welcome = welcome;
      return link;
    } catch (err) {
      this.drop(link);
      throw err;
    }
  }

  private greet(link: Conn, stream: Stream, hello: object): Promise<Welcome> {
    return new Promise<Welcome>((resolve, reject) => {
      link.greeting.set(stream, { resolve, reject });
      stream.write(encodeClientFrame({ id: HELLO_ID, hello }));
    });
  }

  /** A stream of `link`: its frames and its end go to the session while `link` is current. */
  private openStream(link: Conn): Stream {
    const tls = this.opts.tls;
    const stream: Stream = this.raw && tls
      ? new RawClientStream(this.address, tls, { keepaliveMs: this.keepaliveMs, maxPayload: MAX_SERVER_FRAME })
      : this.client!.makeBidiStreamRequest(SESSION_METHOD_PATH, identity, identity, new Metadata());
    stream.on('data', (buf: Buffer) => this.guard(link, () => this.onData(link, stream, buf)));
    // A raw stream fails with the Errno itself; a gRPC one with a status.
    stream.on('error', (err: ServiceError | Errno) => this.guard(link, () => this.onEnd(link, stream, err instanceof Errno ? err : this.errnoOf(err))));
    stream.on('end', () => this.guard(link, () => this.onEnd(link, stream, new Errno('EHOSTDOWN', 'the session stream ended'))));
    return stream;
  }

  /** Cancels the streams of a link that is not (or no longer) the session's. */
  private drop(link: Conn): void {
    link.down = true;
    for (const stream of new Set([link.main, link.bulk])) {
      try {
        stream?.cancel();
      } catch {
        // already gone
      }
    }
  }

  /** `link` is welcomed: calls go on it, the waiting ones first, in the order they were made. */
  private adopt(link: Conn): void {
    this.conn = link;
    this.setState('connected');
    const waiting = this.queue;
    this.queue = [];
    for (const call of waiting) {
      clearTimeout(call.timeo);
      this.send(call);
    }
  }

  private onData(link: Conn, stream: Stream, buf: Buffer): void {
    if (link.down) return;
    let f: ServerFrameIn;
    try {
      f = decodeServerFrame(buf);
    } catch {
      return this.onEnd(link, stream, new Errno('EIO', 'undecodable frame from the server'));
    }
    const greeting = link.greeting.get(stream);
    if (greeting) {
      link.greeting.delete(stream);
      if (f.id === HELLO_ID && f.reply === 'welcome') return greeting.resolve(f['welcome'] as Welcome);
      const e = f.reply === 'error' ? (f['error'] as { errno: number; message: string }) : null;
      return greeting.reject(e ? Errno.fromNumber(e.errno, e.message) : new Errno('EIO', `the server answered a Hello with ${f.reply ?? 'nothing'}`));
    }
    if (link !== this.conn) return;
    if (f.reply === 'invalidate') return this.onInvalidate(link, f['invalidate'] as Record<string, unknown>);
    const after = Number(f['after'] ?? 0);
    if (after > link.seen) {
      link.held.push({ after, frame: f });
      return;
    }
    this.deliver(f);
  }

  /**
   * Listeners first, then the replies that waited for this invalidation, then, once every promise a
   * listener returned has settled, the ack (the server's changing call returns after it). A cache
   * whose dropping is itself asynchronous (a FUSE mount's kernel notification) returns that promise,
   * so the writer's call cannot return before the cache really forgot. Replies are not held for
   * those promises: dropping kernel pages may wait for a READ that such a reply answers.
   */
  private onInvalidate(link: Conn, msg: Record<string, unknown>): void {
    const inv = invalidationOf(msg);
    // A listener that throws (or rejects) is reported, and the ack still goes: else every writer on
    // the server would stall until this session is fenced.
    let pending: unknown[] = [];
    if (inv) pending = this.tellAll('invalidate', inv);
    else {
      // A kind this client does not know: it cannot tell what changed, so its caches drop everything.
      this.epoch += 1;
      this.tell('reset', new Errno('EPROTO', 'an invalidation of an unknown kind'));
    }
    const ack = (): void => {
      if (!link.down) link.main!.write(encodeClientFrame({ id: 0, ack: { seq: msg['seq'] } }));
    };
    // Acks are cumulative on the server: they go out in order, each after its own listeners settled.
    if (pending.length === 0 && link.acking === null) ack();
    else {
      const before = link.acking ?? Promise.resolve();
      const mine = before.then(() => Promise.allSettled(pending)).then(ack);
      link.acking = mine;
      void mine.then(() => {
        if (link.acking === mine) link.acking = null;
      });
    }
    link.seen = Math.max(link.seen, Number(msg['seq']));
    if (link.held.length === 0) return;
    const ready = link.held.filter((h) => h.after <= link.seen);
    link.held = link.held.filter((h) => h.after > link.seen);
    for (const h of ready) this.deliver(h.frame);
  }

  /** A stream of `link` ended or failed: a Hello refused, or the session's link broken. */
  private onEnd(link: Conn, stream: Stream, err: Errno): void {
    const greeting = link.greeting.get(stream);
    if (greeting) {
      link.greeting.delete(stream);
      greeting.reject(err);
      return;
    }
    link.ended ??= err;
    if (link === this.conn) this.broken(err);
  }

  /** The current link broke: drop it, tell the caches, keep the calls for the next link, reconnect. */
  private broken(err: Errno): void {
    const link = this.conn;
    if (!link || link.down || this.failure) return;
    this.drop(link);
    // Replies held for Invalidates that will never come: the caches are dropped below anyway.
    for (const h of link.held) this.deliver(h.frame);
    link.held = [];
    const inFlight = [...this.sent.values()];
    this.sent.clear();
    this.conn = null;
    this.state = 'reconnecting';
    // While connected nothing waits in the queue: it is now the calls in flight, in the order sent.
    for (const call of inFlight) this.wait(call);
    this.epoch += 1;
    void this.reconnect();
    this.tell('state', this.state);
    this.tell('reset', err);
  }

  private async reconnect(): Promise<void> {
    let resume = true;
    for (let attempt = 0; this.state === 'reconnecting'; attempt++) {
      await this.sleep(backoffMs(attempt));
      if (this.state !== 'reconnecting') return;
      let link: Conn;
      try {
        link = await this.dial(resume);
      } catch (err) {
        const e = toErrno(err);
        if (e.code === 'ESTALE' && resume) {
          // The server no longer has the session (lease expired, fenced): start a new one.
          this.sessionId = randomBytes(16);
          resume = false;
          attempt = -1;
          this.tell('expired', e);
        } else if (!transient(e)) {
          this.shutdown(e);
        }
        continue;
      }
      if (this.state !== 'reconnecting') {
        this.drop(link);
        return;
      }
      // Not resumed: a server without leases opened a fresh session under the old id.
      if (resume && this.welcome?.resumed) this.tell('resumed');
      else if (resume) this.tell('expired', new Errno('ESTALE', 'the server did not resume the session'));
      this.adopt(link);
      return;
    }
  }

  /** Waits `ms` unless the session closes first. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakeRetry = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakeRetry = wake;
    });
  }

  private setState(s: SessionStatus): void {
    if (this.state === s) return;
    this.state = s;
    this.tell('state', s);
  }

  /** Emits to the user's listeners; one that throws is reported and stops nothing of the session's own work. */
  /** Calls each listener of `event`; returns what they returned that may be awaited (their promises). */
  private tellAll(event: string, ...args: unknown[]): unknown[] {
    const out: unknown[] = [];
    for (const listener of this.listeners(event) as Array<(...a: unknown[]) => unknown>) {
      try {
        const r = listener.apply(this, args);
        if (r && typeof (r as { then?: unknown }).then === 'function') {
          out.push((r as Promise<unknown>).catch((err: unknown) => {
            process.emitWarning(`omfs session: an '${event}' listener failed: ${err instanceof Error ? err.message : String(err)}`);
          }));
        }
      } catch (err) {
        process.emitWarning(`omfs session: a '${event}' listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return out;
  }

  private tell(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      process.emitWarning(`omfs session: a '${event}' listener threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * The session is over (close(), or a refusal on reconnect): every call fails with `err`.
   * closeClient false: goodbye() closes the channel once the server has ended the streams.
   */
  private shutdown(err: Errno, closeClient = true): void {
    if (this.failure) return;
    this.failure = err;
    const link = this.conn;
    this.conn = null;
    if (link) this.drop(link);
    const calls = [...this.sent.values(), ...this.queue];
    this.sent.clear();
    this.queue = [];
    for (const call of calls) {
      clearTimeout(call.timeo);
      call.reject(err);
    }
    this.wakeRetry?.();
    this.setState('closed');
    if (closeClient) this.client?.close();
  }

  private errnoOf(err: ServiceError): Errno {
    const e = statusToErrno(err);
    // A status without our errno is the transport's failure: the node cannot be talked to.
    return err.metadata?.get('omfs-errno').length ? e : new Errno('EHOSTDOWN', e.message);
  }

  /** Runs a stream event handler; whatever it throws breaks the link instead of escaping into grpc-js. */
  private guard(link: Conn, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      try {
        if (link === this.conn) this.broken(toErrno(err));
      } catch {
        // nothing more to do from inside a gRPC callback
      }
    }
  }

  // ---- typed operations (as FileClient) ----

  root(caller: Caller, exportPath: string): Promise<Entry> { return this.request('root', { caller, export_path: exportPath }, 'entry'); }
  lookup(caller: Caller, dir: Buffer, name: Name): Promise<Entry> { return this.request('lookup', { caller, dir, name: nameBytes(name) }, 'entry'); }
  async getAttr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Attr> {
    return (await this.request<{ attr: Attr }>('get_attr', { caller, handle, fh }, 'attr')).attr;
  }
  async setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr> {
    return (await this.request<{ attr: Attr }>('set_attr', { caller, handle, ...fields }, 'attr')).attr;
  }
  access(caller: Caller, handle: Buffer, mask: number): Promise<unknown> { return this.request('access', { caller, handle, mask }, 'empty'); }
  mkdir(caller: Caller, dir: Buffer, name: Name, mode = 0o755, umask = 0): Promise<Entry> {
    return this.request('mkdir', { caller, dir, name: nameBytes(name), mode, umask }, 'entry');
  }
  mknod(caller: Caller, dir: Buffer, name: Name, mode: number, umask = 0, rdev: U64 = 0): Promise<Entry> {
    return this.request('mknod', { caller, dir, name: nameBytes(name), mode, umask, rdev }, 'entry');
  }
  create(caller: Caller, dir: Buffer, name: Name, flags: number, mode = 0o644, umask = 0): Promise<{ entry: Entry; fh: U64 }> {
    return this.request('create', { caller, dir, name: nameBytes(name), flags, mode, umask }, 'create');
  }
  async open(caller: Caller, handle: Buffer, flags: number): Promise<U64> {
    return (await this.request<{ fh: U64 }>('open', { caller, handle, flags }, 'open')).fh;
  }
  /** flushLocks: also drop the locks `clientId:lockOwner` holds on the file (close(2) semantics). */
  release(caller: Caller, fh: U64, handle?: Buffer, locks?: { clientId: string; lockOwner: U64 }): Promise<unknown> {
    return this.request('release', {
      caller, fh, handle, flush_locks: locks !== undefined, client_id: locks?.clientId ?? '', lock_owner: locks?.lockOwner ?? 0,
    }, 'empty');
  }
  unlink(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.request('unlink', { caller, dir, name: nameBytes(name) }, 'empty'); }
  rmdir(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.request('rmdir', { caller, dir, name: nameBytes(name) }, 'empty'); }
  /** flags: 1 = RENAME_NOREPLACE, 2 = RENAME_EXCHANGE. */
  rename(caller: Caller, oldDir: Buffer, oldName: Name, newDir: Buffer, newName: Name, flags = 0): Promise<unknown> {
    return this.request('rename', { caller, old_dir: oldDir, old_name: nameBytes(oldName), new_dir: newDir, new_name: nameBytes(newName), flags }, 'empty');
  }
  link(caller: Caller, handle: Buffer, newDir: Buffer, newName: Name): Promise<Entry> {
    return this.request('link', { caller, handle, new_dir: newDir, new_name: nameBytes(newName) }, 'entry');
  }
  symlink(caller: Caller, dir: Buffer, name: Name, target: Name): Promise<Entry> {
    return this.request('symlink', { caller, dir, name: nameBytes(name), target: nameBytes(target) }, 'entry');
  }
  async readlink(caller: Caller, handle: Buffer): Promise<Buffer> {
    return (await this.request<{ target: Buffer }>('readlink', { caller, handle }, 'link_target')).target;
  }
  statFs(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Record<string, U64>> { return this.request('stat_fs', { caller, handle, fh }, 'stat_fs'); }
  fsync(caller: Caller, handle: Buffer, fh: U64, datasync = false): Promise<unknown> { return this.request('fsync', { caller, handle, fh, datasync }, 'empty'); }
  /** mode: Linux FALLOC_FL_* bits, passed to fallocate(2) as they are. */
  fallocate(caller: Caller, handle: Buffer, fh: U64, offset: number, length: number, mode = 0): Promise<unknown> {
    return this.request('fallocate', { caller, handle, fh, offset, length, mode }, 'empty');
  }
  /** copy_file_range(2) on the node between two files open there: the bytes copied (fewer: ask again for the rest). */
  async copyFileRange(caller: Caller, inHandle: Buffer, fhIn: U64, offIn: number, outHandle: Buffer, fhOut: U64, offOut: number, length: number): Promise<number> {
    return Number((await this.request<{ written: U64 }>('copy_file_range', {
      caller, handle_in: inHandle, fh_in: fhIn, offset_in: offIn, handle_out: outHandle, fh_out: fhOut, offset_out: offOut, length, flags: 0,
    }, 'written')).written);
  }
  /** lseek(2) of open file `fh` with SEEK_DATA (3) or SEEK_HOLE (4): the offset found. */
  async lseek(caller: Caller, handle: Buffer, fh: U64, offset: number, whence: number): Promise<number> {
    return Number((await this.request<{ offset: U64 }>('lseek', { caller, handle, fh, offset, whence }, 'position')).offset);
  }
  async getXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<Buffer> {
    return (await this.request<{ value: Buffer }>('get_xattr', { caller, handle, name, fh }, 'xattr')).value;
  }
  /** flags: 1 = XATTR_CREATE, 2 = XATTR_REPLACE. */
  setXattr(caller: Caller, handle: Buffer, name: string, value: Buffer, flags = 0, fh: U64 = 0): Promise<unknown> {
    return this.request('set_xattr', { caller, handle, name, value, flags, fh }, 'empty');
  }
  async listXattr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<string[]> {
    return (await this.request<{ names: string[] }>('list_xattr', { caller, handle, fh }, 'xattr_names')).names;
  }
  removeXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<unknown> {
    return this.request('remove_xattr', { caller, handle, name, fh }, 'empty');
  }
  /** type: 0 = F_RDLCK, 1 = F_WRLCK, 2 = F_UNLCK; end inclusive. */
  getLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<LockReply> { return this.request('get_lk', lockReq(caller, handle, lock), 'lock'); }
  setLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.request('set_lk', lockReq(caller, handle, lock), 'empty'); }
  /** Waits for the lock (until it is granted, the session ends, or deadlock: EDEADLK). */
  setLkW(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.request('set_lkw', lockReq(caller, handle, lock), 'empty'); }

  /** One read of at most 1 MiB: one request, one reply. */
  async readChunk(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags = 0): Promise<Buffer> {
    return (await this.request<{ data: Buffer }>('read', { caller, handle, fh, flags, offset, size }, 'data', true)).data;
  }

  /**
   * Reads up to `size` bytes at `offset` in 1 MiB requests, READ_AHEAD of them in flight at a time
   * (well under any server's in-flight cap); stops at the first short one (end of file).
   */
  async read(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags = 0): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let off = 0; off < size || off === 0; off += READ_AHEAD * SESSION_MAX_IO) {
      const batch: Array<Promise<Buffer>> = [];
      for (let k = 0; k < READ_AHEAD && (off + k * SESSION_MAX_IO < size || (size === 0 && k === 0)); k++) {
        const at = off + k * SESSION_MAX_IO;
        batch.push(this.readChunk(caller, handle, fh, offset + at, Math.min(SESSION_MAX_IO, size - at), flags));
      }
      const got = await Promise.all(batch);
      for (let k = 0; k < got.length; k++) {
        parts.push(got[k]!);
        if (got[k]!.length < Math.min(SESSION_MAX_IO, size - off - k * SESSION_MAX_IO)) return Buffer.concat(parts);
      }
      if (size === 0) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** One write of at most 1 MiB; resolves with the bytes written. */
  async writeChunk(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags = 0): Promise<number> {
    return Number((await this.request<{ written: U64 }>('write', { caller, handle, fh, flags, offset, data }, 'written', true)).written);
  }

  /** Writes `data` at `offset` in 1 MiB requests, one after the other (O_APPEND keeps their order). */
  async write(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags = 0): Promise<number> {
    let written = 0;
    for (let off = 0; off < data.length || off === 0; off += SESSION_MAX_IO) {
      written += await this.writeChunk(caller, handle, fh, offset + off, data.subarray(off, off + SESSION_MAX_IO), flags);
      if (data.length === 0) break;
    }
    return written;
  }

  /** One batch of entries after `cookie` (at most 1024) and whether the listing ended. */
  async readDirBatch(caller: Caller, dir: Buffer, cookie: U64 = 0): Promise<{ entries: DirEntry[]; eof: boolean }> {
    const b = await this.request<{ entries: DirEntry[]; eof: boolean }>('read_dir', { caller, dir, cookie }, 'dir');
    return { entries: b.entries.map((e) => (e.entry ? e : { name: e.name, cookie: e.cookie })), eof: b.eof };
  }

  /** All entries after `cookie`, batch after batch. */
  async readDir(caller: Caller, dir: Buffer, cookie: U64 = 0): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    for (let at = cookie; ;) {
      const { entries, eof } = await this.readDirBatch(caller, dir, at);
      out.push(...entries);
      if (eof || entries.length === 0) return out;
      at = entries[entries.length - 1]!.cookie;
    }
  }
}

export interface LockArgs { clientId: string; lockOwner: U64; start: U64; end: U64; type: number }
const lockReq = (caller: Caller, handle: Buffer, l: LockArgs): object => ({
  caller, handle, client_id: l.clientId, lock_owner: l.lockOwner, start: l.start, end: l.end, type: l.type,
});

/** The typed form of a decoded Invalidate; null for a kind this client does not know. */
function invalidationOf(m: Record<string, unknown>): Invalidation | null {
  const big = (v: unknown): bigint => BigInt(v as U64);
  const seq = big(m['seq']);
  const body = (k: string): Record<string, unknown> => m[k] as Record<string, unknown>;
  switch (m['what']) {
    case 'attr': return { seq, kind: 'attr', ino: big(body('attr')['ino']) };
    case 'data': {
      const d = body('data');
      return { seq, kind: 'data', ino: big(d['ino']), offset: big(d['offset']), length: big(d['length']) };
    }
    case 'name': return { seq, kind: 'name', dir: big(body('name')['dir']), name: body('name')['name'] as Buffer };
    default: return null;
  }
}
