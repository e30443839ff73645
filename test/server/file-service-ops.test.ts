// Every FileService RPC against a real in-process server, checked against the disk with node:fs.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { FileClient, ROOT_CALLER as root, type Entry } from '../../proto/file-client.js';
import { createFileService } from '../../server/file-service.js';
import { LockTable } from '../../server/locks.js';

const { O_RDWR, O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND } = fs.constants;
let h: Harness;
let top: Entry;

beforeEach(async () => {
  h = await startHarness({ exports: [{ name: 'a' }, { name: 'b' }] });
  top = await h.client.root(root, h.exports[0]!);
});
afterEach(async () => { await h.stop(); });

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'OK';
  } catch (err) {
    const c = (err as { code: string }).code;
    return c === 'EWOULDBLOCK' ? 'EAGAIN' : c; // same number (11); errno.ts names it EWOULDBLOCK
  }
};

describe('createFileService', () => {
  it('refuses a missing export or one that is not a directory, with a clear errno', async () => {
    const base = { nodeId: 1, stateDir: join(h.dir, 'state2'), locks: new LockTable() };
    const spec = (path: string) => [{ path, dfsa: 1, readOnly: false, rootSquash: false }];
    await expect(createFileService({ ...base, exports: spec(join(h.dir, 'missing')) })).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('missing') });
    fs.writeFileSync(join(h.dir, 'plain'), '');
    await expect(createFileService({ ...base, exports: spec(join(h.dir, 'plain')) })).rejects.toMatchObject({ code: 'ENOTDIR' });
    // The state dir is usable again afterwards (LevelDB was closed on the failure path).
    const ok = await createFileService({ ...base, exports: spec(h.exports[0]!) });
    await ok.close();
  });
});

describe('lookup, getattr, root', () => {
  it('finds files with their real attributes and a cluster-unique inode', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'hello');
    const e = await h.client.lookup(root, top.handle, 'f');
    const st = fs.statSync(join(h.exports[0]!, 'f'), { bigint: true });
    expect(e.attr.size).toBe('5');
    expect(e.attr.mode).toBe(Number(st.mode));
    expect(BigInt(e.attr.ino) >> 48n).toBe(7n);
    expect(BigInt(e.attr.mtime.sec)).toBe(st.mtimeNs / 1_000_000_000n);
    expect((await h.client.getAttr(root, e.handle)).size).toBe('5');
    expect(await code(h.client.lookup(root, top.handle, 'missing'))).toBe('ENOENT');
    expect(await code(h.client.root(root, '/nope'))).toBe('ENOENT');
    expect(await code(h.client.lookup(root, e.handle, 'x'))).toBe('ENOTDIR');
    expect(await code(h.client.lookup(root, top.handle, 'x'.repeat(256)))).toBe('ENAMETOOLONG');
    for (const bad of ['', '.', '..', 'a/b', 'a\0b']) expect(await code(h.client.lookup(root, top.handle, bad))).toBe('EINVAL');
    for (const bad of [Buffer.from([0x61, 0x2f]), Buffer.from([0xff, 0]), Buffer.alloc(256, 0xff)]) {
      expect(await code(h.client.lookup(root, top.handle, bad))).toBe(bad.length > 255 ? 'ENAMETOOLONG' : 'EINVAL');
    }
  });
});

describe('create, open, read, write, release', () => {
  it('creates, writes, reads, truncates and appends', async () => {
    const { entry, fh } = await h.client.create(root, top.handle, 'f', O_RDWR | O_CREAT | O_EXCL, 0o640);
    expect(await h.client.write(root, entry.handle, fh, 0, Buffer.from('hello world'))).toBe(11);
    expect((await h.client.read(root, entry.handle, fh, 6, 100)).toString()).toBe('world');
    expect(fs.readFileSync(join(h.exports[0]!, 'f'), 'utf8')).toBe('hello world');
    expect(fs.statSync(join(h.exports[0]!, 'f')).mode & 0o7777).toBe(0o640);
    expect(await code(h.client.create(root, top.handle, 'f', O_RDWR | O_CREAT | O_EXCL))).toBe('EEXIST');
    await h.client.release(root, fh);
    const afh = await h.client.open(root, entry.handle, O_WRONLY | O_APPEND);
    await h.client.write(root, entry.handle, afh, 0, Buffer.from('!'), O_WRONLY | O_APPEND);
    expect(fs.readFileSync(join(h.exports[0]!, 'f'), 'utf8')).toBe('hello world!');
    const tfh = await h.client.open(root, entry.handle, O_WRONLY | O_TRUNC);
    expect(fs.statSync(join(h.exports[0]!, 'f')).size).toBe(0);
    expect(await code(h.client.read(root, entry.handle, tfh, 0, 10))).toBe('EBADF');
    expect(await code(h.client.open(root, top.handle, O_WRONLY))).toBe('EISDIR');
  });

  it('moves 16 MiB each way in one call, byte-exact', async () => {
    const data = Buffer.alloc(16 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const { entry, fh } = await h.client.create(root, top.handle, 'big', O_RDWR | O_CREAT);
    expect(await h.client.write(root, entry.handle, fh, 0, data)).toBe(data.length);
    expect(fs.readFileSync(join(h.exports[0]!, 'big')).equals(data)).toBe(true);
    const back = await h.client.read(root, entry.handle, fh, 0, data.length + 100);
    expect(back.equals(data)).toBe(true);
  });

  it('a read cancelled by the client stops and frees its file', async () => {
    const path = join(h.exports[0]!, 'big');
    fs.writeFileSync(path, Buffer.alloc(32 << 20, 1));
    const f = await h.client.lookup(root, top.handle, 'big');
    const fds = fs.readdirSync('/proc/self/fd').length;
    const read = h.client.raw['Read'] as (req: object) => NodeJS.EventEmitter & { cancel(): void };
    const call = read.call(h.client.raw, { caller: root, handle: f.handle, fh: '0', flags: 0, offset: '0', size: String(32 << 20) });
    const ended = new Promise<string>((resolve) => {
      call.once('data', () => call.cancel());
      call.on('error', (err: { code: number }) => resolve(`status ${err.code}`));
      call.on('end', () => resolve('end'));
    });
    expect(await ended).toBe('status 1');
    for (let i = 0; i < 50 && fs.readdirSync('/proc/self/fd').length > fds; i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fds);
    expect((await h.client.getAttr(root, f.handle)).size).toBe(String(32 << 20));
  });

  it('refuses O_NOFOLLOW-style opens of symlinks with ELOOP', async () => {
    fs.symlinkSync('target', join(h.exports[0]!, 'l'));
    const l = await h.client.lookup(root, top.handle, 'l');
    expect(await code(h.client.open(root, l.handle, O_RDONLY))).toBe('ELOOP');
    expect((await h.client.readlink(root, l.handle)).toString()).toBe('target');
    expect(await code(h.client.readlink(root, top.handle))).toBe('EINVAL');
  });
});

describe('namespace', () => {
  it('mkdir, readdir with cookies, rename, link, unlink, rmdir', async () => {
    const d = await h.client.mkdir(root, top.handle, 'd', 0o750);
    expect(fs.statSync(join(h.exports[0]!, 'd')).mode & 0o7777).toBe(0o750);
    expect(await code(h.client.mkdir(root, top.handle, 'd'))).toBe('EEXIST');
    for (let i = 0; i < 50; i++) fs.writeFileSync(join(h.exports[0]!, 'd', `f${i}`), String(i));
    const all = await h.client.readDir(root, d.handle);
    expect(all.map((e) => e.name.toString()).sort()).toEqual(fs.readdirSync(join(h.exports[0]!, 'd')).sort());
    const rest = await h.client.readDir(root, d.handle, all[19]!.cookie);
    expect(rest.map((e) => e.name)).toEqual(all.slice(20).map((e) => e.name));
    expect(await code(h.client.rmdir(root, top.handle, 'd'))).toBe('ENOTEMPTY');
    await h.client.rename(root, d.handle, 'f1', top.handle, 'moved');
    expect(fs.readFileSync(join(h.exports[0]!, 'moved'), 'utf8')).toBe('1');
    expect(await code(h.client.rename(root, d.handle, 'f2', top.handle, 'moved', 1))).toBe('EEXIST');
    expect(await code(h.client.rename(root, d.handle, 'f2', top.handle, 'x', 2))).toBe('ENOENT'); // nothing to exchange with
    expect(await code(h.client.rename(root, d.handle, 'f2', top.handle, 'moved', 3))).toBe('EINVAL');
    expect(await code(h.client.rename(root, d.handle, 'f2', top.handle, 'x', 4))).toBe('EINVAL');
    await h.client.rename(root, d.handle, 'f2', top.handle, 'nr', 1);
    expect(fs.existsSync(join(h.exports[0]!, 'd', 'f2'))).toBe(false);
    const moved = await h.client.lookup(root, top.handle, 'moved');
    const linked = await h.client.link(root, moved.handle, d.handle, 'hard');
    expect(linked.attr.nlink).toBe(2);
    expect(await code(h.client.link(root, d.handle, top.handle, 'dl'))).toBe('EPERM');
    expect(await code(h.client.unlink(root, top.handle, 'd'))).toBe('EISDIR');
    expect(await code(h.client.rmdir(root, top.handle, 'moved'))).toBe('ENOTDIR');
    await h.client.unlink(root, top.handle, 'moved');
    expect(fs.existsSync(join(h.exports[0]!, 'moved'))).toBe(false);
    // The handle follows the file to its remaining name.
    expect((await h.client.getAttr(root, moved.handle)).nlink).toBe(1);
  });

  it('EXDEV across exports, ESTALE for a removed file', async () => {
    const other = await h.client.root(root, h.exports[1]!);
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    expect(await code(h.client.rename(root, top.handle, 'f', other.handle, 'f'))).toBe('EXDEV');
    expect(await code(h.client.link(root, f.handle, other.handle, 'f'))).toBe('EXDEV');
    fs.unlinkSync(join(h.exports[0]!, 'f'));
    expect(await code(h.client.getAttr(root, f.handle))).toBe('ESTALE');
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'new file, same name');
    expect(await code(h.client.getAttr(root, f.handle))).toBe('ESTALE');
  });

  it('symlink and mknod (fifo, socket; devices for root only)', async () => {
    expect(await code(h.client.symlink(root, top.handle, 'long', 'x'.repeat(5000)))).toBe('ENAMETOOLONG');
    expect(await code(h.client.symlink(root, top.handle, 'empty', ''))).toBe('EINVAL');
    const s = await h.client.symlink(root, top.handle, 's', '../../etc/passwd');
    expect(fs.readlinkSync(join(h.exports[0]!, 's'))).toBe('../../etc/passwd');
    expect(s.attr.mode & 0o170000).toBe(0o120000);
    const fifo = await h.client.mknod(root, top.handle, 'p', 0o010644, 0o022);
    expect(fs.statSync(join(h.exports[0]!, 'p')).isFIFO()).toBe(true);
    expect(fifo.attr.mode & 0o777).toBe(0o644);
    const sock = await h.client.mknod(root, top.handle, 'sock', 0o140600);
    expect(fs.lstatSync(join(h.exports[0]!, 'sock')).isSocket()).toBe(true);
    expect(sock.attr.mode).toBe(0o140600);
    expect(fs.readdirSync(h.exports[0]!).filter((n) => n.startsWith('.omfs'))).toEqual([]);
    expect(await code(h.client.mknod(root, top.handle, 'sock', 0o140600))).toBe('EEXIST');
    expect(await code(h.client.mknod(root, top.handle, 'p', 0o010600))).toBe('EEXIST');
    expect(await code(h.client.mknod(root, top.handle, 'odd', 0o170600))).toBe('EINVAL');
    const user = { uid: 1000, gid: 1000, groups: [], pid: 1 };
    fs.chmodSync(h.exports[0]!, 0o777);
    expect(await code(h.client.mknod(user, top.handle, 'c', 0o020600, 0, (1 << 8) | 3))).toBe('EPERM');
    await h.client.mknod(root, top.handle, 'null', 0o020666, 0, (1 << 8) | 3);
    const st = fs.statSync(join(h.exports[0]!, 'null'));
    expect(st.isCharacterDevice() && st.rdev === ((1 << 8) | 3)).toBe(true);
  });
});

describe('setattr, access, statfs, xattr, fallocate, fsync', () => {
  it('sets mode, owner, size and times', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'abcdef');
    const f = await h.client.lookup(root, top.handle, 'f');
    await h.client.setAttr(root, f.handle, { valid_mode: true, mode: 0o600, valid_uid: true, uid: 1000, valid_gid: true, gid: 1000 });
    let st = fs.statSync(join(h.exports[0]!, 'f'));
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o600, 1000, 1000]);
    const a = await h.client.setAttr(root, f.handle, { valid_size: true, size: '2' });
    expect(a.size).toBe('2');
    await h.client.setAttr(root, f.handle, { valid_mtime: true, mtime: { sec: '1000000', nsec: 0 }, valid_atime: true, atime: { sec: '2000000', nsec: 0 } });
    st = fs.statSync(join(h.exports[0]!, 'f'));
    expect([st.mtimeMs, st.atimeMs]).toEqual([1e9, 2e9]);
    await h.client.setAttr(root, f.handle, { valid_mtime: true, mtime: { sec: '1000000', nsec: 123_456_000 } });
    const ns = fs.statSync(join(h.exports[0]!, 'f'), { bigint: true }).mtimeNs;
    expect(ns).toBe(1_000_000_123_456_000n);
    const before = Date.now();
    await h.client.setAttr(root, f.handle, { valid_mtime: true, mtime_now: true });
    expect(fs.statSync(join(h.exports[0]!, 'f')).mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    expect(await code(h.client.setAttr(root, top.handle, { valid_size: true, size: '0' }))).toBe('EISDIR');
  });

  it('access, statfs, fsync', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    fs.chmodSync(join(h.exports[0]!, 'f'), 0o640);
    const f = await h.client.lookup(root, top.handle, 'f');
    const user = { uid: 1000, gid: 1000, groups: [], pid: 1 };
    expect(await code(h.client.call('Access', { caller: user, handle: f.handle, mask: 4 }))).toBe('EACCES');
    expect(await code(h.client.call('Access', { caller: root, handle: f.handle, mask: 6 }))).toBe('OK');
    expect(await code(h.client.call('Access', { caller: root, handle: f.handle, mask: 1 }))).toBe('EACCES');
    const s = await h.client.statFs(root, f.handle);
    expect(s.blocks).toBe(String(fs.statfsSync(h.exports[0]!).blocks));
    const fh = await h.client.open(root, f.handle, O_RDWR);
    expect(await code(h.client.call('Fsync', { caller: root, handle: f.handle, fh, datasync: false }))).toBe('OK');
  });

  it('xattrs: set, get, list, remove, with flags', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const value = Buffer.from([0, 1, 2, 255, 10, 32]);
    await h.client.setXattr(root, f.handle, 'user.bin', value);
    expect((await h.client.getXattr(root, f.handle, 'user.bin')).equals(value)).toBe(true);
    expect(await h.client.listXattr(root, f.handle)).toContain('user.bin');
    await h.client.removeXattr(root, f.handle, 'user.bin');
    expect(await code(h.client.getXattr(root, f.handle, 'user.bin'))).toBe('ENODATA');
    expect(await code(h.client.removeXattr(root, f.handle, 'user.bin'))).toBe('ENODATA');
    expect(await code(h.client.getXattr(root, f.handle, 'bogus'))).toBe('EOPNOTSUPP');
    expect(await code(h.client.setXattr(root, f.handle, 'user.x', value, 4))).toBe('EINVAL');
    await h.client.setXattr(root, f.handle, 'user.empty', Buffer.alloc(0));
    expect((await h.client.getXattr(root, f.handle, 'user.empty')).length).toBe(0);
  });

  it('fallocate mode 0 extends the file', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    await h.client.fallocate(root, f.handle, '0', 0, 1 << 20);
    expect(fs.statSync(join(h.exports[0]!, 'f')).size).toBe(1 << 20);
    expect(fs.readFileSync(join(h.exports[0]!, 'f')).subarray(0, 1).toString()).toBe('x');
    // The kernel's own errnos: zero length, an unknown mode bit.
    expect(await code(h.client.fallocate(root, f.handle, '0', 0, 0))).toBe('EINVAL');
    expect(await code(h.client.fallocate(root, f.handle, '0', 0, 10, 0x1000))).toBe('EOPNOTSUPP');
    expect(await code(h.client.fallocate(root, top.handle, '0', 0, 10))).toBe('EISDIR');
  });
});

describe('locks', () => {
  it('conflicting ranges between two clients, SetLkW released by unlock', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const lk = (client_id: string, type: number, start: string, end: string) =>
      ({ caller: root, handle: f.handle, client_id, lock_owner: '1', start, end, type });
    await h.client.call('SetLk', lk('A', 1, '0', '99'));
    expect(await code(h.client.call('SetLk', lk('B', 1, '50', '60')))).toBe('EAGAIN');
    expect(await code(h.client.call('SetLk', lk('B', 1, '100', '200')))).toBe('OK');
    const got = await h.client.call<{ conflict: boolean; start: string; end: string }>('GetLk', lk('B', 0, '0', '10'));
    expect([got.conflict, got.start, got.end]).toEqual([true, '0', '99']);
    let acquired = false;
    // B waits on its own connection, as a second node's client would.
    const second = new FileClient(h.address);
    const waiting = second.call('SetLkW', lk('B', 1, '10', '20')).then(() => { acquired = true; }).finally(() => second.close());
    await new Promise((r) => setTimeout(r, 200));
    expect(acquired).toBe(false);
    await h.client.call('SetLk', lk('A', 2, '0', '99'));
    await waiting;
    expect(acquired).toBe(true);
  });

  it('a cancelled SetLkW stops waiting and never takes the lock', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const lk = (client_id: string, type: number) => ({ caller: root, handle: f.handle, client_id, lock_owner: '9', start: '0', end: '9', type });
    await h.client.call('SetLk', lk('A', 1));
    const setLkW = h.client.raw['SetLkW'] as (req: object, cb: (err: { code: number } | null) => void) => { cancel(): void };
    const outcome = new Promise<number>((resolve) => {
      const call = setLkW.call(h.client.raw, lk('B', 1), (err) => resolve(err ? err.code : 0));
      setTimeout(() => call.cancel(), 200);
    });
    expect(await outcome).toBe(1); // CANCELLED
    await h.client.call('SetLk', lk('A', 2));
    await new Promise((r) => setTimeout(r, 100));
    // B's cancelled wait must not have turned into a lock: C gets the range at once.
    expect(await code(h.client.call('SetLk', lk('C', 1)))).toBe('OK');
  });
});

describe('release', () => {
  it('with flush_locks drops the owner locks on that file', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const fh = await h.client.open(root, f.handle, O_RDWR);
    const lk = (client_id: string) => ({ caller: root, handle: f.handle, client_id, lock_owner: '5', start: '0', end: '9223372036854775807', type: 1 });
    await h.client.call('SetLk', lk('A'));
    expect(await code(h.client.call('SetLk', lk('B')))).toBe('EAGAIN');
    await h.client.call('Release', { caller: root, fh, client_id: 'A', lock_owner: '5', flush_locks: true, handle: f.handle });
    expect(await code(h.client.call('SetLk', lk('B')))).toBe('OK');
  });
});

describe('large directories', () => {
  it('streams 5000 entries with attributes and resumes by cookie', async () => {
    const d = await h.client.mkdir(root, top.handle, 'many');
    for (let i = 0; i < 5000; i++) fs.writeFileSync(join(h.exports[0]!, 'many', `file-${i}`), '');
    const all = await h.client.readDir(root, d.handle);
    expect(all.length).toBe(5000);
    expect(new Set(all.map((e) => e.name)).size).toBe(5000);
    expect(all.every((e) => e.entry!.attr.mode === fs.lstatSync(join(h.exports[0]!, 'many', e.name.toString())).mode)).toBe(true);
    // Entries removed and added between two calls do not shift the resume point.
    fs.unlinkSync(join(h.exports[0]!, 'many', all[10]!.name.toString()));
    const rest = await h.client.readDir(root, d.handle, all[2499]!.cookie);
    expect(rest.map((e) => e.name)).toEqual(all.slice(2500).map((e) => e.name));
  });
});
