// A raw session for the lease tests: Hello with an explicit session id, boot id and resume flag
// (test/harness/session-peer.ts's RawSession underneath), then one call at a time by operation
// name. Raw frames, not proto/session-client.ts: these tests pin down what the SERVER does with a
// stream that ends and a Hello that resumes, whatever the client library chooses to do.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Errno } from '../../proto/errno.js';
import { RawSession } from '../harness/session-peer.js';

export interface Identity { node: number; sessionId: Buffer; bootId: Buffer }

export const identity = (node: number): Identity => ({ node, sessionId: randomBytes(16), bootId: randomBytes(16) });

export interface Welcome { resumed: boolean; lease_ms: number }

export class LeaseClient {
  private nextId = 100;
  private done = false;
  private constructor(readonly raw: RawSession, readonly welcome: Welcome) {
    void raw.ended.then(() => (this.done = true));
    void this.acknowledge();
  }

  /** Acks every invalidation, as a well-behaved client does (a silent one is fenced after its lease). */
  private async acknowledge(): Promise<void> {
    while (!this.done) {
      try {
        const f = await this.raw.next((x) => x.reply === 'invalidate', 1000);
        this.raw.send({ id: 0, ack: { seq: (f['invalidate'] as { seq: number | string }).seq } });
      } catch {
        // Nothing to acknowledge this second.
      }
    }
  }

  /** Opens (or with `resume`, resumes) the session; rejects with the Errno the server ended the stream with. */
  static async open(address: string, creds: grpc.ChannelCredentials, who: Identity, resume: boolean, opened: RawSession[]): Promise<LeaseClient> {
    const raw = new RawSession(address, creds);
    opened.push(raw);
    raw.send({ id: 1, hello: { node: who.node, session_id: who.sessionId, boot_id: who.bootId, version: 1, channel: 0, resume } });
    const first = await Promise.race([raw.next((f) => f.id === 1).then((f) => ({ f })), raw.ended.then((e) => ({ e }))]);
    if ('e' in first) throw first.e ?? new Error('the stream ended without a Welcome');
    if (first.f.reply !== 'welcome') throw new Error(`expected a Welcome, got ${first.f.reply}`);
    return new LeaseClient(raw, first.f['welcome'] as Welcome);
  }

  /** One request; resolves with its reply message, rejects with its Errno. */
  async call<T = Record<string, unknown>>(op: string, body: object): Promise<T> {
    const id = this.nextId++;
    this.raw.send({ id, [op]: body });
    const r = await this.raw.reply(id);
    if (r.errno) throw r.errno as Errno;
    return r.body as T;
  }

  close(): void {
    this.done = true;
    this.raw.close();
  }
}
