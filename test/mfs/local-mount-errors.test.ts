// mfsd with `mount` configured: a mount that cannot be made is a clean startup error (exit 1,
// nothing mounted, no daemon left), and a config that cannot work is refused before anything
// starts (exit 2, naming the field): bad mount options, a mount point overlapping an export.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { MFSD_JS, runNode } from '../harness/mfsd.js';
import { makeTempDir } from '../harness/passthrough-mount.js';

let tmp: string;
let exportDir: string;

beforeAll(async () => {
  tmp = await makeTempDir('omfs-local-mount-errors-');
  exportDir = join(tmp, 'export');
  fs.mkdirSync(exportDir);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs mfsd (insecure, alone) with `mount` as given; it must exit on its own. */
async function mfsdWith(mount: unknown, name: string): Promise<{ code: number | null; stderr: string }> {
  const config = join(tmp, `${name}.json`);
  fs.writeFileSync(config, JSON.stringify({
    node: 1, listen: '127.0.0.1:0', stateDir: join(tmp, `state-${name}`), exports: [{ path: exportDir }], insecure: true, mount,
  }));
  const r = await runNode(MFSD_JS, ['--config', config], 30_000);
  return { code: r.code, stderr: r.stderr };
}

const mounted = (path: string): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);

describe('mfsd mount: startup errors', () => {
  it('a mount point that does not exist: exit 1, the daemon gone, nothing mounted', async () => {
    const where = join(tmp, 'no-such-dir');
    const r = await mfsdWith({ path: where }, 'missing');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mount: .*no-such-dir: ENOENT/);
    expect(mounted(where)).toBe(false);
  });

  it('a mount point that is a file: exit 1, nothing mounted', async () => {
    const where = join(tmp, 'a-file');
    fs.writeFileSync(where, '');
    const r = await mfsdWith({ path: where }, 'file');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not a directory/);
    expect(mounted(where)).toBe(false);
  });

  it('a mount point already mounted: exit 1, the existing mount untouched', async () => {
    const where = join(tmp, 'busy');
    fs.mkdirSync(where);
    execFileSync('mount', ['-t', 'tmpfs', 'omfs-test', where]);
    try {
      fs.writeFileSync(join(where, 'mine'), 'kept');
      const r = await mfsdWith({ path: where }, 'busy');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/already a mount point \(tmpfs/);
      expect(fs.readFileSync(join(where, 'mine'), 'utf8')).toBe('kept');
    } finally {
      execFileSync('umount', [where]);
    }
  });

  it('unknown mount options and a mount point over the export: exit 2 naming them, before anything starts', async () => {
    const bad = await mfsdWith({ path: join(tmp, 'm1'), options: 'hard,frobnicate' }, 'badopt');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/mount\.options: unknown mount option "frobnicate"/);
    const overlap = await mfsdWith({ path: join(exportDir, 'mfs') }, 'overlap');
    expect(overlap.code).toBe(2);
    expect(overlap.stderr).toMatch(/overlaps export/);
    const unknown = await mfsdWith({ path: join(tmp, 'm2'), where: 'x' }, 'field');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/mount: unknown field "where"/);
    const flagsOnly = await runNode(MFSD_JS, ['--node', '1', '--insecure', '--listen', '127.0.0.1:0', '--export', exportDir, '--mount-options', 'soft']);
    expect(flagsOnly.code).toBe(2);
    expect(flagsOnly.stderr).toMatch(/--mount-options: needs --mount PATH/);
  });
});
