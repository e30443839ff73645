// Session clients for tests: a proper Session (proto/session-client.ts) with a client certificate
// named node<N> from the test CA, and a RawSession that sends arbitrary bytes on the Session method
// and collects what the server answers (hostile-input tests), and a TcpGate that cuts the network
// between a client and a daemon (reconnect tests).
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import { join } from 'node:path';
import { Errno, statusToErrno } from '../../proto/errno.js';
import { Session, type Invalidation, type SessionOptions } from '../../proto/session-client.js';
import type { RawTls } from '../../proto/session-raw.js';
import { SESSION_METHOD_PATH, decodeServerFrame, encodeClientFrame, type ServerFrameIn } from '../../proto/session-codec.js';
import type { TestCa } from './mfsd.js';

const certDirs = new Map<string, Promise<string>>();

/** The directory of the certificate that names `node<N>` (issued once per CA and node). */
function certDir(ca: TestCa, node: number): Promise<string> {
  const key = `${ca.dir}:${node}`;
  let dir = certDirs.get(key);
  if (!dir) certDirs.set(key, (dir = ca.issue(`node${node}`)));
  return dir;
}

/** Client credentials whose certificate names `node<N>`. */
export async function nodeCredentials(ca: TestCa, node: number): Promise<grpc.ChannelCredentials> {
  return ca.credentials(await certDir(ca, node));
}

/** The same certificate as TLS material, for sessions on the raw transport (SessionOptions.tls). */
export async function nodeTls(ca: TestCa, node: number): Promise<RawTls> {
  return tlsOf(await certDir(ca, node));
}

/** The TLS material of a directory made by TestCa.issue(). */
export async function tlsOf(dir: string): Promise<RawTls> {
  const [caPem, cert, key] = await Promise.all(['ca.crt', 'node.crt', 'node.key'].map((f) => readFile(join(dir, f))));
  return { ca: caPem!, cert: cert!, key: key! };
}

/** The session transports a TLS test runs on: gRPC, and the raw one the mounts use. */
export const TRANSPORTS = ['grpc', 'raw'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** What SessionOptions name `transport` for node `node`'s certificate. */
export async function transportOptions(transport: Transport, ca: TestCa, node: number): Promise<Pick<SessionOptions, 'tls'>> {
  return transport === 'raw' ? { tls: await nodeTls(ca, node) } : {};
}

/**
 * A Session on a connection of its own (grpc-js would otherwise share one among same-address
 * clients); `more`: mode, timeoMs, keepaliveMs, waitToOpen.
 */
export function openSession(
  address: string, creds: grpc.ChannelCredentials, node: number, sessionId?: Buffer, bulkStream = true, more: Omit<SessionOptions, 'node'> = {},
): Promise<Session> {
  return Session.open(address, creds, {
    ...more, node, ...(sessionId ? { sessionId } : {}), bulkStream, channelOptions: { 'grpc.use_local_subchannel_pool': 1, ...more.channelOptions },
  });
}

/** A Session method call driven by hand: raw frames out, decoded frames (or the final status) in. */
export class RawSession {
  readonly client: grpc.Client;
  readonly stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly frames: ServerFrameIn[] = [];
  private waiters: Array<() => void> = [];
  /** The stream's end: null status = ended OK, else the Errno its status carried. */
  readonly ended: Promise<Errno | null>;

  constructor(address: string, creds: grpc.ChannelCredentials) {
    this.client = new grpc.Client(address, creds, { 'grpc.use_local_subchannel_pool': 1 });
    const id = (b: Buffer): Buffer => b;
    this.stream = this.client.makeBidiStreamRequest(SESSION_METHOD_PATH, id, id, new grpc.Metadata());
    this.stream.on('data', (b: Buffer) => {
      this.frames.push(decodeServerFrame(b));
      this.wake();
    });
    this.ended = new Promise((resolve) => {
      this.stream.on('error', (e: grpc.ServiceError) => {
        resolve(statusToErrno(e));
        this.wake();
      });
      this.stream.on('end', () => {
        resolve(null);
        this.wake();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  sendRaw(b: Buffer): void {
    this.stream.write(b);
  }

  send(frame: object): void {
    this.stream.write(encodeClientFrame(frame));
  }

  /** channel 0: open a session (a new random id unless given); 1: join the open session `sessionId` as a bulk stream. */
  hello(node: number, id = 1, sessionId: Buffer = randomBytes(16), channel = 0): void {
    this.send({ id, hello: { node, session_id: sessionId, boot_id: randomBytes(16), version: 1, channel } });
  }

  /** The first frame received that matches `pred` (removed from the queue); rejects after `ms`. */
  async next(pred: (f: ServerFrameIn) => boolean = () => true, ms = 20_000): Promise<ServerFrameIn> {
    const until = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      const left = until - Date.now();
      if (left <= 0) throw new Error('no such frame in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The reply to request `id`: its message, or the Errno of its error frame. */
  async reply(id: number): Promise<{ kind: string; body: unknown; errno?: Errno }> {
    const f = await this.next((x) => x.id === id);
    if (f.reply === 'error') {
      const e = f['error'] as { errno: number; message: string };
      return { kind: 'error', body: e, errno: Errno.fromNumber(e.errno, e.message) };
    }
    return { kind: f.reply ?? 'none', body: f[f.reply ?? ''] };
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

/**
 * A TCP forwarder between a client and a daemon that a test can cut: the network failing while
 * both ends keep running (the daemon's session then outlives its stream, as across a partition).
 * cut() resets every forwarded connection and refuses new ones (accepted, then reset) until mend().
 */
export class TcpGate {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private isCut = false;
  /** Connections accepted and forwarded so far (tests: a client really came back). */
  forwarded = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** A gate on 127.0.0.1 in front of `address` (host:port). */
  static async open(address: string): Promise<TcpGate> {
    const i = address.lastIndexOf(':');
    const gate = new TcpGate({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    await new Promise<void>((resolve, reject) => {
      gate.server.once('error', reject);
      gate.server.listen(0, '127.0.0.1', () => resolve());
    });
    return gate;
  }

  /** Where clients connect instead of the daemon. */
  get address(): string {
    return `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  private accept(client: net.Socket): void {
    if (this.isCut) {
      client.resetAndDestroy();
      return;
    }
    this.forwarded += 1;
    const upstream = net.connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => {
        this.sockets.delete(s);
        (s === client ? upstream : client).destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** The network fails: every connection through the gate is reset, new ones are refused. */
  cut(): void {
    this.isCut = true;
    for (const s of [...this.sockets]) s.resetAndDestroy();
  }

  /** The network is back. */
  mend(): void {
    this.isCut = false;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An invalidation as tests compare it: its kind, the inode (for 'name': the directory), and the rest as given. */
export interface Heard { kind: string; ino: bigint; offset?: bigint; length?: bigint; name?: string }

/** Everything `s` is told from now on, in order (the array grows as invalidations arrive). */
export function heardBy(s: Session): Heard[] {
  const got: Heard[] = [];
  s.on('invalidate', (inv: Invalidation) => {
    if (inv.kind === 'name') got.push({ kind: 'name', ino: inv.dir, name: inv.name.toString() });
    else if (inv.kind === 'data') got.push({ kind: 'data', ino: inv.ino, offset: inv.offset, length: inv.length });
    else got.push({ kind: 'attr', ino: inv.ino });
  });
  return got;
}
