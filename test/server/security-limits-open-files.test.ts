// Issue 8 point 4: no peer can exhaust the daemon's file descriptors. A peer is one connection
// (peerClient: a FileClient with a connection of its own). Against a real mfsd child, whose fds are
// counted in /proc/<pid>/fd.
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import * as fs from 'node:fs';
import { startMfsd, type MfsdHandle } from '../harness/mfsd.js';
import { peerClient } from '../harness/peer-client.js';
import { ROOT_CALLER as root, type FileClient } from '../../proto/file-client.js';
import { DEFAULT_PEER_LIMITS } from '../../server/peers.js';

const { O_RDONLY, O_RDWR, O_CREAT } = fs.constants;
let d: MfsdHandle | undefined;
const clients: FileClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await d?.cleanup();
  d = undefined;
});

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`still not ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `n` calls of `fn`, `width` at a time; returns how many succeeded and the errno codes of the rest. */
async function hammer(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<{ ok: number; codes: Map<string, number> }> {
  let next = 0;
  let ok = 0;
  const codes = new Map<string, number>();
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        await fn(i);
        ok += 1;
      } catch (err) {
        const code = (err as { code?: string }).code ?? String(err);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return { ok, codes };
}

const client = async (): Promise<FileClient> => {
  const c = peerClient(d!.address, await d!.clientCredentials());
  clients.push(c);
  return c;
};

describe('open files per peer', () => {
  it('20 000 Opens without Release: EMFILE for that peer only, and its fds are freed when it goes', async () => {
    d = await startMfsd();
    const pid = d.proc.pid!;
    const greedy = await client();
    const other = await client();
    const top = await other.root(root, d.exports[0]!.path);
    const files = await Promise.all(Array.from({ length: 8 }, (_, i) => other.create(root, top.handle, `f${i}`, O_RDWR | O_CREAT)));
    await Promise.all(files.map((f) => other.release(root, f.fh)));
    await greedy.root(root, d.exports[0]!.path); // connect
    const before = fdCount(pid);

    const r = await hammer(20_000, 32, (i) => greedy.open(root, files[i % files.length]!.entry.handle, O_RDONLY));
    expect(r.ok).toBe(DEFAULT_PEER_LIMITS.openFilesPerPeer);
    expect([...r.codes.keys()]).toEqual(['EMFILE']);
    expect(fdCount(pid)).toBeGreaterThanOrEqual(before + DEFAULT_PEER_LIMITS.openFilesPerPeer);

    // Meanwhile another peer works normally.
    const made = await other.create(root, top.handle, 'other', O_RDWR | O_CREAT);
    await other.write(root, made.entry.handle, made.fh, 0, Buffer.from('still fine'), O_RDWR);
    expect((await other.read(root, made.entry.handle, made.fh, 0, 100, O_RDWR)).toString()).toBe('still fine');
    const fh = await other.open(root, files[0]!.entry.handle, O_RDONLY);
    await other.release(root, fh);
    await other.release(root, made.fh);

    // The greedy peer goes: everything it held is closed.
    greedy.close();
    await waitFor('freed', () => fdCount(pid) <= before + 16);
    // And the same host connecting again is a new peer with a full allowance.
    const again = await client();
    await again.open(root, files[0]!.entry.handle, O_RDONLY);
  });

  it('an fh works only on the connection that opened it', async () => {
    d = await startMfsd();
    const a = await client();
    const b = await client();
    const top = await a.root(root, d.exports[0]!.path);
    const { entry, fh } = await a.create(root, top.handle, 'f', O_RDWR | O_CREAT);
    await a.write(root, entry.handle, fh, 0, Buffer.from('mine'), O_RDWR);
    await expect(b.read(root, entry.handle, fh, 0, 4, O_RDWR)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(b.write(root, entry.handle, fh, 0, Buffer.from('x'), O_RDWR)).rejects.toMatchObject({ code: 'EBADF' });
    await b.release(root, fh); // another peer's Release does not close it
    expect((await a.read(root, entry.handle, fh, 0, 4, O_RDWR)).toString()).toBe('mine');
    // fh 0 is stateless I/O: opened for the call with the open(2) checks, closed after.
    expect((await b.read(root, entry.handle, '0', 0, 4, O_RDONLY)).toString()).toBe('mine');
  });
});

describe('unknown open-file ids', () => {
  it('Read/Write/Fsync with a made-up fh: EBADF, and no fd is leaked (1 000 calls)', async () => {
    d = await startMfsd();
    const pid = d.proc.pid!;
    const c = await client();
    const top = await c.root(root, d.exports[0]!.path);
    const { entry, fh } = await c.create(root, top.handle, 'f', O_RDWR | O_CREAT);
    await c.release(root, fh);
    const before = fdCount(pid);
    const r = await hammer(1000, 16, (i) => {
      const madeUp = String(BigInt(fh) + 1000n + BigInt(i));
      if (i % 3 === 0) return c.read(root, entry.handle, madeUp, 0, 10, O_RDWR);
      if (i % 3 === 1) return c.write(root, entry.handle, madeUp, 0, Buffer.from('x'), O_RDWR);
      return c.fsync(root, entry.handle, madeUp);
    });
    expect(r.ok).toBe(0);
    expect([...r.codes.entries()]).toEqual([['EBADF', 1000]]);
    // A released fh is unknown too.
    await expect(c.read(root, entry.handle, fh, 0, 10, O_RDWR)).rejects.toMatchObject({ code: 'EBADF' });
    expect(fdCount(pid)).toBeLessThanOrEqual(before + 4);
    expect(fs.readFileSync(`${d.exports[0]!.path}/f`, 'utf8')).toBe('');
  });
});

describe('calls in flight per peer', () => {
  it('beyond limits.requestsPerPeer a call fails at once with EAGAIN; other peers are unaffected', async () => {
    d = await startMfsd({ config: { limits: { requestsPerPeer: 4 } } });
    const holder = await client();
    const busy = await client();
    const top = await holder.root(root, d.exports[0]!.path);
    const { entry, fh } = await holder.create(root, top.handle, 'f', O_RDWR | O_CREAT);
    const lock = (c: FileClient, id: string, type: number, wait: boolean): Promise<unknown> =>
      c.call(wait ? 'SetLkW' : 'SetLk', { caller: root, handle: entry.handle, client_id: id, lock_owner: '1', start: '0', end: '100', type });
    await lock(holder, 'holder', 1, false);
    // Four waiters from `busy` fill its allowance (they block on holder's write lock).
    const waiting = Array.from({ length: 4 }, (_, i) => lock(busy, `busy${i}`, 0, true));
    // One connection delivers its calls in order, so the daemon has counted the four before this one.
    await expect(busy.getAttr(root, entry.handle)).rejects.toMatchObject({ code: 'EAGAIN' });
    expect((await holder.getAttr(root, entry.handle)).size).toBe('0');
    await lock(holder, 'holder', 2, false); // unlock: the waiters get their read locks
    await Promise.all(waiting);
    expect((await busy.getAttr(root, entry.handle)).size).toBe('0');
    await holder.release(root, fh);
  });
});
