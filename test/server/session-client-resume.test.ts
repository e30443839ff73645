// Issue 9, the session client library across a broken stream while the daemon keeps running (a
// real mfsd over mutual TLS; the network between them cut with a TcpGate, or the daemon frozen
// with SIGSTOP). Every break is a 'reset'. The protocol rule, whatever the server does with
// resume: a session that comes back 'resumed' still holds its lock and its open file; one that
// does not is told 'expired', its lock is free for others, its old fh is EBADF, and it carries on
// as a new session. Back after its lease, a session is always 'expired'.
// Both session transports (gRPC, and the raw TLS one the mounts use) run every test.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { TRANSPORTS, TcpGate, nodeCredentials, openSession, transportOptions, type Transport } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Entry, LockArgs, Session, SessionOptions, SessionStatus, U64 } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const LEASE_MS = 1500;
const KEEPALIVE_MS = 300;
const WRITE = 1;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
const sessions: Session[] = [];
/** The transport of the describe.each block running. */
let transport: Transport = 'grpc';
const gates: TcpGate[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-client-resume-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1, config: { sessions: { leaseMs: LEASE_MS } } });
}, 120_000);

afterEach(async () => {
  // A test that failed with the daemon frozen must not leave it frozen.
  d?.proc.kill('SIGCONT');
  for (const s of sessions.splice(0)) s.close();
  for (const g of gates.splice(0)) await g.close();
});

afterAll(async () => {
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function session(node: number, address = d!.address, more: Omit<SessionOptions, 'node'> = {}): Promise<Session> {
  const s = await openSession(address, await nodeCredentials(ca, node), node, undefined, true, { mode: 'hard', ...more, ...(await transportOptions(transport, ca, node)) });
  sessions.push(s);
  return s;
}

async function gate(): Promise<TcpGate> {
  const g = await TcpGate.open(d!.address);
  gates.push(g);
  return g;
}

/** Resolves when `s` reaches `status` (at once if it is there). */
async function reaches(s: Session, status: SessionStatus, ms = 30_000): Promise<void> {
  const signal = AbortSignal.timeout(ms);
  while (s.status !== status) await once(s, 'state', { signal });
}

/** What a session heard, in order. */
function heard(s: Session): string[] {
  const got: string[] = [];
  for (const ev of ['reset', 'resumed', 'expired']) s.on(ev, () => got.push(ev));
  return got;
}

/** The session came back: 'resumed' or 'expired', whichever it says first. */
async function cameBack(s: Session, ms = 30_000): Promise<'resumed' | 'expired'> {
  const signal = AbortSignal.timeout(ms);
  const which = await Promise.race([
    once(s, 'resumed', { signal }).then(() => 'resumed' as const),
    once(s, 'expired', { signal }).then(() => 'expired' as const),
  ]);
  await reaches(s, 'connected', ms);
  return which;
}

const lock = (clientId: string): LockArgs => ({ clientId, lockOwner: 1, start: 0, end: 9, type: WRITE });

/** A file `s` holds open and write-locked. */
async function heldFile(s: Session, name: string): Promise<{ f: Entry; fh: U64 }> {
  const top = await s.root(root, d!.exports[0]!.path);
  const { entry: f, fh } = await s.create(root, top.handle, name, O_RDWR | O_CREAT);
  await s.setLk(root, f.handle, lock(`holder-${name}`));
  return { f, fh };
}

/** The protocol rule after `s` came back `how`: resumed keeps the lock and the fh; expired lost both and works as a new session. */
async function expectStateMatches(how: 'resumed' | 'expired', s: Session, other: Session, f: Entry, fh: U64): Promise<void> {
  if (how === 'resumed') {
    await expect(other.setLk(root, f.handle, lock('other'))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(await s.writeChunk(root, f.handle, fh, 0, Buffer.from('still open'))).toBe(10);
  } else {
    await other.setLk(root, f.handle, lock('other'));
    await expect(s.writeChunk(root, f.handle, fh, 0, Buffer.from('x'))).rejects.toMatchObject({ code: 'EBADF' });
    await other.setLk(root, f.handle, { ...lock('other'), type: 2 });
  }
  // Either way the session works.
  expect(String((await s.getAttr(root, f.handle)).ino)).toBe(String(f.attr.ino));
}

describe.each(TRANSPORTS)('%s transport', (t) => {
  beforeAll(() => {
    transport = t;
  });

  describe('a stream that breaks while the daemon runs', () => {
    it('the network cut for less than the lease: reset, then resumed (lock and fh kept) or expired (both gone)', async () => {
      const g = await gate();
      const s = await session(2, g.address);
      const other = await session(3);
      const events = heard(s);
      const { f, fh } = await heldFile(s, 'short-cut');
      const epoch = s.epoch;

      g.cut();
      await reaches(s, 'reconnecting');
      await new Promise((r) => setTimeout(r, LEASE_MS / 5));
      g.mend();
      const how = await cameBack(s);
      expect(events).toEqual(['reset', how]);
      expect(s.epoch).toBe(epoch + 1);
      expect(g.forwarded).toBeGreaterThan(1);
      await expectStateMatches(how, s, other, f, fh);
    }, 60_000);

    it('the network cut for longer than the lease: expired, and the session goes on as a new one', async () => {
      const g = await gate();
      const s = await session(4, g.address);
      const other = await session(5);
      const events = heard(s);
      const { f, fh } = await heldFile(s, 'long-cut');

      g.cut();
      await reaches(s, 'reconnecting');
      // The server frees the lock when the lease ends (or, without leases, when the stream ended).
      const t0 = performance.now();
      while (await other.setLk(root, f.handle, lock('other')).then(() => false, () => true)) await new Promise((r) => setTimeout(r, 100));
      expect(performance.now() - t0).toBeLessThan(LEASE_MS * 10);
      await other.setLk(root, f.handle, { ...lock('other'), type: 2 });
      // A server without leases freed it at once: the cut still outlasts the lease.
      const left = t0 + LEASE_MS * 1.5 - performance.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      g.mend();
      expect(await cameBack(s)).toBe('expired');
      expect(events).toEqual(['reset', 'expired']);
      await expectStateMatches('expired', s, other, f, fh);
    }, 60_000);

    it('a frozen daemon (SIGSTOP) is noticed by keepalive; a call in flight then is sent again once it is back (hard)', async () => {
      const s = await session(6, d!.address, { keepaliveMs: KEEPALIVE_MS });
      const other = await session(7);
      const events = heard(s);
      const { f, fh } = await heldFile(s, 'frozen');

      d!.proc.kill('SIGSTOP');
      let answered = false;
      const inFlight = s.getAttr(root, f.handle).finally(() => (answered = true));
      const t0 = performance.now();
      await reaches(s, 'reconnecting');
      // About twice the keepalive interval; the bound only shows the dead node is noticed at all.
      expect(performance.now() - t0).toBeLessThan(KEEPALIVE_MS * 30);
      expect(answered).toBe(false);
      d!.proc.kill('SIGCONT');
      const how = await cameBack(s);
      expect(String((await inFlight).ino)).toBe(String(f.attr.ino));
      expect(events).toEqual(['reset', how]);
      await expectStateMatches(how, s, other, f, fh);
    }, 60_000);
  });
});
