// Errno mapping: each failing operation is run on a bare directory (the source of truth) and on the
// mount over an identical tree, and must fail with the same code; after the failure nothing changed.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { snapshotTree } from './tools.js';

const test = passthroughTest();
const scratch: string[] = [];
afterEach(async () => {
  for (const dir of scratch.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function seed(root: string): Promise<void> {
  await mkdir(join(root, 'dir/sub'), { recursive: true });
  await mkdir(join(root, 'empty'));
  await writeFile(join(root, 'dir/file'), 'data');
  await writeFile(join(root, 'file'), 'data');
  await symlink('file', join(root, 'link'));
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
}

/** getfattr reports ENODATA as "No such attribute"; turn that back into the code. */
async function getfattr(name: string, path: string): Promise<void> {
  const r = spawnSync('getfattr', ['--only-values', '-n', name, path], { encoding: 'utf8' });
  if (r.status === 0) return;
  throw Object.assign(new Error(r.stderr), { code: r.stderr.includes('No such attribute') ? 'ENODATA' : r.stderr.trim() });
}

type Op = (r: (p: string) => string) => Promise<unknown>;
const CASES: Array<[string, string, Op]> = [
  ['read a missing file', 'ENOENT', (r) => fsp.readFile(r('missing'))],
  ['stat below a missing dir', 'ENOENT', (r) => fsp.stat(r('missing/x'))],
  ['lookup through a file', 'ENOTDIR', (r) => fsp.stat(r('file/x'))],
  ['mkdir an existing name', 'EEXIST', (r) => fsp.mkdir(r('dir'))],
  ['exclusive create of an existing file', 'EEXIST', (r) => fsp.writeFile(r('file'), 'x', { flag: 'wx' })],
  ['symlink over an existing name', 'EEXIST', (r) => fsp.symlink('x', r('file'))],
  ['link over an existing name', 'EEXIST', (r) => fsp.link(r('file'), r('dir/file'))],
  ['rmdir a non-empty dir', 'ENOTEMPTY', (r) => fsp.rmdir(r('dir'))],
  ['rmdir a file', 'ENOTDIR', (r) => fsp.rmdir(r('file'))],
  ['unlink a dir', 'EISDIR', (r) => fsp.unlink(r('dir'))],
  ['open a dir for writing', 'EISDIR', (r) => fsp.writeFile(r('dir'), 'x')],
  ['readdir a file', 'ENOTDIR', (r) => fsp.readdir(r('file'))],
  ['readlink a regular file', 'EINVAL', (r) => fsp.readlink(r('file'))],
  ['hard link to a dir', 'EPERM', (r) => fsp.link(r('dir'), r('dir-link'))],
  ['rename a dir into itself', 'EINVAL', (r) => fsp.rename(r('dir'), r('dir/sub/inner'))],
  ['rename a dir over a non-empty dir', 'ENOTEMPTY', (r) => fsp.rename(r('empty'), r('dir'))],
  ['rename a dir over a file', 'ENOTDIR', (r) => fsp.rename(r('dir'), r('file'))],
  ['rename a file over a dir', 'EISDIR', (r) => fsp.rename(r('file'), r('empty'))],
  ['rename a missing name', 'ENOENT', (r) => fsp.rename(r('missing'), r('other'))],
  ['follow a symlink loop', 'ELOOP', (r) => fsp.readFile(r('loop-a'))],
  ['name too long', 'ENAMETOOLONG', (r) => fsp.writeFile(r('n'.repeat(256)), 'x')],
  ['getxattr of a missing attribute', 'ENODATA', async (r) => getfattr('user.none', r('file'))],
];

describe('errno parity with a bare directory', () => {
  test('every failing operation fails the same way on the mount, and nothing changes', async ({ pt }) => {
    const bare = await makeTempDir('omfs-pt-bare-');
    scratch.push(bare);
    await seed(bare);
    await seed(pt.mnt);
    const codeOf = async (op: Op, root: string): Promise<string> => {
      try {
        await op((p) => join(root, p));
        return 'ok';
      } catch (err) {
        return String((err as NodeJS.ErrnoException).code);
      }
    };
    const results: Record<string, { expected: string; bare: string; mount: string }> = {};
    for (const [name, expected, op] of CASES) {
      results[name] = { expected, bare: await codeOf(op, bare), mount: await codeOf(op, pt.mnt) };
    }
    // One comparison of the whole table, so a failure shows every mismatching operation at once.
    const wanted = Object.fromEntries(CASES.map(([name, code]) => [name, { expected: code, bare: code, mount: code }]));
    expect(results).toEqual(wanted);
    const shape = (t: Awaited<ReturnType<typeof snapshotTree>>) => t.map((e) => [e.path, e.type, e.size, e.target, e.sha256]);
    expect(shape(await snapshotTree(pt.source))).toEqual(shape(await snapshotTree(bare)));
    expect(shape(await snapshotTree(pt.mnt))).toEqual(shape(await snapshotTree(bare)));
  });

  test('rename across directories of one mount moves the file (no EXDEV)', async ({ pt }) => {
    await mkdir(join(pt.mnt, 'a'));
    await mkdir(join(pt.mnt, 'b'));
    await writeFile(join(pt.mnt, 'a/f'), 'moved');
    await fsp.rename(join(pt.mnt, 'a/f'), join(pt.mnt, 'b/f'));
    expect(await fsp.readFile(join(pt.source, 'b/f'), 'utf8')).toBe('moved');
    await expect(fsp.stat(join(pt.source, 'a/f'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
