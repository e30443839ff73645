// Issue 9, the session client library while its node is stopped and started again (a real mfsd
// over mutual TLS, restarted on the same port with the same state dir): hard sessions wait and
// carry on by themselves (resumed with their open files when the daemon kept the session), soft ones fail EIO after timeo and work again once the node is back, and
// open() of a node that is down rejects EHOSTDOWN unless a hard session asks to wait.
// Both session transports (gRPC, and the raw TLS one the mounts use) run every test.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { TRANSPORTS, nodeCredentials, openSession, transportOptions, type Transport } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Entry, Session, SessionOptions, SessionStatus } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const TIMEO_MS = 1500;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
const sessions: Session[] = [];
/** The transport of the describe.each block running. */
let transport: Transport = 'grpc';

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-client-reconnect-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1, shutdownGraceMs: 200 });
}, 120_000);

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  // A test that failed with the daemon stopped leaves it stopped: the next one needs it.
  if (d && (d.proc.exitCode !== null || d.proc.signalCode !== null)) await d.restart();
}, 60_000);

afterAll(async () => {
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function session(node: number, more: Omit<SessionOptions, 'node'>): Promise<Session> {
  const s = await openSession(d!.address, await nodeCredentials(ca, node), node, undefined, true, { ...more, ...(await transportOptions(transport, ca, node)) });
  sessions.push(s);
  return s;
}

async function someFile(s: Session, name: string): Promise<Entry> {
  const top = await s.root(root, d!.exports[0]!.path);
  const { entry, fh } = await s.create(root, top.handle, name, O_RDWR | O_CREAT);
  await s.release(root, fh);
  return entry;
}

/** Resolves when `s` reaches `status` (at once if it is there). */
async function reaches(s: Session, status: SessionStatus, ms = 30_000): Promise<void> {
  if (s.status === status) return;
  const signal = AbortSignal.timeout(ms);
  while (s.status !== status) await once(s, 'state', { signal });
}

/** Stops the daemon (SIGTERM, exit 0); restart() then starts it again on the same port. */
async function stopDaemon(): Promise<void> {
  expect(await d!.stop()).toBe(0);
}

describe.each(TRANSPORTS)('%s transport', (t) => {
  beforeAll(() => {
    transport = t;
  });

  describe('hard: calls wait while the node is away', () => {
    it('a getattr made while the daemon is stopped completes once it is started again; the session reconnected by itself', async () => {
      const s = await session(2, { mode: 'hard' });
      const f = await someFile(s, 'hard');
      const fh = await s.open(root, f.handle, O_RDWR);
      const resets: unknown[] = [];
      const cameBack: string[] = [];
      s.on('reset', (e) => resets.push(e));
      for (const ev of ['resumed', 'expired']) s.on(ev, () => cameBack.push(ev));

      await stopDaemon();
      await reaches(s, 'reconnecting');
      expect(resets).toHaveLength(1);
      const epoch = s.epoch;

      let settled = false;
      const attr = s.getAttr(root, f.handle).finally(() => (settled = true));
      // Longer than a soft session's timeo would allow: a hard call is still waiting.
      await new Promise((r) => setTimeout(r, TIMEO_MS * 2));
      expect(settled).toBe(false);
      expect(s.inFlight).toBe(1);

      await d!.restart();
      expect(String((await attr).ino)).toBe(String(f.attr.ino));
      expect(s.status).toBe('connected');
      expect(s.epoch).toBe(epoch);
      // A daemon that kept the session across its restart resumed it, open file included; else it expired.
      expect(cameBack).toHaveLength(1);
      if (cameBack[0] === 'resumed') expect(await s.writeChunk(root, f.handle, fh, 0, Buffer.from('kept'))).toBe(4);
      else await expect(s.writeChunk(root, f.handle, fh, 0, Buffer.from('lost'))).rejects.toMatchObject({ code: 'EBADF' });
      // And the session goes on: more calls, a new file.
      expect((await someFile(s, 'hard-after')).attr.nlink).toBe(1);
    }, 60_000);
  });

  describe('soft: EIO after timeo while the node is away', () => {
    it('a call made while the daemon is stopped fails EIO after about timeoMs; once the daemon is back calls work again', async () => {
      const s = await session(3, { mode: 'soft', timeoMs: TIMEO_MS });
      const f = await someFile(s, 'soft');

      await stopDaemon();
      await reaches(s, 'reconnecting');
      const t0 = performance.now();
      const err = await s.getAttr(root, f.handle).catch((e: unknown) => e);
      const waited = performance.now() - t0;
      expect(err).toMatchObject({ code: 'EIO' });
      expect((err as Error).message).toMatch(/timeo/);
      expect(waited).toBeGreaterThanOrEqual(TIMEO_MS / 2);
      expect(s.status).toBe('reconnecting');

      await d!.restart();
      await reaches(s, 'connected');
      expect(String((await s.getAttr(root, f.handle)).ino)).toBe(String(f.attr.ino));
    }, 60_000);
  });

  describe('open() of a node that is down', () => {
    it('rejects EHOSTDOWN by default; a hard session with waitToOpen opens once the node is up', async () => {
      await stopDaemon();
      await expect(session(4, { mode: 'hard' })).rejects.toMatchObject({ code: 'EHOSTDOWN' });
      await expect(session(4, { mode: 'soft' })).rejects.toMatchObject({ code: 'EHOSTDOWN' });

      let opened = false;
      const waiting = session(4, { mode: 'hard', waitToOpen: true }).then((s) => ((opened = true), s));
      await new Promise((r) => setTimeout(r, 500));
      expect(opened).toBe(false);
      await d!.restart();
      const s = await waiting;
      expect(s.status).toBe('connected');
      expect((await s.root(root, d!.exports[0]!.path)).attr.nlink).toBeGreaterThan(0);
    }, 60_000);
  });
});
