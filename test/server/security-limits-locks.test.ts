// Issue 8 point 4, locks: per-peer limits on locks and lock waiters (config knobs, ENOLCK), and a
// peer's locks and waiters go when its connection closes. A peer is one connection (peerClient).
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { peerClient } from '../harness/peer-client.js';
import { ROOT_CALLER as root, type Entry, type FileClient } from '../../proto/file-client.js';
import { within } from '../harness/outcome.js';

const { O_RDWR, O_CREAT } = fs.constants;
const READ = 0;
const WRITE = 1;
let h: Harness | undefined;
const clients: FileClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await h?.stop();
  h = undefined;
});

const peer = (): FileClient => {
  const c = peerClient(h!.address);
  clients.push(c);
  return c;
};

function lock(c: FileClient, f: Entry, owner: string, type: number, start: number, end: number, wait = false): Promise<unknown> {
  return c.call(wait ? 'SetLkW' : 'SetLk', { caller: root, handle: f.handle, client_id: owner, lock_owner: '1', start: String(start), end: String(end), type });
}

async function file(c: FileClient, name: string): Promise<Entry> {
  const top = await c.root(root, h!.exports[0]!);
  const { entry, fh } = await c.create(root, top.handle, name, O_RDWR | O_CREAT);
  await c.release(root, fh);
  return entry;
}

describe('locks per peer', () => {
  it('beyond limits.locksPerPeer and limits.lockWaitersPerPeer: ENOLCK for that peer only', async () => {
    h = await startHarness({ limits: { locksPerPeer: 3, lockWaitersPerPeer: 2 } });
    const a = peer();
    const b = peer();
    const f = await file(a, 'f');
    for (let i = 0; i < 3; i++) await lock(a, f, 'a', WRITE, i * 10, i * 10 + 5);
    await expect(lock(a, f, 'a', WRITE, 100, 105)).rejects.toMatchObject({ code: 'ENOLCK' });
    await lock(b, f, 'b', WRITE, 200, 205); // another peer is not affected
    // b waits on a's locks: two waiters allowed, the third is refused at once.
    const waits = [lock(b, f, 'b1', READ, 0, 5, true), lock(b, f, 'b2', READ, 10, 15, true)];
    await expect(lock(b, f, 'b3', READ, 20, 25, true)).rejects.toMatchObject({ code: 'ENOLCK' });
    await lock(a, f, 'a', 2, 0, 100); // unlock all of a's: the waiters get their locks
    await within(Promise.all(waits), 20_000, 'waiters granted');
  });

  it("a peer's locks go when its connection closes; whoever waited on them gets the lock", async () => {
    h = await startHarness();
    const a = peer();
    const b = peer();
    const f = await file(a, 'f');
    await lock(a, f, 'a', WRITE, 0, 100);
    const waiting = lock(b, f, 'b', WRITE, 50, 60, true);
    a.close();
    await within(waiting, 20_000, 'the wait on the gone peer');
    // The range a held is free (b holds only 50..60).
    const c = peer();
    await lock(c, f, 'c', WRITE, 0, 10);
    await expect(lock(c, f, 'c', WRITE, 55, 56)).rejects.toMatchObject({ code: 'EAGAIN' });
  });
});
