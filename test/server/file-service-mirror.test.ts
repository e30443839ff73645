// mfsd behaves like the directory it serves: names as bytes, open files that outlive their name,
// hard links, renameat2 flags, nanosecond times, kernel xattr flags and fallocate modes, checked
// against the export with node:fs and sys/ (and, for fallocate, against the same call made
// directly on a file of the bare directory).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Caller, type Entry } from '../../proto/file-client.js';
import { HandleStore } from '../../server/handles.js';
import * as sys from '../../sys/index.js';
import { code } from '../harness/outcome.js';

const { O_RDWR, O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 1 };
const bob: Caller = { uid: 1001, gid: 1001, groups: [], pid: 2 };
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const LATIN1 = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not UTF-8
const LONGEST = Buffer.alloc(255, 0xff);
let h: Harness;
let top: Entry;
const A = (...p: Array<string | Buffer>): Buffer => Buffer.concat([Buffer.from(h.exports[0]!), ...p.flatMap((x) => [Buffer.from('/'), Buffer.from(x)])]);

beforeEach(async () => {
  h = await startHarness();
  fs.chmodSync(h.exports[0]!, 0o777);
  top = await h.client.root(root, h.exports[0]!);
});
afterEach(async () => { await h.stop(); });

const namesOnDisk = (...dir: Array<string | Buffer>): Buffer[] => fs.readdirSync(A(...dir), { encoding: 'buffer' });
const sortBytes = (l: Buffer[]): Buffer[] => [...l].sort(Buffer.compare);

describe('names are bytes', () => {
  it('a Latin-1 name and a 255-byte name of 0xff: created, looked up, listed, renamed, removed', async () => {
    for (const name of [LATIN1, LONGEST]) {
      const { entry, fh } = await h.client.create(root, top.handle, name, O_RDWR | O_CREAT | O_EXCL, 0o644);
      await h.client.write(root, entry.handle, fh, 0, Buffer.from('bytes'));
      await h.client.release(root, fh);
      expect(fs.readFileSync(A(name), 'utf8')).toBe('bytes');
      expect((await h.client.lookup(root, top.handle, name)).attr.ino).toBe(entry.attr.ino);
    }
    await h.client.mkdir(root, top.handle, Buffer.from([0xc3, 0x28]), 0o755); // an invalid UTF-8 sequence
    const listed = await h.client.readDir(root, top.handle);
    expect(sortBytes(listed.map((e) => e.name))).toEqual(sortBytes(namesOnDisk()));
    expect(listed.some((e) => e.name.equals(LATIN1))).toBe(true);
    expect(listed.some((e) => e.name.equals(LONGEST))).toBe(true);
    // Resuming after a cookie works on byte names too.
    const sorted = listed; // sent in cookie order
    const rest = await h.client.readDir(root, top.handle, sorted[0]!.cookie);
    expect(rest.map((e) => e.name)).toEqual(sorted.slice(1).map((e) => e.name));

    const renamed = Buffer.from([0x66, 0x80, 0xfe]);
    const f = await h.client.lookup(root, top.handle, LATIN1);
    await h.client.rename(root, top.handle, LATIN1, top.handle, renamed);
    expect(fs.existsSync(A(LATIN1))).toBe(false);
    expect(fs.readFileSync(A(renamed), 'utf8')).toBe('bytes');
    expect((await h.client.getAttr(root, f.handle)).ino).toBe(f.attr.ino); // the handle followed the rename
    await h.client.unlink(root, top.handle, renamed);
    await h.client.unlink(root, top.handle, LONGEST);
    await h.client.rmdir(root, top.handle, Buffer.from([0xc3, 0x28]));
    expect(namesOnDisk()).toEqual([]);
    // The UTF-8 name that a decoder would have produced is another name.
    fs.writeFileSync(A(LATIN1), 'x');
    expect(await code(h.client.lookup(root, top.handle, 'caf\ufffd'))).toBe('ENOENT');
    expect(await code(h.client.lookup(root, top.handle, Buffer.alloc(256, 0xff)))).toBe('ENAMETOOLONG');
  });

  it('symlink targets are bytes both ways; handles of byte names survive a restart', async () => {
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xe9, 0xff]);
    const s = await h.client.symlink(root, top.handle, LATIN1, target);
    expect(fs.readlinkSync(A(LATIN1), { encoding: 'buffer' }).equals(target)).toBe(true);
    expect((await h.client.readlink(root, s.handle)).equals(target)).toBe(true);
    fs.symlinkSync(Buffer.from([0xfe, 0xfd]), A(LONGEST));
    const l = await h.client.lookup(root, top.handle, LONGEST);
    expect((await h.client.readlink(root, l.handle)).equals(Buffer.from([0xfe, 0xfd]))).toBe(true);
    expect(await code(h.client.symlink(root, top.handle, 'bad', Buffer.from([0x61, 0])))).toBe('EINVAL');
    const d = await h.client.mkdir(root, top.handle, Buffer.from([0xe9]));
    const { entry } = await h.client.create(root, d.handle, LONGEST, O_RDWR | O_CREAT);
    await h.restart();
    expect((await h.client.getAttr(root, entry.handle)).ino).toBe(entry.attr.ino);
    expect((await h.client.readlink(root, s.handle)).equals(target)).toBe(true);
  });

  it('records written before names were bytes (text name, number ino) still resolve', async () => {
    const dir = join(h.dir, 'old-store');
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.put('file:42', JSON.stringify({ parent: '7', name: 'héllo', dev: 3, ino: 42, btime: 1.5 }));
    await db.close();
    const store = await HandleStore.open(dir);
    try {
      const rec = await store.record(42n);
      expect(rec?.name.equals(Buffer.from('héllo', 'utf8'))).toBe(true);
      expect([rec?.parent, rec?.dev, rec?.ino, rec?.btime]).toEqual(['7', 3, 42n, 1.5]);
    } finally {
      await store.close();
    }
  });
});

describe('open files outlive their name', () => {
  it('open, unlink, then GetAttr, Write, Fallocate, Read, SetAttr, xattrs and Fsync through the fh', async () => {
    const { entry, fh } = await h.client.create(alice, top.handle, 'gone', O_RDWR | O_CREAT, 0o644);
    await h.client.write(alice, entry.handle, fh, 0, Buffer.from('hello'));
    await h.client.unlink(alice, top.handle, 'gone');
    expect(fs.existsSync(A('gone'))).toBe(false);
    // By name the file is gone; through the fh it is not, exactly like an open fd on the bare directory.
    expect(await code(h.client.getAttr(alice, entry.handle))).toBe('ESTALE');
    const attr = await h.client.getAttr(alice, entry.handle, fh);
    expect([attr.nlink, attr.size, attr.ino]).toEqual([0, '5', entry.attr.ino]);
    expect(await h.client.write(alice, entry.handle, fh, 5, Buffer.from(' world'))).toBe(6);
    await h.client.fallocate(alice, entry.handle, fh, 0, 8192);
    expect((await h.client.getAttr(alice, entry.handle, fh)).size).toBe('8192');
    expect((await h.client.read(alice, entry.handle, fh, 0, 11)).toString()).toBe('hello world');
    let a = await h.client.setAttr(alice, entry.handle, { fh, valid_size: true, size: '5' });
    expect(a.size).toBe('5');
    a = await h.client.setAttr(alice, entry.handle, { fh, valid_mode: true, mode: 0o600, valid_mtime: true, mtime: { sec: '1234', nsec: 5678 } });
    expect([a.mode & 0o7777, a.mtime]).toEqual([0o600, { sec: '1234', nsec: 5678 }]);
    await h.client.setXattr(alice, entry.handle, 'user.k', Buffer.from('v'), 0, fh);
    expect((await h.client.getXattr(alice, entry.handle, 'user.k', fh)).toString()).toBe('v');
    expect(await h.client.listXattr(alice, entry.handle, fh)).toEqual(['user.k']);
    await h.client.removeXattr(alice, entry.handle, 'user.k', fh);
    expect(await code(h.client.getXattr(alice, entry.handle, 'user.k', fh))).toBe('ENODATA');
    expect(await code(h.client.fsync(alice, entry.handle, fh))).toBe('OK');
    expect(Number((await h.client.statFs(alice, entry.handle, fh)).bsize)).toBeGreaterThan(0);
    expect((await h.client.read(alice, entry.handle, fh, 0, 100)).toString()).toBe('hello');
    // Another caller cannot borrow the fh: for bob the file is resolved by name, and it has none.
    expect(await code(h.client.getAttr(bob, entry.handle, fh))).toBe('ESTALE');
    expect(await code(h.client.read(bob, entry.handle, fh, 0, 5))).toBe('ESTALE');
    expect(await code(h.client.setAttr(bob, entry.handle, { fh, valid_size: true, size: '0' }))).toBe('ESTALE');
    await h.client.release(alice, fh);
    expect(await code(h.client.getAttr(alice, entry.handle, fh))).toBe('ESTALE');
  });

  it('an fh open read-only: truncate and fallocate still need write permission', async () => {
    fs.writeFileSync(A('ro'), 'data');
    fs.chmodSync(A('ro'), 0o644);
    const f = await h.client.lookup(root, top.handle, 'ro');
    const fh = await h.client.open(bob, f.handle, O_RDONLY);
    expect(await code(h.client.setAttr(bob, f.handle, { fh, valid_size: true, size: '0' }))).toBe('EACCES');
    expect(await code(h.client.fallocate(bob, f.handle, fh, 0, 4096))).toBe('EACCES');
    expect(await code(h.client.setXattr(bob, f.handle, 'user.x', Buffer.from('1'), 0, fh))).toBe('EACCES');
    expect(fs.readFileSync(A('ro'), 'utf8')).toBe('data');
    const wfh = await h.client.open(root, f.handle, O_WRONLY);
    await h.client.setAttr(root, f.handle, { fh: wfh, valid_size: true, size: '2' });
    expect(fs.readFileSync(A('ro'), 'utf8')).toBe('da');
  });
});

describe('hard links', () => {
  it('link then unlink either name: the handle still works through the other', async () => {
    fs.writeFileSync(A('first'), 'linked');
    const first = await h.client.lookup(root, top.handle, 'first');
    const d = await h.client.mkdir(root, top.handle, 'd');
    const second = await h.client.link(root, first.handle, d.handle, 'second');
    expect(second.handle.equals(first.handle)).toBe(true);
    await h.client.unlink(root, top.handle, 'first');
    expect((await h.client.getAttr(root, second.handle)).nlink).toBe(1);
    // And the other way round: the newest name removed, the file found under the older one.
    await h.client.link(root, second.handle, top.handle, 'third');
    await h.client.unlink(root, top.handle, 'third');
    const attr = await h.client.getAttr(root, second.handle);
    expect([attr.nlink, attr.ino]).toEqual([1, first.attr.ino]);
    const fh = await h.client.open(root, second.handle, O_RDONLY);
    expect((await h.client.read(root, second.handle, fh, 0, 100)).toString()).toBe('linked');
  });

  it('rename over a hard link: onto another name of the same file does nothing; over one name of another file keeps that file reachable', async () => {
    fs.writeFileSync(A('a'), 'A');
    const a = await h.client.lookup(root, top.handle, 'a');
    await h.client.link(root, a.handle, top.handle, 'b');
    await h.client.rename(root, top.handle, 'a', top.handle, 'b'); // same inode: rename(2) leaves both
    expect(namesOnDisk().map(String).sort()).toEqual(['a', 'b']);
    expect(await code(h.client.rename(root, top.handle, 'a', top.handle, 'b', RENAME_NOREPLACE))).toBe('EEXIST');
    expect((await h.client.getAttr(root, a.handle)).nlink).toBe(2);
    // z replaces b, the newest name of a's file: a's handle finds it under "a".
    fs.writeFileSync(A('z'), 'Z');
    const z = await h.client.lookup(root, top.handle, 'z');
    await h.client.rename(root, top.handle, 'z', top.handle, 'b');
    expect(fs.readFileSync(A('b'), 'utf8')).toBe('Z');
    const attrA = await h.client.getAttr(root, a.handle);
    expect([attrA.ino, attrA.nlink]).toEqual([a.attr.ino, 1]);
    expect((await h.client.getAttr(root, z.handle)).ino).toBe(z.attr.ino);
    const fh = await h.client.open(root, a.handle, O_RDONLY);
    expect((await h.client.read(root, a.handle, fh, 0, 10)).toString()).toBe('A');
  });
});

describe('mknod', () => {
  it('a socket and a fifo for a non-root caller: type, owner and mode & ~umask on disk', async () => {
    const sock = await h.client.mknod(alice, top.handle, 'sock', 0o140777, 0o027);
    const fifo = await h.client.mknod(alice, top.handle, Buffer.from([0x70, 0xe9]), 0o010666, 0o022);
    const s = fs.lstatSync(A('sock'));
    const p = fs.lstatSync(A(Buffer.from([0x70, 0xe9])));
    expect([s.isSocket(), s.uid, s.gid, s.mode & 0o7777]).toEqual([true, 1000, 1000, 0o750]);
    expect([p.isFIFO(), p.uid, p.gid, p.mode & 0o7777]).toEqual([true, 1000, 1000, 0o644]);
    expect([sock.attr.mode, fifo.attr.mode]).toEqual([s.mode, p.mode]);
    expect(await code(h.client.mknod(alice, top.handle, 'blk', 0o060600, 0, (7 << 8) | 0))).toBe('EPERM');
    expect(await code(h.client.mknod(alice, top.handle, 'sock', 0o140600))).toBe('EEXIST');
  });
});

describe('rename flags', () => {
  it('RENAME_EXCHANGE swaps two names atomically; both handles follow their files', async () => {
    const d = await h.client.mkdir(root, top.handle, 'd');
    fs.writeFileSync(A('x'), 'X');
    fs.mkdirSync(A('d', 'sub'));
    fs.writeFileSync(A('d', 'sub', 'inner'), 'inner');
    const x = await h.client.lookup(root, top.handle, 'x');
    const sub = await h.client.lookup(root, d.handle, 'sub');
    const inner = await h.client.lookup(root, sub.handle, 'inner');
    await h.client.rename(root, top.handle, 'x', d.handle, 'sub', RENAME_EXCHANGE);
    expect(fs.statSync(A('x')).isDirectory()).toBe(true);
    expect(fs.readFileSync(A('d', 'sub'), 'utf8')).toBe('X');
    expect((await h.client.getAttr(root, x.handle)).ino).toBe(x.attr.ino);
    expect((await h.client.getAttr(root, sub.handle)).ino).toBe(sub.attr.ino);
    expect((await h.client.getAttr(root, inner.handle)).ino).toBe(inner.attr.ino);
    expect((await h.client.lookup(root, sub.handle, 'inner')).attr.ino).toBe(inner.attr.ino);
    const fh = await h.client.open(root, x.handle, O_RDONLY);
    expect((await h.client.read(root, x.handle, fh, 0, 10)).toString()).toBe('X');
    // Swapped back, and with byte names.
    fs.writeFileSync(A(LATIN1), 'L');
    const l = await h.client.lookup(root, top.handle, LATIN1);
    await h.client.rename(root, d.handle, 'sub', top.handle, LATIN1, RENAME_EXCHANGE);
    expect(fs.readFileSync(A(LATIN1), 'utf8')).toBe('X');
    expect(fs.readFileSync(A('d', 'sub'), 'utf8')).toBe('L');
    expect((await h.client.getAttr(root, l.handle)).ino).toBe(l.attr.ino);
    expect((await h.client.getAttr(root, x.handle)).ino).toBe(x.attr.ino);
    expect(await code(h.client.rename(root, top.handle, 'x', top.handle, 'missing', RENAME_EXCHANGE))).toBe('ENOENT');
  });

  it('RENAME_EXCHANGE checks the sticky bit on both names and write permission on a directory changing parent', async () => {
    fs.mkdirSync(A('tmp'), 0o777);
    fs.chmodSync(A('tmp'), 0o1777);
    const t = await h.client.lookup(root, top.handle, 'tmp');
    await h.client.create(alice, t.handle, 'alices', O_RDWR | O_CREAT);
    await h.client.create(bob, t.handle, 'bobs', O_RDWR | O_CREAT);
    expect(await code(h.client.rename(bob, t.handle, 'bobs', t.handle, 'alices', RENAME_EXCHANGE))).toBe('EPERM');
    expect(await code(h.client.rename(bob, t.handle, 'alices', t.handle, 'bobs', RENAME_EXCHANGE))).toBe('EPERM');
    fs.mkdirSync(A('rootdir'), 0o755);
    await h.client.create(bob, top.handle, 'bobfile', O_RDWR | O_CREAT);
    // rootdir (root's, 0755) would move into tmp: its ".." changes, bob may not write it.
    expect(await code(h.client.rename(bob, top.handle, 'rootdir', t.handle, 'bobs', RENAME_EXCHANGE))).toBe('EACCES');
    expect(namesOnDisk('tmp').map(String).sort()).toEqual(['alices', 'bobs']);
    expect(await code(h.client.rename(bob, top.handle, 'bobfile', t.handle, 'bobs', RENAME_EXCHANGE))).toBe('OK');
  });

  it('RENAME_NOREPLACE onto an existing name is EEXIST, for a directory too, and nothing moves', async () => {
    fs.mkdirSync(A('d1'));
    fs.mkdirSync(A('d2'));
    fs.writeFileSync(A('f'), 'f');
    for (const [from, to] of [['d1', 'd2'], ['d1', 'f'], ['f', 'd2'], ['f', 'f']]) {
      expect(await code(h.client.rename(root, top.handle, from!, top.handle, to!, RENAME_NOREPLACE))).toBe('EEXIST');
    }
    expect(namesOnDisk().map(String).sort()).toEqual(['d1', 'd2', 'f']);
    expect(await code(h.client.rename(root, top.handle, 'd1', top.handle, 'd3', RENAME_NOREPLACE))).toBe('OK');
    expect(fs.statSync(A('d3')).isDirectory()).toBe(true);
    expect(await code(h.client.rename(root, top.handle, 'd3', top.handle, 'x', RENAME_NOREPLACE | RENAME_EXCHANGE))).toBe('EINVAL');
  });
});

describe('times', () => {
  it('SetAttr to the nanosecond, read back exactly by GetAttr and by statx on the export', async () => {
    fs.writeFileSync(A('t'), 'x');
    const f = await h.client.lookup(root, top.handle, 't');
    const atime = { sec: '1700000000', nsec: 123_456_789 };
    const mtime = { sec: '1600000000', nsec: 987_654_321 };
    const back = await h.client.setAttr(root, f.handle, { valid_atime: true, atime, valid_mtime: true, mtime });
    expect([back.atime, back.mtime]).toEqual([atime, mtime]);
    expect(await h.client.getAttr(root, f.handle)).toMatchObject({ atime, mtime });
    const st = fs.statSync(A('t'), { bigint: true });
    expect([st.atimeNs, st.mtimeNs]).toEqual([1_700_000_000_123_456_789n, 1_600_000_000_987_654_321n]);
    // Only mtime: atime is left exactly as it was.
    const mtime2 = { sec: '1500000000', nsec: 1 };
    await h.client.setAttr(root, f.handle, { valid_mtime: true, mtime: mtime2 });
    expect(await h.client.getAttr(root, f.handle)).toMatchObject({ atime, mtime: mtime2 });
    // Now: the server's clock, with nanoseconds.
    const before = BigInt(Date.now()) * 1_000_000n;
    const now = await h.client.setAttr(root, f.handle, { valid_atime: true, atime_now: true, valid_mtime: true, mtime_now: true });
    const ns = BigInt(now.mtime.sec) * 1_000_000_000n + BigInt(now.mtime.nsec);
    expect(ns).toBeGreaterThanOrEqual(before - 1_000_000_000n);
    expect(fs.statSync(A('t'), { bigint: true }).mtimeNs).toBe(ns);
    expect(await code(h.client.setAttr(root, f.handle, { valid_mtime: true, mtime: { sec: '1', nsec: 1_000_000_000 } }))).toBe('EINVAL');
  });
});

describe('xattr flags are the kernel\'s', () => {
  it('CREATE on an existing attribute is EEXIST, REPLACE on a missing one ENODATA', async () => {
    fs.writeFileSync(A('x'), 'x');
    const f = await h.client.lookup(root, top.handle, 'x');
    await h.client.setXattr(root, f.handle, 'user.a', Buffer.from('1'), 1 /* XATTR_CREATE */);
    expect(await code(h.client.setXattr(root, f.handle, 'user.a', Buffer.from('2'), 1))).toBe('EEXIST');
    expect(await code(h.client.setXattr(root, f.handle, 'user.b', Buffer.from('2'), 2 /* XATTR_REPLACE */))).toBe('ENODATA');
    await h.client.setXattr(root, f.handle, 'user.a', Buffer.from('3'), 2);
    expect((await h.client.getXattr(root, f.handle, 'user.a')).toString()).toBe('3');
    expect(fs.existsSync(A('x'))).toBe(true);
    // system.* (ACLs) only for the owner, as on Linux, even with write permission. The value must be
    // a well-formed ACL (user::rw- group::rw- other::rw-): the kernel parses it before the owner check.
    fs.chmodSync(A('x'), 0o666);
    const acl = Buffer.from('0200000001000600ffffffff04000600ffffffff20000600ffffffff', 'hex');
    expect(await code(h.client.setXattr(bob, f.handle, 'system.posix_acl_access', acl))).toBe('EPERM');
  });
});

describe('fallocate', () => {
  it('PUNCH_HOLE | KEEP_SIZE makes a hole that SEEK_HOLE finds on the export', async () => {
    const data = Buffer.alloc(1 << 20, 0x61);
    fs.writeFileSync(A('holey'), data);
    const f = await h.client.lookup(root, top.handle, 'holey');
    await h.client.fallocate(root, f.handle, '0', 256 << 10, 256 << 10, sys.FALLOC_FL_PUNCH_HOLE | sys.FALLOC_FL_KEEP_SIZE);
    const fd = fs.openSync(A('holey'), O_RDONLY);
    try {
      expect(sys.lseek(fd, 0, sys.SEEK_HOLE)).toBe(256 << 10);
      expect(sys.lseek(fd, 256 << 10, sys.SEEK_DATA)).toBe(512 << 10);
    } finally {
      fs.closeSync(fd);
    }
    const back = fs.readFileSync(A('holey'));
    expect(back.length).toBe(1 << 20);
    expect(back.subarray(256 << 10, 512 << 10).equals(Buffer.alloc(256 << 10))).toBe(true);
    expect(back.subarray(0, 256 << 10).equals(data.subarray(0, 256 << 10))).toBe(true);
  });

  it('every mode gives what the same fallocate gives on the bare directory (result or errno)', async () => {
    const modes = [
      0, sys.FALLOC_FL_KEEP_SIZE, sys.FALLOC_FL_PUNCH_HOLE | sys.FALLOC_FL_KEEP_SIZE, sys.FALLOC_FL_PUNCH_HOLE,
      sys.FALLOC_FL_ZERO_RANGE, sys.FALLOC_FL_ZERO_RANGE | sys.FALLOC_FL_KEEP_SIZE, sys.FALLOC_FL_COLLAPSE_RANGE,
      sys.FALLOC_FL_INSERT_RANGE, sys.FALLOC_FL_UNSHARE_RANGE, 0x80,
    ];
    const outcome = async (mode: number, offset: number, len: number, via: 'mfsd' | 'bare'): Promise<string> => {
      const name = `${via}-${mode}-${offset}`;
      const content = Buffer.alloc(64 << 10);
      for (let i = 0; i < content.length; i++) content[i] = i % 251;
      fs.writeFileSync(A(name), content);
      let result: string;
      if (via === 'mfsd') {
        const f = await h.client.lookup(root, top.handle, name);
        result = await code(h.client.fallocate(root, f.handle, '0', offset, len, mode));
      } else {
        const fd = fs.openSync(A(name), O_WRONLY);
        result = await sys.runBlocking({ fn: 'fallocate', args: [fd, mode, offset, len] }).then(() => 'OK', (e: { code: string }) => e.code);
        fs.closeSync(fd);
      }
      const after = fs.readFileSync(A(name));
      return `${result} size=${after.length} sum=${after.reduce((s, b, i) => (s + b * (i % 97 + 1)) % 1_000_000_007, 0)}`;
    };
    for (const mode of modes) {
      for (const [offset, len] of [[4096, 8192], [100, 50], [60 << 10, 16 << 10]] as const) {
        const got = await outcome(mode, offset, len, 'mfsd');
        expect(got, `mode ${mode} at ${offset}+${len}`).toBe(await outcome(mode, offset, len, 'bare'));
      }
    }
  });
});
