// /mfs/.admin/{mfscosts,overheads,decay} (issue 11): the node's DFSA tables as files on a real mount
// hosted by a real mfsd, in the layout `mfsctl getcosts|gettune|getdecay` prints; readable by all,
// writable by root only; a write replaces the table, a bad one is refused (EINVAL) with the table
// unchanged and the daemon's log naming the field and why.
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';
import { startMfsMount } from '../harness/mfs-mount.js';
import { makeTestCa, MFSCTL_JS, runNode, startMfsd, type TestCa } from '../harness/mfsd.js';
import { makeTempDir } from '../harness/passthrough-mount.js';
import { rm } from 'node:fs/promises';

const NOBODY = 65534;

describe('/mfs/.admin on a mount hosted by mfsd', () => {
  let caRoot: string;
  let ca: TestCa;
  let host: HostingMfsd;
  let admin: string;

  const mfsctl = async (...args: string[]): Promise<string> => {
    const r = await runNode(MFSCTL_JS, [...args, '--state-dir', host.daemon.stateDir]);
    if (r.code !== 0) throw new Error(`mfsctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** errno name of a failed write through the mount, 'OK' if it went through. */
  const writeCode = (file: string, text: string): string => {
    try {
      writeFileSync(join(admin, file), text);
      return 'OK';
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  };
  const asNobody = (command: string) => spawnSync('sh', ['-c', command], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });

  beforeAll(async () => {
    caRoot = await makeTempDir('omfs-admin-files-');
    ca = await makeTestCa(caRoot);
    host = await startHostingMfsd({ ca, nodeId: 1, others: [] });
    admin = join(host.mnt, '.admin');
    // Let another user reach the mount point (the harness's temp dir is 0700).
    chmodSync(dirname(host.mnt), 0o755);
  }, 60_000);
  afterAll(async () => {
    await host?.cleanup();
    await rm(caRoot, { recursive: true, force: true });
  });

  it('lists .admin in the root and its three tables, files of root with mode 0644', () => {
    expect(readdirSync(host.mnt)).toContain('.admin');
    expect(readdirSync(admin).sort()).toEqual(['decay', 'mfscosts', 'overheads']);
    for (const f of ['mfscosts', 'overheads', 'decay']) {
      const st = statSync(join(admin, f));
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o644);
      expect(st.uid).toBe(0);
    }
  });

  it('shows each table exactly as mfsctl prints it (openMosix defaults at first), to every user', async () => {
    expect(readFileSync(join(admin, 'mfscosts'), 'utf8')).toBe('36 40 14 19 88 56\n');
    expect(readFileSync(join(admin, 'mfscosts'), 'utf8')).toBe(await mfsctl('getcosts'));
    expect(readFileSync(join(admin, 'overheads'), 'utf8')).toBe(await mfsctl('gettune'));
    expect(readFileSync(join(admin, 'overheads'), 'utf8').trim().split(' ')).toHaveLength(14);
    expect(readFileSync(join(admin, 'decay'), 'utf8')).toBe(await mfsctl('getdecay'));
    const r = asNobody(`cat ${join(admin, 'mfscosts')}`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('36 40 14 19 88 56\n');
  });

  it('a write by root replaces the table (mfsctl and the file agree); mfsctl set* shows in the file at once', async () => {
    expect(writeCode('mfscosts', '30 41 14 19 88 56\n')).toBe('OK');
    expect(await mfsctl('getcosts')).toBe('30 41 14 19 88 56\n');
    expect(readFileSync(join(admin, 'mfscosts'), 'utf8')).toBe('30 41 14 19 88 56\n');
    // Tabs and no newline, as openMosix's /proc files took them.
    expect(writeCode('decay', '2\t970\t900')).toBe('OK');
    expect(await mfsctl('getdecay')).toBe('2 970 900\n');
    await mfsctl('setcosts', '36', '40', '14', '19', '88', '56');
    expect(readFileSync(join(admin, 'mfscosts'), 'utf8')).toBe('36 40 14 19 88 56\n');
  });

  it('refuses bad values with EINVAL, leaves the table as it was, and the log says which field and why', async () => {
    const before = readFileSync(join(admin, 'overheads'), 'utf8');
    expect(writeCode('overheads', '1 2 3\n')).toBe('EINVAL');
    expect(writeCode('mfscosts', '36 -40 14 19 88 56\n')).toBe('EINVAL');
    expect(writeCode('mfscosts', '36 40 14.5 19 88 56\n')).toBe('EINVAL');
    expect(writeCode('decay', '1 900 950\n')).toBe('EINVAL');
    expect(readFileSync(join(admin, 'overheads'), 'utf8')).toBe(before);
    expect(readFileSync(join(admin, 'mfscosts'), 'utf8')).toBe('36 40 14 19 88 56\n');
    expect(await mfsctl('getdecay')).toBe('2 970 900\n');
    const log = host.daemon.stderr();
    expect(log).toMatch(/\.admin\/overheads: write by pid \d+ refused: EINVAL: overheads: 3 values given, 14 expected/);
    expect(log).toMatch(/\.admin\/mfscosts: .*mfscosts field 2 \(\w+, [^)]*\): "-40" is negative/);
    expect(log).toMatch(/\.admin\/mfscosts: .*field 3 .*not a whole number/);
    expect(log).toMatch(/\.admin\/decay: .*FAST.*950 keeps more than SLOW/);
  });

  it('is writable by root only: another user gets EACCES and the table stays', async () => {
    const r = asNobody(`echo "1 1 1 1 1 1" > ${join(admin, 'mfscosts')}`);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Permission denied/);
    expect(await mfsctl('getcosts')).toBe('36 40 14 19 88 56\n');
  });

  it('a standalone mfs-mount serves them with --state-dir (its node\'s), and has no .admin without it', async () => {
    const node = await startMfsd({ ca, nodeId: 4 });
    try {
      await mfsctlAt(node.stateDir, 'setcosts', '1', '2', '3', '4', '5', '6');
      const withDir = await startMfsMount({ ca, node: 4, daemons: [node], args: ['--state-dir', node.stateDir] });
      try {
        expect(readFileSync(join(withDir.mnt, '.admin', 'mfscosts'), 'utf8')).toBe('1 2 3 4 5 6\n');
      } finally {
        await withDir.unmount();
      }
      const without = await startMfsMount({ ca, node: 4, daemons: [node] });
      try {
        expect(readdirSync(without.mnt)).not.toContain('.admin');
      } finally {
        await without.unmount();
      }
    } finally {
      await node.cleanup();
    }
  }, 60_000);
});

async function mfsctlAt(stateDir: string, ...args: string[]): Promise<void> {
  const r = await runNode(MFSCTL_JS, [...args, '--state-dir', stateDir]);
  if (r.code !== 0) throw new Error(`mfsctl ${args.join(' ')}: ${r.stderr}`);
}
