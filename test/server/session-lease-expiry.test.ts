// Issue 9, leases: a session whose stream ends keeps its open files and locks for its lease on a
// real mfsd over mutual TLS. Within the lease another session still sees its lock and a resume
// takes everything back (same fh, same lock); after the lease the lock is free and the fd closed.
// A client process killed with SIGKILL holding a lock loses it only when its lease expires.
// Resume is refused (ESTALE) for a session the server does not hold, and (EACCES) for another
// node's session; a new session of a restarted client (another boot id) expires its away sessions.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { RawSession, nodeCredentials } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { LeaseClient, identity, type Identity } from './session-lease-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const WRITE = 1;
const UNLOCK = 2;
/** Long enough that "still held right after the stream ended" is never a race, short enough to wait out. */
const LEASE_MS = 4000;
/** The server pings every KEEPALIVE_MS and gives up on a connection whose ping goes unanswered for as long. */
const KEEPALIVE_MS = 500;
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
let observer: LeaseClient;
const raws: RawSession[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-lease-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1, config: { sessions: { leaseMs: LEASE_MS, keepaliveMs: KEEPALIVE_MS } } });
  observer = await open(identity(2));
}, 120_000);

afterEach(() => {
  // The daemon never crashed.
  expect(d!.proc.exitCode).toBeNull();
});

afterAll(async () => {
  for (const r of raws.splice(0)) r.close();
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function open(who: Identity, resume = false): Promise<LeaseClient> {
  return LeaseClient.open(d!.address, await nodeCredentials(ca, who.node), who, resume, raws);
}

const fdCount = (): number => readdirSync(`/proc/${d!.proc.pid!}/fd`).length;


interface Made { handle: Buffer; fh: number | string }

async function made(s: LeaseClient, name: string, data = 'hello'): Promise<Made> {
  const top = await s.call<{ handle: Buffer }>('root', { caller: root, export_path: d!.exports[0]!.path });
  const c = await s.call<{ entry: { handle: Buffer }; fh: number | string }>('create', { caller: root, dir: top.handle, name: Buffer.from(name), flags: O_RDWR | O_CREAT, mode: 0o644, umask: 0o022 });
  await s.call('write', { caller: root, handle: c.entry.handle, fh: c.fh, flags: O_RDWR, offset: 0, data: Buffer.from(data) });
  return { handle: c.entry.handle, fh: c.fh };
}

const lock = (handle: Buffer, owner: string, type = WRITE) => ({ caller: root, handle, client_id: owner, lock_owner: 1, start: 0, end: 9, type });
const conflict = async (handle: Buffer): Promise<boolean> => (await observer.call<{ conflict: boolean }>('get_lk', lock(handle, 'observer'))).conflict;
const readVia = async (s: LeaseClient, f: Made): Promise<string> =>
  (await s.call<{ data: Buffer }>('read', { caller: root, handle: f.handle, fh: f.fh, flags: O_RDWR, offset: 0, size: 100 })).data.toString();

describe('a session whose stream ends is kept for its lease', () => {
  it('within the lease its lock holds and a resume keeps lock and fh; after the lease both are released', async () => {
    const before = fdCount();
    const who = identity(3);
    const a = await open(who);
    expect(a.welcome).toMatchObject({ resumed: false, lease_ms: LEASE_MS });
    const f = await made(a, 'leased');
    await a.call('set_lk', lock(f.handle, 'a'));
    expect(fdCount()).toBeGreaterThanOrEqual(before + 1);

    a.close();
    // Away, not gone: the lock still excludes others, the fd is still open.
    expect(await conflict(f.handle)).toBe(true);
    await expect(observer.call('set_lk', lock(f.handle, 'observer'))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(fdCount()).toBeGreaterThanOrEqual(before + 1);

    const back = await open(who, true);
    expect(back.welcome).toMatchObject({ resumed: true, lease_ms: LEASE_MS });
    expect(await readVia(back, f)).toBe('hello');
    expect(await conflict(f.handle)).toBe(true);
    // The lock is the resumed session's own: it may convert and release it.
    await back.call('set_lk', lock(f.handle, 'a', UNLOCK));
    expect(await conflict(f.handle)).toBe(false);
    await back.call('set_lk', lock(f.handle, 'a'));

    const closedAt = Date.now();
    back.close();
    await waitFor('lock released', async () => !(await conflict(f.handle)));
    await waitFor('fd closed', () => fdCount() <= before);
    // Released by the lease, not by the stream's end (generous: a tenth of the lease is slack for scheduling).
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(LEASE_MS * 0.9);
    await observer.call('set_lk', lock(f.handle, 'observer'));
    await observer.call('set_lk', lock(f.handle, 'observer', UNLOCK));
    // Expired: a resume is refused, and says so.
    await expect(open(who, true)).rejects.toMatchObject({ code: 'ESTALE', message: expect.stringMatching(/expired/) });
  });

  it('a resume while the old stream still looks live takes over: the old stream ends, the lock stays', async () => {
    const who = identity(4);
    const a = await open(who);
    const f = await made(a, 'takeover');
    await a.call('set_lk', lock(f.handle, 'a'));
    const b = await open(who, true);
    expect(b.welcome.resumed).toBe(true);
    expect(await a.raw.ended).toMatchObject({ code: 'ECONNRESET' });
    expect(await conflict(f.handle)).toBe(true);
    expect(await readVia(b, f)).toBe('hello');
    await b.call('set_lk', lock(f.handle, 'a', UNLOCK));
    await b.call('release', { caller: root, fh: f.fh, client_id: 'a', lock_owner: 1, flush_locks: false });
  });

  it('resume of a session the server does not hold is ESTALE; a new session reusing an away id is EBUSY', async () => {
    await expect(open(identity(5), true)).rejects.toMatchObject({ code: 'ESTALE' });
    const who = identity(5);
    const a = await open(who);
    // Live or away (whether the server saw the close yet or not), the id is taken.
    a.close();
    await expect(open(who)).rejects.toMatchObject({ code: 'EBUSY' });
    // Another boot of the same client cannot resume it either.
    await expect(open({ ...who, bootId: identity(5).bootId }, true)).rejects.toMatchObject({ code: 'ESTALE' });
  });

  it("hostile: resuming another node's session is refused (the certificate names the node) and does not disturb it", async () => {
    const victim = identity(6);
    const v = await open(victim);
    const f = await made(v, 'victim');
    await v.call('set_lk', lock(f.handle, 'v'));
    v.close();
    const creds7 = await nodeCredentials(ca, 7);
    await expect(LeaseClient.open(d!.address, creds7, victim, true, raws)).rejects.toMatchObject({ code: 'EACCES' });
    // Claiming node 7 with node 6's session id is another session (the node is part of the key): ESTALE.
    await expect(LeaseClient.open(d!.address, creds7, { ...victim, node: 7 }, true, raws)).rejects.toMatchObject({ code: 'ESTALE' });
    const back = await open(victim, true);
    expect(back.welcome.resumed).toBe(true);
    expect(await conflict(f.handle)).toBe(true);
    await back.call('set_lk', lock(f.handle, 'v', UNLOCK));
  });

  it('a new session from a restarted client (another boot id) expires its away sessions at once', async () => {
    const old = identity(8);
    const a = await open(old);
    const f = await made(a, 'rebooted');
    await a.call('set_lk', lock(f.handle, 'a'));
    a.close();
    expect(await conflict(f.handle)).toBe(true);
    // Its live sessions of the same boot are not touched by its own new sessions.
    const sibling = await open({ ...old, sessionId: identity(8).sessionId });
    expect(await conflict(f.handle)).toBe(true);
    sibling.close();
    const reborn = await open(identity(8));
    // Expired before the Welcome was sent: no lease wait.
    expect(await conflict(f.handle)).toBe(false);
    await expect(open(old, true)).rejects.toMatchObject({ code: 'ESTALE' });
    reborn.close();
  });

  it('a session that never acknowledges an invalidation is fenced: its stream ends ETIMEDOUT, its lock goes, resume is ESTALE', async () => {
    const writer = await open(identity(11));
    const f = await made(writer, 'fenced');
    const who = identity(12);
    // Raw frames and no acks: a client that stopped reading its invalidations.
    const silent = new RawSession(d!.address, await nodeCredentials(ca, 12));
    raws.push(silent);
    silent.send({ id: 1, hello: { node: who.node, session_id: who.sessionId, boot_id: who.bootId, version: 1, channel: 0 } });
    expect((await silent.reply(1)).kind).toBe('welcome');
    silent.send({ id: 2, get_attr: { caller: root, handle: f.handle, fh: 0 } });
    expect((await silent.reply(2)).kind).toBe('attr');
    silent.send({ id: 3, set_lk: lock(f.handle, 'silent') });
    expect((await silent.reply(3)).kind).toBe('empty');
    const started = Date.now();
    // The write changes what the silent session cached: it waits for the ack, at most about the lease.
    await writer.call('write', { caller: root, handle: f.handle, fh: f.fh, flags: O_RDWR, offset: 0, data: Buffer.from('HELLO') });
    expect(Date.now() - started).toBeGreaterThanOrEqual(LEASE_MS * 0.9);
    const inv = await silent.next((x) => x.reply === 'invalidate', 1000);
    expect(Number(inv.after)).toBeGreaterThanOrEqual(1);
    expect(await silent.ended).toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/fenced/) });
    // Fenced is expired: the lock is released at once and the session cannot be resumed.
    expect(await conflict(f.handle)).toBe(false);
    await expect(open(who, true)).rejects.toMatchObject({ code: 'ESTALE' });
  });

  it('a client process killed with SIGKILL holding a lock: the lock holds for the lease, then another client gets it', async () => {
    const who = identity(9);
    const setup = await open(identity(10));
    const f = await made(setup, 'killed');
    await setup.call('release', { caller: root, fh: f.fh, client_id: 's', lock_owner: 1, flush_locks: false });
    const certDir = await ca.issue('node9');
    const child = spawnLocker(certDir, who, f.handle);
    try {
      await child.locked;
      expect(await conflict(f.handle)).toBe(true);
      child.proc.kill('SIGKILL');
      await new Promise((r) => child.proc.once('exit', r));
      const killedAt = Date.now();
      // Its connection is gone with it; the lock is not.
      expect(await conflict(f.handle)).toBe(true);
      await waitFor('lock released after the lease', async () => !(await conflict(f.handle)));
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(LEASE_MS * 0.9);
      await setup.call('set_lk', lock(f.handle, 'setup'));
    } finally {
      child.proc.kill('SIGKILL');
    }
  });

  it('a client that hangs (SIGSTOP: its connection open, nothing answering) is dropped by keepalive, then its lease expires', async () => {
    const who = identity(13);
    const setup = await open(identity(14));
    const f = await made(setup, 'hung');
    await setup.call('release', { caller: root, fh: f.fh, client_id: 's', lock_owner: 1, flush_locks: false });
    const child = spawnLocker(await ca.issue('node13'), who, f.handle);
    try {
      await child.locked;
      child.proc.kill('SIGSTOP');
      const stoppedAt = Date.now();
      expect(await conflict(f.handle)).toBe(true);
      await waitFor('lock released', async () => !(await conflict(f.handle)));
      const took = Date.now() - stoppedAt;
      // The lease ran (so at least it), and the dead connection was noticed by keepalive, not never
      // (generous: two keepalive rounds, the lease, and 5 s of slack for a loaded machine).
      expect(took).toBeGreaterThanOrEqual(LEASE_MS * 0.9);
      expect(took).toBeLessThan(LEASE_MS + 4 * KEEPALIVE_MS + 5000);
    } finally {
      child.proc.kill('SIGKILL');
    }
  });
});

/** A separate node process that opens a session as node 9, takes a write lock and waits to be killed. */
function spawnLocker(certDir: string, who: Identity, handle: Buffer): { proc: ReturnType<typeof spawn>; locked: Promise<void> } {
  const url = (p: string): string => pathToFileURL(join(repo, p)).href;
  const script = join(tmp, 'locker.mjs');
  writeFileSync(script, `
import grpc from ${JSON.stringify(url('node_modules/@grpc/grpc-js/build/src/index.js'))};
import { encodeClientFrame, decodeServerFrame, SESSION_METHOD_PATH } from ${JSON.stringify(url('dist/proto/session-codec.js'))};
import { clientCredentials, readTlsMaterial } from ${JSON.stringify(url('dist/server/tls.js'))};
const [address, dir, sid, boot, handle] = process.argv.slice(2);
const creds = clientCredentials(await readTlsMaterial({ ca: dir + '/ca.crt', cert: dir + '/node.crt', key: dir + '/node.key' }));
const client = new grpc.Client(address, creds);
const id = (b) => b;
const s = client.makeBidiStreamRequest(SESSION_METHOD_PATH, id, id, new grpc.Metadata());
s.on('data', (b) => {
  const f = decodeServerFrame(b);
  if (f.id === 2 && f.reply === 'empty') process.stdout.write('locked\\n');
  else if (f.reply === 'error') process.stderr.write(JSON.stringify(f.error) + '\\n');
});
s.on('error', (e) => process.stderr.write(String(e) + '\\n'));
s.write(encodeClientFrame({ id: 1, hello: { node: ${who.node}, session_id: Buffer.from(sid, 'hex'), boot_id: Buffer.from(boot, 'hex'), version: 1, channel: 0 } }));
s.write(encodeClientFrame({ id: 2, set_lk: { caller: { uid: 0, gid: 0, groups: [], pid: process.pid }, handle: Buffer.from(handle, 'base64'),
  client_id: 'child', lock_owner: 1, start: 0, end: 9, type: ${WRITE} } }));
setInterval(() => {}, 1000);
`);
  const proc = spawn(process.execPath, [script, d!.address, certDir, who.sessionId.toString('hex'), who.bootId.toString('hex'), handle.toString('base64')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const locked = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('locked')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`locker exited (${code}) before locking: ${err}`)));
  });
  return { proc, locked };
}
