// Confinement: no request reaches outside its export, by name, by symlink or by handle.
// A sentinel file outside the export is checked untouched (content and mtime) after each attack.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Entry } from '../../proto/file-client.js';
import { code } from '../harness/outcome.js';

const { O_RDWR, O_CREAT, O_TRUNC } = fs.constants;
let h: Harness;
let other: Harness;
let top: Entry;
let sentinel: string;
let sentinelMtime: number;

beforeEach(async () => {
  h = await startHarness({ exports: [{ name: 'a' }, { name: 'b' }] });
  other = await startHarness({ nodeId: 8 });
  top = await h.client.root(root, h.exports[0]!);
  sentinel = join(h.dir, 'sentinel');
  fs.writeFileSync(sentinel, 'outside');
  fs.utimesSync(sentinel, 1000, 1000);
  sentinelMtime = fs.statSync(sentinel).mtimeMs;
});
afterEach(async () => {
  try {
    expect(fs.readFileSync(sentinel, 'utf8')).toBe('outside');
    expect(fs.statSync(sentinel).mtimeMs).toBe(sentinelMtime);
    expect(fs.readFileSync('/etc/passwd', 'utf8')).toContain('root:');
  } finally {
    await h.stop();
    await other.stop();
  }
});


describe('names', () => {
  it('path-like names are refused', async () => {
    for (const name of ['../../etc/passwd', '../sentinel', '..', '.', 'a/b', '/etc/passwd', '']) {
      expect(await code(h.client.lookup(root, top.handle, name))).toBe('EINVAL');
      expect(await code(h.client.create(root, top.handle, name, O_RDWR | O_CREAT | O_TRUNC))).toBe('EINVAL');
      expect(await code(h.client.unlink(root, top.handle, name))).toBe('EINVAL');
      expect(await code(h.client.rename(root, top.handle, name, top.handle, 'x'))).toBe('EINVAL');
    }
  });
});

describe('symlinks', () => {
  it('a symlink to / or .. is never followed by the server', async () => {
    fs.symlinkSync('/', join(h.exports[0]!, 'toroot'));
    fs.symlinkSync('..', join(h.exports[0]!, 'up'));
    fs.symlinkSync(sentinel, join(h.exports[0]!, 'tosentinel'));
    for (const name of ['toroot', 'up']) {
      const l = await h.client.lookup(root, top.handle, name);
      expect(l.attr.mode & 0o170000).toBe(0o120000);
      expect(await code(h.client.lookup(root, l.handle, 'etc'))).toBe('ENOTDIR');
      expect(await code(h.client.lookup(root, l.handle, 'sentinel'))).toBe('ENOTDIR');
      expect(await code(h.client.readDir(root, l.handle))).toBe('ENOTDIR');
      expect(await code(h.client.create(root, l.handle, 'sentinel', O_RDWR | O_CREAT | O_TRUNC))).toBe('ENOTDIR');
      expect(await code(h.client.mkdir(root, l.handle, 'x'))).toBe('ENOTDIR');
    }
    expect((await h.client.readlink(root, (await h.client.lookup(root, top.handle, 'up')).handle)).toString()).toBe('..');
    const s = await h.client.lookup(root, top.handle, 'tosentinel');
    expect(await code(h.client.open(root, s.handle, O_RDWR | O_TRUNC))).toBe('ELOOP');
    expect(await code(h.client.setAttr(root, s.handle, { valid_size: true, size: '0' }))).toBe('EINVAL');
    expect(await code(h.client.setAttr(root, s.handle, { valid_mode: true, mode: 0o777 }))).toBe('EOPNOTSUPP');
    // Create (not exclusive) over a symlink to the outside opens nothing through it.
    expect(await code(h.client.create(root, top.handle, 'tosentinel', O_RDWR | O_CREAT | O_TRUNC))).toBe('ELOOP');
    await h.client.setAttr(root, s.handle, { valid_mtime: true, mtime: { sec: '5', nsec: 0 } }); // acts on the link itself
    expect(fs.lstatSync(join(h.exports[0]!, 'tosentinel')).mtimeMs).toBe(5000);
    expect(await code(h.client.call('SetXattr', { caller: root, handle: s.handle, name: 'user.x', value: Buffer.from('1'), flags: 0 }))).toBe('EPERM');
    // The sentinel's xattrs are not reachable through the symlink: not its names, not its values.
    fs.writeFileSync(join(h.dir, 'tagged'), 'x');
    fs.symlinkSync(join(h.dir, 'tagged'), join(h.exports[0]!, 'totagged'));
    const { execFileSync } = await import('node:child_process');
    execFileSync('setfattr', ['-n', 'user.secret', '-v', 'leak', join(h.dir, 'tagged')]);
    const t = await h.client.lookup(root, top.handle, 'totagged');
    expect((await h.client.call<{ names: string[] }>('ListXattr', { caller: root, handle: t.handle })).names).toEqual([]);
    expect(await code(h.client.call('GetXattr', { caller: root, handle: t.handle, name: 'user.secret' }))).toBe('ENODATA');
    expect(await code(h.client.call('RemoveXattr', { caller: root, handle: t.handle, name: 'user.secret' }))).toBe('EPERM');
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.secret', join(h.dir, 'tagged')]).toString()).toBe('leak');
  });

  it('a directory swapped for a symlink after lookup gives ESTALE, not the outside', async () => {
    fs.mkdirSync(join(h.exports[0]!, 'd'));
    const d = await h.client.lookup(root, top.handle, 'd');
    fs.renameSync(join(h.exports[0]!, 'd'), join(h.dir, 'moved-out'));
    fs.symlinkSync(h.dir, join(h.exports[0]!, 'd'));
    expect(await code(h.client.lookup(root, d.handle, 'sentinel'))).toBe('ESTALE');
    expect(await code(h.client.create(root, d.handle, 'sentinel', O_RDWR | O_CREAT | O_TRUNC))).toBe('ESTALE');
  });
});

describe('handles', () => {
  it('random bytes, truncated, tampered, another node, another export: all refused', async () => {
    fs.writeFileSync(join(h.exports[0]!, 'f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const tampered = Buffer.from(f.handle);
    tampered[5] = tampered[5]! ^ 1;
    const foreign = (await other.client.root(root, other.exports[0]!)).handle;
    for (const bad of [randomBytes(25), randomBytes(3), Buffer.alloc(0), f.handle.subarray(0, 24), tampered, foreign]) {
      expect(await code(h.client.getAttr(root, bad))).toBe('ESTALE');
      expect(await code(h.client.create(root, bad, 'sentinel', O_RDWR | O_CREAT))).toBe('ESTALE');
    }
    // A handle of export b used with a file of export a: rename and link are EXDEV.
    const b = await h.client.root(root, h.exports[1]!);
    expect(await code(h.client.rename(root, top.handle, 'f', b.handle, 'f'))).toBe('EXDEV');
  });
});
