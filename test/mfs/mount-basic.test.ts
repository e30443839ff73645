// Issue 10, first step: the whole cluster through one mount. Two real mfsd daemons (nodes 1 and 2,
// mutual TLS) and a real mfs-mount as node 3. What is done through MOUNT/2 must be exactly what the
// same call does on node 2's bare export directory: compared call by call on both sides.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { listedNodes, startMfsMount, type MfsMount } from '../harness/mfs-mount.js';
import { waitFor } from '../harness/outcome.js';

let tmp: string;
let ca: TestCa;
let d1: MfsdHandle | undefined;
let d2: MfsdHandle | undefined;
let m: MfsMount | undefined;
/** Node 2's export, bare, and the same directory through the mount. */
let bare: string;
let via: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-mfs-basic-'));
  ca = await makeTestCa(tmp);
  d1 = await startMfsd({ ca, nodeId: 1 });
  d2 = await startMfsd({ ca, nodeId: 2 });
  // Node 9 is in the map but nothing listens there: the root's listing must not need it.
  m = await startMfsMount({ ca, node: 3, daemons: [d1, d2], extraMapLines: ['9 127.0.0.1:1 1'], args: process.env.MFS_DEBUG ? ['--debug'] : [] });
  bare = d2.exports[0]!.path;
  via = join(m.mnt, '2');
}, 120_000);

afterAll(async () => {
  await m?.unmount();
  await d1?.cleanup();
  await d2?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

/** What stat shows that must be the same on the mount and on the bare export (st_ino is the cluster's). */
function shape(p: string): Record<string, unknown> {
  const s = fs.lstatSync(p, { bigint: true });
  return { mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
}

const outcome = (fn: () => unknown): string => {
  try {
    fn();
    return 'OK';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};

describe('the root', () => {
  it('lists the map\'s nodes, answered from the map alone (node 9 has no daemon)', () => {
    expect(listedNodes(m!.mnt).sort()).toEqual(['1', '2', '9']);
    // A node that cannot be reached still stats as a (read-only, empty) directory: ls -l /mfs works.
    expect(fs.statSync(join(m!.mnt, '9')).isDirectory()).toBe(true);
    // Only using node 9 reaches for it: the node cannot be talked to.
    const r9 = outcome(() => fs.readdirSync(join(m!.mnt, '9')));
    // EHOSTDOWN as the node's session says; EHOSTUNREACH while fuse/kernel cannot carry that errno.
    expect(['EHOSTDOWN', 'EHOSTUNREACH']).toContain(r9);
    expect(outcome(() => fs.statSync(join(m!.mnt, '4')))).toBe('ENOENT');
  });

  it('shows each node\'s single export as /mfs/<K> itself', () => {
    fs.writeFileSync(join(d1!.exports[0]!.path, 'on-one'), 'one');
    expect(fs.readFileSync(join(m!.mnt, '1', 'on-one'), 'utf8')).toBe('one');
    // st_ino is the cluster inode number: the node in its top 16 bits, unique across the cluster.
    expect(fs.statSync(join(m!.mnt, '1', 'on-one'), { bigint: true }).ino >> 48n).toBe(1n);
    expect(fs.statSync(via, { bigint: true }).ino >> 48n).toBe(2n);
    expect(fs.readdirSync(via)).toEqual(fs.readdirSync(bare));
  });
});

describe('MOUNT/2 behaves as node 2\'s bare export', () => {
  it('creates files byte for byte, names as bytes', () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x0a, 0x20]); // not UTF-8, with a newline and a space
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, k) => (k * 7919) & 0xff));
    fs.writeFileSync(Buffer.concat([Buffer.from(via + '/'), name]), data);
    const names = fs.readdirSync(bare, { encoding: 'buffer' });
    expect(names.some((n) => n.equals(name))).toBe(true);
    expect(fs.readFileSync(Buffer.concat([Buffer.from(bare + '/'), name])).equals(data)).toBe(true);
    expect(fs.readdirSync(via, { encoding: 'buffer' }).some((n) => n.equals(name))).toBe(true);
  });

  it('stat, chmod, truncate and utimes show the same on both sides, to the nanosecond', () => {
    fs.writeFileSync(join(via, 'st'), 'hello');
    expect(shape(join(via, 'st'))).toEqual(shape(join(bare, 'st')));
    fs.chmodSync(join(via, 'st'), 0o640);
    expect(fs.statSync(join(bare, 'st')).mode & 0o7777).toBe(0o640);
    fs.truncateSync(join(via, 'st'), 2);
    fs.utimesSync(join(via, 'st'), new Date(1_000_000_123), new Date(2_000_000_456));
    expect(shape(join(via, 'st'))).toEqual(shape(join(bare, 'st')));
    expect(fs.readFileSync(join(via, 'st'), 'utf8')).toBe('he');
  });

  it('renames and unlinks (also over an existing name), and errors are the node\'s', () => {
    fs.writeFileSync(join(via, 'r1'), 'a');
    fs.writeFileSync(join(via, 'r2'), 'b');
    fs.renameSync(join(via, 'r1'), join(via, 'r2'));
    expect(fs.existsSync(join(bare, 'r1'))).toBe(false);
    expect(fs.readFileSync(join(bare, 'r2'), 'utf8')).toBe('a');
    fs.unlinkSync(join(via, 'r2'));
    expect(fs.existsSync(join(bare, 'r2'))).toBe(false);
    for (const call of [
      (p: string) => fs.unlinkSync(join(p, 'missing')),
      (p: string) => fs.rmdirSync(join(p, 'missing')),
      (p: string) => fs.mkdirSync(join(p, 'st')),
      (p: string) => fs.readdirSync(join(p, 'st')),
    ]) {
      expect(outcome(() => call(via))).toBe(outcome(() => call(bare)));
    }
  });

  it('hard links: one inode, nlink right from both sides', () => {
    fs.writeFileSync(join(via, 'h1'), 'x');
    fs.linkSync(join(via, 'h1'), join(via, 'h2'));
    expect(fs.statSync(join(via, 'h1')).nlink).toBe(2);
    expect(fs.statSync(join(bare, 'h1')).nlink).toBe(2);
    expect(fs.statSync(join(via, 'h2')).ino).toBe(fs.statSync(join(via, 'h1')).ino);
    fs.unlinkSync(join(via, 'h1'));
    expect(fs.statSync(join(via, 'h2')).nlink).toBe(1);
    expect(fs.statSync(join(bare, 'h2')).nlink).toBe(1);
  });

  it('symlinks: an absolute target stored on node 2 reads under MOUNT/2', async () => {
    fs.symlinkSync('/etc/passwd', join(via, 'abs'));
    fs.symlinkSync('rel/target', join(via, 'rel'));
    expect(fs.readlinkSync(join(bare, 'abs'))).toBe('/etc/passwd');
    expect(fs.readlinkSync(join(via, 'abs'))).toBe(`${m!.mnt}/2/etc/passwd`);
    expect(fs.readlinkSync(join(via, 'rel'))).toBe('rel/target');
    // One made on the node itself reads the same way; one made to MOUNT/2/... is stored as the node's path.
    fs.symlinkSync('/etc', join(bare, 'etc-link'));
    // Made on the node's disk, not through omfs: the mount hears of it within the direct-change
    // bound (sessions.directChangeMs plus the ack), and may answer "no such name" until then.
    await waitFor('the direct symlink seen through the mount', () => fs.existsSync(join(via, 'etc-link')) || fs.lstatSync(join(via, 'etc-link'), { throwIfNoEntry: false }) !== undefined, 5_000, 20);
    expect(fs.readlinkSync(join(via, 'etc-link'))).toBe(`${m!.mnt}/2/etc`);
    fs.symlinkSync(`${m!.mnt}/2/st`, join(via, 'to-st'));
    expect(fs.readlinkSync(join(bare, 'to-st'))).toBe('/st');
    expect(shape(join(via, 'abs'))).toEqual(shape(join(bare, 'abs')));
  });

  it('directories: mkdir, readdir, rmdir', () => {
    fs.mkdirSync(join(via, 'd'), 0o750);
    for (const n of ['a', 'b', 'c']) fs.writeFileSync(join(via, 'd', n), n);
    expect(fs.readdirSync(join(via, 'd')).sort()).toEqual(fs.readdirSync(join(bare, 'd')).sort());
    expect(shape(join(via, 'd'))).toEqual(shape(join(bare, 'd')));
    expect(outcome(() => fs.rmdirSync(join(via, 'd')))).toBe('ENOTEMPTY');
    for (const n of ['a', 'b', 'c']) fs.unlinkSync(join(via, 'd', n));
    fs.rmdirSync(join(via, 'd'));
    expect(fs.existsSync(join(bare, 'd'))).toBe(false);
  });

  it('xattrs set through the mount are on the node, and the other way', () => {
    fs.writeFileSync(join(via, 'x'), '');
    execFileSync('setfattr', ['-n', 'user.color', '-v', 'blue', join(via, 'x')]);
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.color', join(bare, 'x')]).toString()).toBe('blue');
    execFileSync('setfattr', ['-n', 'user.size', '-v', 'big', join(bare, 'x')]);
    const list = (p: string): string => execFileSync('getfattr', ['-d', '--absolute-names', p]).toString().split('\n').slice(1).join('\n');
    expect(list(join(via, 'x'))).toBe(list(join(bare, 'x')));
    execFileSync('setfattr', ['-x', 'user.color', join(via, 'x')]);
    expect(list(join(via, 'x'))).toBe(list(join(bare, 'x')));
  });

  it('link and rename across two nodes fail with EXDEV', () => {
    fs.writeFileSync(join(via, 'cross'), 'c');
    expect(outcome(() => fs.renameSync(join(via, 'cross'), join(m!.mnt, '1', 'cross')))).toBe('EXDEV');
    expect(outcome(() => fs.linkSync(join(via, 'cross'), join(m!.mnt, '1', 'cross')))).toBe('EXDEV');
    expect(fs.existsSync(join(bare, 'cross'))).toBe(true);
  });

  it('device files of a node are not served (they would open this machine\'s devices)', () => {
    execFileSync('mknod', [join(bare, 'null-dev'), 'c', '1', '3']);
    fs.writeFileSync(join(bare, 'plain'), '');
    expect(fs.readdirSync(via)).not.toContain('null-dev');
    expect(fs.readdirSync(via)).toContain('plain');
    expect(outcome(() => fs.statSync(join(via, 'null-dev')))).toBe('ENOENT');
    const made = spawnSync('mknod', [join(via, 'made-dev'), 'c', '1', '3'], { encoding: 'utf8' });
    expect(made.status).not.toBe(0);
    expect(made.stderr).toContain('Operation not permitted');
    // Fifos are no devices: they are served.
    execFileSync('mkfifo', [join(via, 'fifo')]);
    expect(fs.statSync(join(bare, 'fifo')).isFIFO()).toBe(true);
  });
});

