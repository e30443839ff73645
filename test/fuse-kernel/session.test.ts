// The session against a real kernel, in process: a tiny FileSystem mounted with our own layer.
// Callers are child processes (cat, stat, mkdir): a synchronous call from this thread into our own
// mount would wait on the thread that must answer it.
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Attr, type FileSystem, OpenFlag, type Session, unmountFuse } from '../../fuse/kernel/index.js';
import { type InProcessMount, mountInProcess } from '../harness/in-process-fuse.js';

const now = { sec: 1_700_000_000, nsec: 0 };
const attrOf = (ino: number, mode: number, size: number): Attr => ({
  ino, size, blocks: 0, atime: now, mtime: now, ctime: now, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096,
});
const names: Record<string, number> = { hello: 2, boom: 3, slow: 4 };
let helloText = 'hello\n';
let slowSawInterrupt = false;
let lastCaller: { uid: number; gid: number; pid: number; groups: number[] } | undefined;

function attrFor(id: number): Attr {
  if (id === 1) return attrOf(1, 0o040755, 0);
  if (id === 2) return attrOf(2, 0o100644, Buffer.byteLength(helloText));
  if (id === 4) return attrOf(4, 0o100644, 100);
  throw new Error('a bug in the filesystem, not an errno');
}

const fs: FileSystem = {
  lookup(ctx, r) {
    lastCaller = { uid: ctx.uid, gid: ctx.gid, pid: ctx.pid, groups: ctx.groups };
    if (r.name.toString() === 'boom') throw new Error('a bug in the filesystem, not an errno');
    // An errno Node has no code for, by number (as proto/errno.ts's Errno carries it).
    if (r.name.toString() === 'down') throw Object.assign(new Error('EHOSTDOWN'), { code: 'EHOSTDOWN', errno: 112 });
    const id = names[r.name.toString()];
    if (id === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return { nodeId: id, generation: 0, entryTimeout: 60, attrTimeout: 60, attr: attrOf(id, 0o100644, id === 2 ? Buffer.byteLength(helloText) : 100) };
  },
  getattr: (_ctx, r) => ({ attr: attrFor(r.header.nodeId), attrTimeout: 60 }),
  // direct I/O for "slow": its READ then runs in the caller's context, which the kernel interrupts
  // (page-cache reads are background requests and never are).
  open: (_ctx, r) => ({ fh: 7, openFlags: r.header.nodeId === 4 ? OpenFlag.DIRECT_IO : OpenFlag.KEEP_CACHE }),
  async read(ctx, r) {
    if (r.header.nodeId === 4) {
      await new Promise<void>((resolve) => ctx.interrupted.addEventListener('abort', () => resolve()));
      slowSawInterrupt = true;
      throw Object.assign(new Error('EINTR'), { code: 'EINTR' });
    }
    return Buffer.from(helloText).subarray(r.offset, r.offset + r.size);
  },
};

let mount: InProcessMount;
let mnt: string;
let session: Session;

const run = (cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> =>
  new Promise((resolve) => execFile(cmd, args, (e, out, err) => resolve({ code: e ? Number(e.code ?? 1) : 0, out, err })));

beforeAll(async () => {
  mount = await mountInProcess(fs, 'omfs-f1-session-');
  ({ mnt, session } = mount);
});

afterAll(async () => {
  await mount?.unmount();
});

test('requests carry the caller and answers reach the caller', async () => {
  const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--groups=4,5', 'cat', join(mnt, 'hello')]);
  expect(r).toMatchObject({ code: 0, out: 'hello\n' });
  expect(lastCaller).toMatchObject({ uid: 65534, gid: 65534, groups: [4, 5] });
});

test('a thrown errno is the caller\'s errno; a missing method is ENOSYS', async () => {
  expect((await run('cat', [join(mnt, 'nope')])).err).toMatch(/No such file/);
  expect((await run('mkdir', [join(mnt, 'd')])).err).toMatch(/Function not implemented/);
});

test('an errno Node cannot name reaches the caller by its number', async () => {
  expect((await run('stat', [join(mnt, 'down')])).err).toMatch(/Host is down/);
});

test('a filesystem bug becomes EIO and the mount keeps working', async () => {
  expect((await run('stat', [join(mnt, 'boom')])).err).toMatch(/Input\/output error/);
  expect((await run('cat', [join(mnt, 'hello')])).out).toBe('hello\n');
});

test('requests left waiting hold up neither other requests nor this process\'s libuv pool', async () => {
  // Six READs that never finish on their own (more than the pool's four threads): if waiting on
  // /dev/fuse or on a request parked a pool thread, the reads below would never complete.
  const cats = Array.from({ length: 6 }, () => spawn('cat', [join(mnt, 'slow')], { stdio: 'ignore' }));
  const exited = cats.map((c) => new Promise<unknown>((r) => c.once('exit', r)));
  try {
    await new Promise((r) => setTimeout(r, 300));
    expect(cats.every((c) => c.exitCode === null)).toBe(true); // still waiting in READ
    expect((await run('cat', [join(mnt, 'hello')])).out).toBe('hello\n');
    const pooled = await Promise.all(Array.from({ length: 8 }, () => readFile('/proc/self/status', 'utf8')));
    expect(pooled.every((text) => text.includes(`Pid:\t${process.pid}`))).toBe(true);
  } finally {
    for (const c of cats) c.kill('SIGKILL');
    await Promise.all(exited);
  }
});

test('INTERRUPT aborts the request\'s signal and the caller is released', async () => {
  const cat = spawn('cat', [join(mnt, 'slow')], { stdio: 'ignore' });
  const exited = new Promise<unknown>((r) => cat.once('exit', r));
  await new Promise((r) => setTimeout(r, 300));
  cat.kill('SIGKILL');
  await exited;
  for (let i = 0; i < 50 && !slowSawInterrupt; i++) await new Promise((r) => setTimeout(r, 50));
  expect(slowSawInterrupt).toBe(true);
  expect((await run('cat', [join(mnt, 'hello')])).out).toBe('hello\n');
});

test('INVAL_INODE makes kept cache show new data', async () => {
  helloText = 'hello\n';
  expect((await run('cat', [join(mnt, 'hello')])).out).toBe('hello\n');
  helloText = 'HELLO\n'; // same size, attrs cached for 60 s, pages kept: the kernel cannot know
  expect((await run('cat', [join(mnt, 'hello')])).out).toBe('hello\n');
  expect(await session.notifier.invalInode(2, 0, 0)).toBeUndefined();
  expect((await run('cat', [join(mnt, 'hello')])).out).toBe('HELLO\n');
  expect(await session.notifier.invalEntry(1, 'hello')).toBeUndefined();
  expect(await session.notifier.invalEntry(1, 'never-looked-up')).toBe('ENOENT');
});

test('`umount` ends the session with ENODEV', async () => {
  expect(await unmountFuse(mnt)).toBe(true);
  expect(await session.closed).toBe('ENODEV');
});
