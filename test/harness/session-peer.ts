// Session clients for tests: a proper Session (proto/session-client.ts) with a client certificate
// named node<N> from the test CA, and a RawSession that sends arbitrary bytes on the Session method
// and collects what the server answers (hostile-input tests).
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { Errno, statusToErrno } from '../../proto/errno.js';
import { Session } from '../../proto/session-client.js';
import { SESSION_METHOD_PATH, decodeServerFrame, encodeClientFrame, type ServerFrameIn } from '../../proto/session-codec.js';
import type { TestCa } from './mfsd.js';

const certDirs = new Map<string, Promise<string>>();

/** Client credentials whose certificate names `node<N>` (issued once per CA and node). */
export async function nodeCredentials(ca: TestCa, node: number): Promise<grpc.ChannelCredentials> {
  const key = `${ca.dir}:${node}`;
  let dir = certDirs.get(key);
  if (!dir) certDirs.set(key, (dir = ca.issue(`node${node}`)));
  return ca.credentials(await dir);
}

/** A Session on a connection of its own (grpc-js would otherwise share one among same-address clients). */
export function openSession(address: string, creds: grpc.ChannelCredentials, node: number, sessionId?: Buffer, bulkStream = true): Promise<Session> {
  return Session.open(address, creds, { node, ...(sessionId ? { sessionId } : {}), bulkStream, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
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
