// Whole trees through the passthrough with real tools (cp -a, diff -r, tar, dd), compared against a
// bare directory that received the same operations: the bare directory is the source of truth.
import { chmod, chown, link, mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { atMicroseconds, must, seededBytes, snapshotTree } from './tools.js';

const test = passthroughTest();
const scratch: string[] = [];
afterEach(async () => {
  for (const dir of scratch.splice(0)) await rm(dir, { recursive: true, force: true });
});
async function scratchDir(): Promise<string> {
  const dir = await makeTempDir('omfs-pt-ref-');
  scratch.push(dir);
  return dir;
}

/** Sizes around page and request boundaries, an empty file and files over 1 MiB. */
const FILE_SIZES = [0, 1, 4095, 4096, 4097, 65_539, 131_072, 1_048_583, 3 * 1_048_576 + 11];

/** A tree with every kind of entry cp -a must carry: sizes, modes, owners, links, a fifo, odd names. */
async function buildTree(root: string): Promise<void> {
  await mkdir(join(root, 'a/b/c'), { recursive: true });
  await mkdir(join(root, 'empty-dir'));
  await mkdir(join(root, 'sticky'), { mode: 0o1777 });
  await chmod(join(root, 'sticky'), 0o1777);
  for (const [i, size] of FILE_SIZES.entries()) {
    await writeFile(join(root, i % 2 ? 'a' : 'a/b', `f${size}`), seededBytes(i + 1, size));
  }
  await writeFile(join(root, 'a/b/c/secret'), 'only root\n', { mode: 0o600 });
  await chmod(join(root, 'a/b/c/secret'), 0o600);
  await writeFile(join(root, 'a/tool.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(root, 'a/tool.sh'), 0o755);
  await writeFile(join(root, 'owned-by-1000'), 'user data\n');
  await chown(join(root, 'owned-by-1000'), 1000, 1000);
  await writeFile(join(root, 'name with spaces & ünïcødé'), 'odd name\n');
  await link(join(root, 'a/f1'), join(root, 'hardlink-to-f1'));
  await symlink('a/b/f0', join(root, 'rel-link'));
  await symlink('/nonexistent/target', join(root, 'dangling-link'));
  await must('mkfifo -m 0640 "$1"', [join(root, 'a/fifo')]);
  await utimes(join(root, 'a/b/f4097'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
}

describe('cp -a and diff -r', () => {
  test('a generated tree copied onto the mount matches the original, the mount view and the backing copy', async ({ pt }) => {
    const ref = join(await scratchDir(), 'tree');
    await mkdir(ref);
    await buildTree(ref);
    await must('cp -a "$1" "$2"', [ref, join(pt.mnt, 'tree')]);

    expect((await must('diff -r --no-dereference -x fifo "$1" "$2" && echo same', [ref, join(pt.mnt, 'tree')])).trim()).toBe('same');
    const original = await snapshotTree(ref);
    const viaMount = await snapshotTree(join(pt.mnt, 'tree'));
    const backing = await snapshotTree(join(pt.source, 'tree'));
    expect(viaMount).toEqual(backing);
    expect(atMicroseconds(backing)).toEqual(atMicroseconds(original));
  });

  test('/usr/include/linux copied in and back out is identical, with times and modes kept', async ({ pt }) => {
    const out = join(await scratchDir(), 'out');
    await must('cp -a /usr/include/linux "$1"', [join(pt.mnt, 'linux')]);
    await must('cp -a "$1" "$2"', [join(pt.mnt, 'linux'), out]);
    await must('diff -r /usr/include/linux "$1"', [join(pt.mnt, 'linux')]);
    await must('diff -r /usr/include/linux "$1"', [out]);
    const original = atMicroseconds(await snapshotTree('/usr/include/linux', false));
    const viaMount = await snapshotTree(join(pt.mnt, 'linux'), false);
    expect(viaMount).toEqual(await snapshotTree(join(pt.source, 'linux'), false));
    expect(atMicroseconds(viaMount)).toEqual(original);
    expect(atMicroseconds(await snapshotTree(out, false))).toEqual(original);
  });
});

describe('tar', () => {
  test('tar x onto the mount and tar c from it give the same archive as a bare directory', async ({ pt }) => {
    const work = await scratchDir();
    const ref = join(work, 'tree');
    await mkdir(ref);
    await buildTree(ref);
    // GNU tar stores mode, owner, size, mtime, names and link targets: equal archives mean equal trees.
    const tarc = 'tar --sort=name --numeric-owner --format=gnu -C "$1" -cf "$2" tree';
    await must(tarc, [work, join(work, 'input.tar')]);

    const bare = join(work, 'bare');
    await mkdir(bare);
    await must('tar --numeric-owner -C "$1" -xpf "$2"', [bare, join(work, 'input.tar')]);
    await must('tar --numeric-owner -C "$1" -xpf "$2"', [pt.mnt, join(work, 'input.tar')]);

    await must(tarc, [bare, join(work, 'bare.tar')]);
    await must(tarc, [pt.mnt, join(work, 'mount.tar')]);
    await must('cmp "$1" "$2"', [join(work, 'input.tar'), join(work, 'bare.tar')]);
    await must('cmp "$1" "$2"', [join(work, 'bare.tar'), join(work, 'mount.tar')]);
    const listing = (dir: string): Promise<string> => must('tar --full-time --numeric-owner -tvf "$1"', [join(work, dir)]);
    expect(await listing('mount.tar')).toBe(await listing('bare.tar'));
    expect(await snapshotTree(join(pt.source, 'tree'))).toEqual(await snapshotTree(join(bare, 'tree')));
  });
});

describe('dd', () => {
  test('dd with bs=1M and bs=4k, and conv=notrunc overwrites, match the same dd on a bare file', async ({ pt }) => {
    const work = await scratchDir();
    const input = join(work, 'input');
    await writeFile(input, seededBytes(7, 5 * 1_048_576 + 123));
    // The same dd commands on the mount and on the bare directory; results compared byte for byte.
    const script = [
      'dd if="$1" of="$2/big-1m" bs=1M status=none',
      'dd if="$1" of="$2/big-4k" bs=4k status=none',
      'dd if="$1" of="$2/patched" bs=1M count=3 status=none',
      'dd if=/dev/zero of="$2/patched" bs=4k seek=100 count=7 conv=notrunc status=none',
      'dd if="$1" of="$2/patched" bs=1M skip=4 seek=2 count=1 conv=notrunc status=none',
      'dd if="$1" of="$2/truncated" bs=1M count=2 status=none',
      'dd if=/dev/zero of="$2/truncated" bs=4k seek=3 count=1 status=none', // no notrunc: cut at 16 KiB
      'dd if="$2/big-1m" of="$2/read-back" bs=64k status=none',
    ].join(' && ');
    const bare = join(work, 'bare');
    await mkdir(bare);
    await must(script, [input, bare]);
    await must(script, [input, pt.mnt]);
    for (const name of ['big-1m', 'big-4k', 'patched', 'truncated', 'read-back']) {
      await must('cmp "$1" "$2"', [join(bare, name), join(pt.mnt, name)]);
      await must('cmp "$1" "$2"', [join(bare, name), join(pt.source, name)]);
    }
    expect((await must('stat -c %s "$1"', [join(pt.mnt, 'truncated')])).trim()).toBe('16384');
  });
});
