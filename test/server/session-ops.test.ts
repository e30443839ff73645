// Issue 9, step 1: every FileService operation multiplexed on ONE session stream to a real mfsd
// over mutual TLS. Many requests of every kind are in flight at once; each reply is matched to its
// own request (each read returns its own file's data, each lookup its own file's handle), replies
// come out of order (a blocked SetLkW is overtaken by later requests), and errnos are the kernel's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Session } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT, O_RDONLY } = fs.constants;
const READ = 0;
const WRITE = 1;
const UNLOCK = 2;
const N = 24;

let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
const sessions: Session[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-ops-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 3 });
}, 120_000);

afterAll(async () => {
  for (const s of sessions.splice(0)) s.close();
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function session(node = 5): Promise<Session> {
  const s = await openSession(d!.address, await nodeCredentials(ca, node), node);
  sessions.push(s);
  return s;
}

const content = (i: number): Buffer => Buffer.from(`file ${i}: ${'x'.repeat(i * 97)}`);

describe('one session, many operations in flight', () => {
  it('Welcome names the server node and the limits', async () => {
    const s = await session();
    expect(s.welcome).toMatchObject({ node: 3, max_io: 1 << 20, version: 1 });
    expect(s.welcome!.max_in_flight).toBeGreaterThan(0);
  });

  it('creates, writes, reads, stats, lists, renames, unlinks, xattrs and links concurrently, each reply its own', async () => {
    const s = await session();
    const top = await s.root(root, d!.exports[0]!.path);
    const dir = await s.mkdir(root, top.handle, 'many');

    // N creates and then N writes, all in flight at once.
    const made = await Promise.all(Array.from({ length: N }, (_, i) => s.create(root, dir.handle, `f${i}`, O_RDWR | O_CREAT, 0o640)));
    const written = await Promise.all(made.map((m, i) => s.write(root, m.entry.handle, m.fh, 0, content(i))));
    expect(written).toEqual(made.map((_, i) => content(i).length));

    // Every kind of request at once; each answer checked against its own request.
    const [reads, attrs, looked, listing, xset, stat] = await Promise.all([
      Promise.all(made.map((m, i) => s.read(root, m.entry.handle, m.fh, 0, content(i).length + 10))),
      Promise.all(made.map((m) => s.getAttr(root, m.entry.handle))),
      Promise.all(made.map((_, i) => s.lookup(root, dir.handle, `f${i}`))),
      s.readDir(root, dir.handle),
      Promise.all(made.map((m, i) => s.setXattr(root, m.entry.handle, 'user.which', Buffer.from(`v${i}`)))),
      s.statFs(root, dir.handle),
    ]);
    expect(xset).toHaveLength(N);
    expect(Number(stat['bsize'])).toBeGreaterThan(0);
    reads.forEach((b, i) => expect(b.equals(content(i))).toBe(true));
    attrs.forEach((a, i) => {
      expect(Number(a.size)).toBe(content(i).length);
      expect(a.mode & 0o777).toBe(0o640);
    });
    looked.forEach((e, i) => expect(e.handle.equals(made[i]!.entry.handle)).toBe(true));
    expect(listing.map((e) => e.name.toString()).sort()).toEqual(made.map((_, i) => `f${i}`).sort());
    for (const e of listing) expect(e.entry).toBeDefined();

    const [values, lists] = await Promise.all([
      Promise.all(made.map((m) => s.getXattr(root, m.entry.handle, 'user.which'))),
      Promise.all(made.map((m) => s.listXattr(root, m.entry.handle))),
    ]);
    values.forEach((v, i) => expect(v.toString()).toBe(`v${i}`));
    lists.forEach((l) => expect(l).toContain('user.which'));

    // Names: rename the even files, unlink every third, symlink and hard-link some, all at once.
    const dirPath = join(d!.exports[0]!.path, 'many');
    await Promise.all([
      ...made.map((m, i) => s.release(root, m.fh, m.entry.handle)),
      ...made.map((_, i) => (i % 2 === 0 ? s.rename(root, dir.handle, `f${i}`, dir.handle, `r${i}`) : Promise.resolve())),
      ...made.map((_, i) => (i % 2 === 1 && i % 3 === 0 ? s.unlink(root, dir.handle, `f${i}`) : Promise.resolve())),
      s.symlink(root, dir.handle, 'sym', 'r0'),
      s.link(root, made[1]!.entry.handle, dir.handle, 'hard1'),
      s.removeXattr(root, made[2]!.entry.handle, 'user.which'),
    ]);
    const expected = made.map((_, i) => (i % 2 === 0 ? `r${i}` : i % 3 === 0 ? null : `f${i}`)).filter((x): x is string => x !== null);
    expect(fs.readdirSync(dirPath).sort()).toEqual([...expected, 'hard1', 'sym'].sort());
    const sym = await s.lookup(root, dir.handle, 'sym');
    expect((await s.readlink(root, sym.handle)).toString()).toBe('r0');
    expect(fs.statSync(join(dirPath, 'hard1')).nlink).toBe(2);
    await expect(s.getXattr(root, made[2]!.entry.handle, 'user.which')).rejects.toMatchObject({ code: 'ENODATA' });

    // Errnos as the kernel gives them, while other requests are in flight.
    const [noent, notEmpty, exists] = await Promise.allSettled([
      s.lookup(root, dir.handle, 'f0'),
      s.rmdir(root, top.handle, 'many'),
      s.mkdir(root, dir.handle, 'r0'),
      s.getAttr(root, top.handle),
    ]);
    expect(noent).toMatchObject({ status: 'rejected', reason: { code: 'ENOENT' } });
    expect(notEmpty).toMatchObject({ status: 'rejected', reason: { code: 'ENOTEMPTY' } });
    expect(exists).toMatchObject({ status: 'rejected', reason: { code: 'EEXIST' } });
  });

  it('a blocked SetLkW is overtaken by later requests; its reply comes when the lock is freed', async () => {
    const s = await session();
    const top = await s.root(root, d!.exports[0]!.path);
    const { entry: f, fh } = await s.create(root, top.handle, 'locked', O_RDWR | O_CREAT);
    await s.release(root, fh);
    const lock = (owner: number, type: number) => ({ clientId: 'c', lockOwner: owner, start: 0, end: 99, type });
    await s.setLk(root, f.handle, lock(1, WRITE));
    await expect(s.setLk(root, f.handle, lock(2, READ))).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(await s.getLk(root, f.handle, lock(2, READ))).toMatchObject({ conflict: true, type: WRITE, start: 0, end: 99 });

    let waitedDone = false;
    const waited = s.setLkW(root, f.handle, lock(2, READ)).then(() => (waitedDone = true));
    // Sent after the SetLkW, answered before it.
    const later = await Promise.all(Array.from({ length: 20 }, () => s.getAttr(root, f.handle)));
    expect(later).toHaveLength(20);
    expect(waitedDone).toBe(false);
    expect(s.inFlight).toBe(1);
    await s.setLk(root, f.handle, lock(1, UNLOCK));
    await waited;
    expect(waitedDone).toBe(true);
    expect(await s.getLk(root, f.handle, lock(3, WRITE))).toMatchObject({ conflict: true, type: READ });
  });

  it('open files: fh-based I/O, setattr, fsync, fallocate and access through the session', async () => {
    const s = await session();
    const top = await s.root(root, d!.exports[0]!.path);
    const { entry, fh } = await s.create(root, top.handle, 'io', O_RDWR | O_CREAT, 0o600);
    const data = Buffer.alloc(3 << 20, 7);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    expect(await s.write(root, entry.handle, fh, 0, data)).toBe(data.length);
    await s.fsync(root, entry.handle, fh);
    await s.fallocate(root, entry.handle, fh, 0, 4 << 20, 1 /* KEEP_SIZE */);
    const [whole, tail, past] = await Promise.all([
      s.read(root, entry.handle, fh, 0, data.length),
      s.read(root, entry.handle, fh, data.length - 5, 100),
      s.read(root, entry.handle, fh, data.length + 10, 100),
    ]);
    expect(whole.equals(data)).toBe(true);
    expect(tail.equals(data.subarray(data.length - 5))).toBe(true);
    expect(past.length).toBe(0);
    const attr = await s.setAttr(root, entry.handle, { valid_size: true, size: 1000, valid_mode: true, mode: 0o604, fh });
    expect(Number(attr.size)).toBe(1000);
    expect(attr.mode & 0o777).toBe(0o604);
    await s.access(root, entry.handle, 4);
    const ro = await s.open(root, entry.handle, O_RDONLY);
    await expect(s.writeChunk(root, entry.handle, ro, 0, Buffer.from('no'))).rejects.toMatchObject({ code: 'EBADF' });
    await expect(s.readChunk(root, entry.handle, ro, 0, (1 << 20) + 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await s.release(root, ro);
    await s.release(root, fh);
    // A released fh is EBADF, never reopened.
    await expect(s.readChunk(root, entry.handle, fh, 0, 10)).rejects.toMatchObject({ code: 'EBADF' });
    // Stateless I/O (fh 0) and mknod.
    expect((await s.readChunk(root, entry.handle, 0, 0, 4)).equals(data.subarray(0, 4))).toBe(true);
    const fifo = await s.mknod(root, top.handle, 'fifo', 0o010644);
    expect(fifo.attr.mode & 0o170000).toBe(0o010000);
  });

  it('a directory listed in batches: every entry once, cookies resume', async () => {
    const s = await session();
    const top = await s.root(root, d!.exports[0]!.path);
    const big = await s.mkdir(root, top.handle, 'big');
    const bigPath = join(d!.exports[0]!.path, 'big');
    for (let i = 0; i < 2500; i++) fs.writeFileSync(join(bigPath, `e${i}`), '');
    const first = await s.readDirBatch(root, big.handle);
    expect(first.eof).toBe(false);
    expect(first.entries.length).toBe(1024);
    const all = await s.readDir(root, big.handle);
    expect(all.length).toBe(2500);
    expect(new Set(all.map((e) => e.name.toString())).size).toBe(2500);
  });
});
