// omfs-cluster as the README uses it: `up --nodes 3` brings up three real mfsd daemons with mutual
// TLS and three real /mfs mounts; files cross nodes byte for byte; `up` on a running cluster says
// so; `down` leaves no mount and no process, also after a crash and after an `up` that failed
// half-way (which undoes itself).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, eventually, mountsUnder, omfsCluster, processesMentioning } from '../harness/mfs-admin.js';
import { listedNodes } from '../harness/mfs-mount.js';
import { waitFor } from '../harness/outcome.js';
import { spawnSync } from 'node:child_process';

let dir: string;

/** /mfs holds this test's mount (its source and type are ours, and --root was used). */
const mountedByUs = (mnt: string): boolean => mountsUnder(mnt).length > 0 && processesMentioning(dir).some((p) => p.cmdline.endsWith(` ${mnt} `) || p.cmdline.endsWith(` ${mnt}`));

const pidOf = (file: string): number => Number(fs.readFileSync(join(dir, file), 'utf8').trim());
const pidFiles = (nodes: number): string[] => Array.from({ length: nodes }, (_, i) => [`node${i + 1}/mfsd.pid`, `node${i + 1}/mfs-mount.pid`]).flat();

beforeAll(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'omfs-cluster-'));
});

afterAll(async () => {
  await omfsCluster(['down', '--dir', dir]);
  // Last resort, should down have failed: nothing of this cluster may outlive the test.
  for (const p of processesMentioning(dir)) process.kill(p.pid, 'SIGKILL');
  for (const m of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  if (mountedByUs('/mfs')) spawnSync('umount', ['-l', '/mfs'], { stdio: 'ignore' });
  if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('omfs-cluster up --nodes 3', () => {
  let pids: number[] = [];

  it('starts three nodes, each mounting the cluster, and prints where everything is', async () => {
    const r = await omfsCluster(['up', '--nodes', '3', '--dir', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(join(dir, 'openmosix.map'));
    for (const k of [1, 2, 3]) {
      expect(r.stdout).toContain(join(dir, `node${k}`, 'export'));
      expect(r.stdout).toContain(join(dir, `node${k}`, 'mfs'));
      expect(listedNodes(join(dir, `node${k}`, 'mfs')).sort()).toEqual(['1', '2', '3']);
    }
    expect(mountsUnder(dir).sort()).toEqual([1, 2, 3].map((k) => join(dir, `node${k}`, 'mfs')));
    pids = pidFiles(3).map(pidOf);
    expect(pids.every(alive)).toBe(true);
  }, 180_000);

  it('a file written through node1/mfs/2/ is node 2\'s export file, byte for byte, and reads the same through node3/mfs/2/', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(join(dir, 'node1', 'mfs', '2', 'blob'), data);
    expect(fs.readFileSync(join(dir, 'node2', 'export', 'blob')).equals(data)).toBe(true);
    expect(fs.readFileSync(join(dir, 'node3', 'mfs', '2', 'blob')).equals(data)).toBe(true);
    // And the other way: each node's export is its root, DIR/nodeJ/mfs/K/x = DIR/nodeK/export/x.
    fs.mkdirSync(join(dir, 'node3', 'export', 'sub'));
    fs.writeFileSync(join(dir, 'node3', 'export', 'sub', 'x'), 'on node 3\n');
    // Made on node 3's disk, not through omfs: the mounts hear of it within the direct-change bound
    // (sessions.directChangeMs plus the ack) and may answer "no such name" from their caches until then.
    const x = join(dir, 'node1', 'mfs', '3', 'sub', 'x');
    await waitFor('node 3\'s direct change seen through node 1', () => fs.existsSync(x), 5_000, 20);
    expect(fs.readFileSync(x, 'utf8')).toBe('on node 3\n');
  });

  it('up on the running cluster says so and changes nothing', async () => {
    const r = await omfsCluster(['up', '--nodes', '3', '--dir', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('already running');
    expect(pidFiles(3).map(pidOf)).toEqual(pids);
  }, 60_000);

  it('down unmounts everything and stops every process', async () => {
    const r = await omfsCluster(['down', '--dir', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
    // The export files stay: down stops the cluster, it does not delete its data.
    expect(fs.existsSync(join(dir, 'node2', 'export', 'blob'))).toBe(true);
  }, 120_000);
});

describe('omfs-cluster up --root', () => {
  // /mfs is this machine's: only when nothing is mounted there (a real /mfs is never touched).
  it.skipIf(mountsUnder('/mfs').length > 0)('mounts node 1\'s view at /mfs itself, and down unmounts it', async () => {
    const r = await omfsCluster(['up', '--nodes', '2', '--root', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    try {
      expect(mountsUnder('/mfs')).toEqual(['/mfs']);
      expect(mountsUnder(dir)).toEqual([join(dir, 'node2', 'mfs')]);
      fs.writeFileSync('/mfs/2/via-root', 'node 1 at /mfs\n');
      expect(fs.readFileSync(join(dir, 'node2', 'export', 'via-root'), 'utf8')).toBe('node 1 at /mfs\n');
    } finally {
      const d = await omfsCluster(['down', '--dir', dir]);
      expect(d.code, d.stderr).toBe(0);
    }
    expect(mountsUnder('/mfs')).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
  }, 180_000);
});

describe('omfs-cluster down after trouble', () => {
  it('cleans up after a crashed mount and a killed daemon (dead FUSE mount, stale pid file)', async () => {
    const r = await omfsCluster(['up', '--nodes', '2', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    const pids = pidFiles(2).map(pidOf);
    process.kill(pidOf('node1/mfs-mount.pid'), 'SIGKILL'); // its mount stays, answering ENOTCONN
    process.kill(pidOf('node2/mfsd.pid'), 'SIGKILL');
    expect(await eventually(() => !alive(pidOf('node1/mfs-mount.pid')), 10_000)).toBe(true);
    expect(mountsUnder(dir)).toContain(join(dir, 'node1', 'mfs'));
    const d = await omfsCluster(['down', '--dir', dir]);
    expect(d.code, d.stderr).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
  }, 180_000);

  it('an up that fails half-way undoes itself: nothing mounted, nothing running', async () => {
    // Node 2's mount point is a file: node 1 is mounted and both daemons run when node 2's mount fails.
    fs.rmSync(join(dir, 'node2', 'mfs'), { recursive: true, force: true });
    fs.writeFileSync(join(dir, 'node2', 'mfs'), 'in the way\n');
    try {
      const r = await omfsCluster(['up', '--nodes', '2', '--dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(join(dir, 'node2', 'mfs'));
      expect(r.stdout).toContain('undoing');
      expect(mountsUnder(dir)).toEqual([]);
      expect(processesMentioning(dir)).toEqual([]);
    } finally {
      fs.rmSync(join(dir, 'node2', 'mfs'), { force: true });
    }
  }, 180_000);

  it('refuses a bad command line (exit 2)', async () => {
    for (const args of [['up', '--dir', dir], ['up', '--nodes', 'x', '--dir', dir], ['sideways'], ['down', '--nodes', '2', '--dir', dir]]) {
      const r = await omfsCluster(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: omfs-cluster');
    }
  });
});
