// Issue 8, point 2: a stale handle never reaches a new file that reuses its inode number. uid 1000
// takes a handle of its own file and unlinks it; uid 2000 creates files in its own directory until
// one gets the same inode number (ext4 and tmpfs hand a freed number out again at once); the old
// handle is then ESTALE for every call, and the new file's own handle works.
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Caller, type Entry } from '../../proto/file-client.js';
import { code } from '../harness/outcome.js';

const { O_RDWR, O_CREAT, O_EXCL } = fs.constants;
const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 1 };
const bob: Caller = { uid: 2000, gid: 2000, groups: [], pid: 2 };
const MAX_CREATES = 5000;

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});


/** A directory of the export owned by `c`, and its handle. */
async function ownDir(hh: Harness, top: Entry, name: string, c: Caller): Promise<Entry> {
  fs.mkdirSync(join(hh.exports[0]!, name), 0o755);
  fs.chownSync(join(hh.exports[0]!, name), c.uid, c.gid);
  return hh.client.lookup(root, top.handle, name);
}

/**
 * Creates files as bob in `dir` until one has inode number `ino`. The misses are kept until then
 * (ext4 hands out the lowest free number of the group, so deleting a miss would get it back), then
 * removed.
 */
async function reuseInode(hh: Harness, dir: Entry, dirPath: string, ino: number): Promise<Entry> {
  const misses: string[] = [];
  try {
    for (let i = 0; i < MAX_CREATES; i++) {
      const { entry, fh } = await hh.client.create(bob, dir.handle, `new-${i}`, O_RDWR | O_CREAT | O_EXCL, 0o644);
      await hh.client.release(bob, fh);
      if (fs.lstatSync(join(dirPath, `new-${i}`)).ino === ino) return entry;
      misses.push(join(dirPath, `new-${i}`));
    }
  } finally {
    for (const m of misses) fs.unlinkSync(m);
  }
  const fsType = execFileSync('stat', ['-f', '-c', '%T', dirPath]).toString().trim();
  throw new Error(`no inode number reuse in ${MAX_CREATES} creates on ${fsType}: this test needs a filesystem that reuses freed inode numbers (ext4, tmpfs)`);
}

async function expectStale(hh: Harness, handle: Buffer): Promise<void> {
  expect(await code(hh.client.getAttr(alice, handle))).toBe('ESTALE');
  expect(await code(hh.client.open(alice, handle, O_RDWR))).toBe('ESTALE');
  expect(await code(hh.client.read(alice, handle, '0', 0, 100, O_RDWR))).toBe('ESTALE');
  expect(await code(hh.client.write(alice, handle, '0', 0, Buffer.from('overwritten'), O_RDWR))).toBe('ESTALE');
  expect(await code(hh.client.setAttr(alice, handle, { valid_mode: true, mode: 0o666 }))).toBe('ESTALE');
}

describe('stale handles after inode number reuse', () => {
  for (const restartBetween of [false, true]) {
    it(`the old handle is ESTALE and never reads or writes the new file${restartBetween ? ' (daemon restarted in between)' : ''}`, async () => {
      h = await startHarness();
      const top = await h.client.root(root, h.exports[0]!);
      const aliceDir = await ownDir(h, top, 'alice', alice);
      const bobDir = await ownDir(h, top, 'bob', bob);

      const { entry: old, fh } = await h.client.create(alice, aliceDir.handle, 'mine', O_RDWR | O_CREAT | O_EXCL, 0o666);
      await h.client.write(alice, old.handle, fh, 0, Buffer.from('alice'), O_RDWR);
      await h.client.release(alice, fh);
      const ino = fs.lstatSync(join(h.exports[0]!, 'alice', 'mine')).ino;
      // Restarting between minting the handle and the reuse: the generation counter must survive
      // it (before the unlink: the restarted LevelDB would take the freed inode number itself).
      if (restartBetween) await h.restart();
      await h.client.unlink(alice, aliceDir.handle, 'mine');

      const reused = await reuseInode(h, bobDir, join(h.exports[0]!, 'bob'), ino);
      await h.client.write(bob, reused.handle, '0', 0, Buffer.from('bob-secret'), O_RDWR);
      // The wire inode number is the same (it is derived from st_ino), the handles are not.
      expect(reused.attr.ino).toBe(old.attr.ino);
      expect(reused.handle.equals(old.handle)).toBe(false);

      await expectStale(h, old.handle);
      expect((await h.client.getAttr(bob, reused.handle)).uid).toBe(bob.uid);
      expect((await h.client.read(bob, reused.handle, '0', 0, 100, O_RDWR)).toString()).toBe('bob-secret');
      expect(fs.readFileSync(join(h.exports[0]!, 'bob', fs.readdirSync(join(h.exports[0]!, 'bob'))[0]!), 'utf8')).toBe('bob-secret');
      // Looking the new file up again gives its own handle, not the old one.
      const again = await h.client.readDir(bob, bobDir.handle);
      expect(again.length).toBe(1);
      expect(again[0]!.entry!.handle.equals(reused.handle)).toBe(true);
    });
  }

  it('a file keeps its handle across a restart, and the export root its handle', async () => {
    h = await startHarness();
    const top = await h.client.root(root, h.exports[0]!);
    const f = await h.client.mkdir(root, top.handle, 'd');
    const g = await h.client.create(root, f.handle, 'g', O_RDWR | O_CREAT);
    await h.client.release(root, g.fh);
    await h.restart();
    expect((await h.client.root(root, h.exports[0]!)).handle.equals(top.handle)).toBe(true);
    expect((await h.client.lookup(root, top.handle, 'd')).handle.equals(f.handle)).toBe(true);
    expect((await h.client.lookup(root, f.handle, 'g')).handle.equals(g.entry.handle)).toBe(true);
  });
});
