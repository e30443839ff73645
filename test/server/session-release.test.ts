// Issue 9: a session is a peer of its own. When it ends (closed by the client: a goodbye, at once;
// or its connection dropped: once its lease expires, short here: LEASE_MS), its lock waits are
// dropped at once and the real mfsd closes every file it opened and drops its locks, as when a
// connection closes; its open-file limit is its own. (What the lease keeps meanwhile:
// session-lease-expiry.test.ts; goodbye against a long lease: session-goodbye.test.ts.)
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { readdirSync } from 'node:fs';
import { sessionSuite } from '../harness/session-suite.js';
import { waitFor } from '../harness/outcome.js';
import { RawSession, nodeCredentials } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Entry, Session } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT, O_RDONLY } = fs.constants;
const WRITE = 1;
const OPEN_LIMIT = 64;
const LEASE_MS = 300;
const suite = sessionSuite('omfs-session-release-', { limits: { openFilesPerPeer: OPEN_LIMIT }, sessions: { leaseMs: LEASE_MS } });
const session = (node: number): Promise<Session> => suite.session(node);

const fdCount = (): number => readdirSync(`/proc/${suite.daemon.proc.pid!}/fd`).length;


async function someFile(s: Session, name: string): Promise<Entry> {
  const top = await s.root(root, suite.daemon.exports[0]!.path);
  const { entry, fh } = await s.create(root, top.handle, name, O_RDWR | O_CREAT);
  await s.release(root, fh);
  return entry;
}

const wlock = (owner: string) => ({ clientId: owner, lockOwner: 1, start: 0, end: 9, type: WRITE });

describe('a session that ends releases what it holds', () => {
  it('closing the session drops its lock waits, closes its files and drops its locks', async () => {
    const other = await session(8);
    const f = await someFile(other, 'held');
    const g = await someFile(other, 'waited');
    await other.setLk(root, g.handle, wlock('other'));

    const s = await session(7);
    await s.root(root, suite.daemon.exports[0]!.path);
    const before = fdCount();
    const fhs = await Promise.all(Array.from({ length: 40 }, () => s.open(root, f.handle, O_RDONLY)));
    expect(fdCount()).toBeGreaterThanOrEqual(before + 40);
    await s.setLk(root, f.handle, wlock('s'));
    // A wait in flight in the closing session: it must not be granted later, to nobody.
    const waiting = s.setLkW(root, g.handle, wlock('s')).catch((e: unknown) => e);
    await expect(other.setLk(root, f.handle, wlock('other'))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(fhs).toHaveLength(40);

    s.close();
    expect(await waiting).toMatchObject({ code: 'EHOSTDOWN' });
    await waitFor('fds released', () => fdCount() <= before);
    await waitFor('lock released', async () => (await other.getLk(root, f.handle, wlock('other'))).conflict === false);
    await other.setLk(root, f.handle, wlock('other'));
    // The dropped waiter did not take g when other let go of it.
    await other.setLk(root, g.handle, { ...wlock('other'), type: 2 });
    expect((await other.getLk(root, g.handle, wlock('third'))).conflict).toBe(false);
  });

  it('a raw stream cancelled mid-flight (the client vanished) is released the same way', async () => {
    const other = await session(8);
    const f = await someFile(other, 'held2');
    const before = fdCount();
    const r = new RawSession(suite.daemon.address, await nodeCredentials(suite.ca, 6));
    suite.closeAfter(r);
    r.hello(6);
    expect((await r.reply(1)).kind).toBe('welcome');
    for (let i = 0; i < 30; i++) r.send({ id: 10 + i, open: { caller: root, handle: f.handle, flags: O_RDONLY } });
    r.send({ id: 2, set_lk: { caller: root, handle: f.handle, client_id: 'raw', lock_owner: 1, start: 0, end: 9, type: WRITE } });
    for (let i = 0; i < 30; i++) expect((await r.reply(10 + i)).kind).toBe('open');
    expect((await r.reply(2)).kind).toBe('empty');
    expect(fdCount()).toBeGreaterThanOrEqual(before + 30);
    r.close();
    await waitFor('fds released', () => fdCount() <= before);
    await waitFor('lock released', async () => (await other.getLk(root, f.handle, wlock('other'))).conflict === false);
  });

  it(`open files are limited per session (${OPEN_LIMIT}): EMFILE for that session only`, async () => {
    const a = await session(4);
    const b = await session(5);
    const f = await someFile(a, 'limited');
    const results = await Promise.allSettled(Array.from({ length: OPEN_LIMIT + 20 }, () => a.open(root, f.handle, O_RDONLY)));
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(OPEN_LIMIT);
    expect(results.filter((x) => x.status === 'rejected').map((x) => (x as PromiseRejectedResult).reason.code)).toEqual(Array(20).fill('EMFILE'));
    // Another session (another node's) still opens.
    await b.release(root, await b.open(root, f.handle, O_RDONLY));
  });
});
