// One daemon per node, as admins mount: `mount -t mfs` (and an fstab line) on a node whose mfsd
// answers on its admin socket hands the mount to that mfsd, which mounts in its own process (no
// mfs-mount process); `umount` ends it while mfsd goes on serving; the daemon's refusals come back
// as mount's errors; without an answering mfsd, mount.mfs mounts standalone and says so.
// Real mfsd daemons (mutual TLS), real mount(8), real FUSE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askAdmin } from '../../server/admin-socket.js';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { listedNodes } from '../harness/mfs-mount.js';
import { waitFor } from '../harness/outcome.js';
import { alive, ensureMountHelper, eventually, mountsUnder, processesMentioning, run } from '../harness/mfs-admin.js';
import { freePort } from '../harness/mfs-local.js';

let tmp: string;
let ca: TestCa;
let restoreHelper = (): void => {};
let d1: MfsdHandle | undefined;
let d2: MfsdHandle | undefined;
let mapFile: string;
let socket: string;
/** node3's certificates: a standalone mount as another node. */
let tls3: string;
const envBefore = process.env['OMFS_MFSD_SOCKET'];

beforeAll(async () => {
  tmp = fs.mkdtempSync(join(tmpdir(), 'omfs-handoff-'));
  fs.chmodSync(tmp, 0o755);
  ca = await makeTestCa(tmp);
  d2 = await startMfsd({ ca, nodeId: 2 });
  const port1 = await freePort();
  mapFile = join(tmp, 'openmosix.map');
  fs.writeFileSync(mapFile, `# this node and one other\n1 127.0.0.1:${port1} 1\n2 127.0.0.1:${d2.port} 1\n`);
  // Node 1's mfsd dials node 2 as itself: its certificate must name node1.
  const certs = await ca.issue('node1');
  d1 = await startMfsd({
    ca, nodeId: 1,
    config: { listen: `127.0.0.1:${port1}`, map: mapFile, tls: { ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') } },
  });
  socket = join(d1.stateDir, 'mfsd.sock');
  // mount(8) passes its environment on to the helper: this test's "local mfsd" is node 1's.
  process.env['OMFS_MFSD_SOCKET'] = socket;
  tls3 = await ca.issue('node3');
  restoreHelper = ensureMountHelper();
}, 120_000);

afterAll(async () => {
  if (envBefore === undefined) delete process.env['OMFS_MFSD_SOCKET'];
  else process.env['OMFS_MFSD_SOCKET'] = envBefore;
  for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  for (const p of processesMentioning(tmp)) process.kill(p.pid, 'SIGKILL');
  await d1?.cleanup();
  await d2?.cleanup();
  restoreHelper();
  const logPrefix = tmp.replace(/^\/+/, '').replace(/\//g, '-');
  for (const f of fs.existsSync('/run/omfs') ? fs.readdirSync('/run/omfs') : []) {
    if (f.startsWith(logPrefix)) fs.rmSync(join('/run/omfs', f), { force: true });
  }
  if (mountsUnder(tmp).length === 0) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

function mountPoint(name: string): string {
  const mnt = join(tmp, name);
  fs.mkdirSync(mnt, { recursive: true });
  return mnt;
}

/** The mounts node 1's mfsd says it hosts. */
async function hosted(): Promise<string[]> {
  const r = await askAdmin(socket, { op: 'status' });
  if (!r.ok) throw new Error(r.error);
  return (r['mounts'] as Array<{ path: string }>).map((m) => m.path);
}

describe('mount -t mfs with a local mfsd', () => {
  it('is mounted by the mfsd itself (no mount process), its own node in process, the other through a session', async () => {
    const mnt = mountPoint('by-type');
    const r = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},soft,timeo=5000,nosuid,nodev`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    try {
      expect(mountsUnder(mnt)).toEqual([mnt]);
      expect(await hosted()).toEqual([mnt]);
      // Nothing but mfsd serves it: no process names the mount point.
      expect(processesMentioning(mnt)).toEqual([]);
      expect(listedNodes(mnt).sort()).toEqual(['1', '2']);
      fs.writeFileSync(join(mnt, '1', 'own'), 'to node 1\n');
      expect(fs.readFileSync(join(d1!.exports[0]!.path, 'own'), 'utf8')).toBe('to node 1\n');
      fs.writeFileSync(join(mnt, '2', 'other'), 'to node 2\n');
      expect(fs.readFileSync(join(d2!.exports[0]!.path, 'other'), 'utf8')).toBe('to node 2\n');
      // Node 1 in process: the daemon opened no session to itself for it.
      expect(d1!.stderr()).toContain(`mounted nodes 1,2 on ${mnt} as node 1 (node 1 in process)`);
    } finally {
      const u = await run('umount', [mnt]);
      expect(u.code, u.stderr).toBe(0);
    }
    // umount: the daemon drops the mount and keeps serving its exports.
    expect(mountsUnder(mnt)).toEqual([]);
    expect(await eventually(() => d1!.stderr().includes(`mount ${mnt}: unmounted; still serving the exports`), 10_000)).toBe(true);
    expect(await hosted()).toEqual([]);
    expect(alive(d1!.proc.pid!)).toBe(true);
    // Mounted again at once: nothing of the first mount was left behind.
    const again = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile}`]);
    expect(again.code, again.stderr).toBe(0);
    try {
      expect(fs.readFileSync(join(mnt, '2', 'other'), 'utf8')).toBe('to node 2\n');
    } finally {
      expect((await run('umount', [mnt])).code).toBe(0);
    }
  }, 90_000);

  it('an fstab line with mount(8)\'s own options is handed over too', async () => {
    const mnt = mountPoint('by-fstab');
    const fstab = join(tmp, 'fstab');
    fs.writeFileSync(fstab, `# omfs\nnone ${mnt} mfs noauto,_netdev,nofail,dfsa=1,map=${mapFile} 0 0\n`);
    const r = await run('mount', ['-T', fstab, mnt]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    try {
      expect(await hosted()).toEqual([mnt]);
      fs.writeFileSync(join(d2!.exports[0]!.path, 'seen-from-1'), 'node 2 file\n');
      expect(fs.readFileSync(join(mnt, '2', 'seen-from-1'), 'utf8')).toBe('node 2 file\n');
    } finally {
      expect((await run('umount', [mnt])).code).toBe(0);
    }
  }, 60_000);

  it('what the daemon refuses is mount\'s error, named, and nothing is left mounted', async () => {
    const mnt = mountPoint('refused');
    const badValue = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},timeo=soon`]);
    expect(badValue.code).toBe(32);
    expect(badValue.stderr).toMatch(/mount\.mfs: mfsd: .*timeo/);
    const unknown = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},bogus=1`]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown mount option "bogus=1"');
    // Over its own export: the daemon would serve its own mount to itself.
    const overExport = await run('mount', ['-t', 'mfs', 'mfs', d1!.exports[0]!.path, '-o', `map=${mapFile}`]);
    expect(overExport.code).toBe(32);
    expect(overExport.stderr).toContain('overlaps export');
    const missing = await run('mount', ['-t', 'mfs', 'mfs', join(tmp, 'no-such-dir'), '-o', `map=${mapFile}`]);
    expect(missing.code).not.toBe(0);
    // Mounted already: the second mount is refused, the first untouched.
    expect((await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile}`])).code).toBe(0);
    try {
      const twice = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile}`]);
      expect(twice.code).toBe(32);
      expect(twice.stderr).toContain('already a mount point');
      // Inside its own mount: refused too (the daemon must not wait on a path only it can answer).
      fs.mkdirSync(join(mnt, '1', 'inside'), { recursive: true });
      const inside = await run('mount', ['-t', 'mfs', 'mfs', join(mnt, '1', 'inside'), '-o', `map=${mapFile}`]);
      expect(inside.code).toBe(32);
      expect(inside.stderr).toContain('which this mfsd serves');
      expect(listedNodes(mnt).sort()).toEqual(['1', '2']);
    } finally {
      expect((await run('umount', [mnt])).code).toBe(0);
    }
    expect(mountsUnder(tmp)).toEqual([]);
    // The daemon drops a mount when it sees its FUSE connection end, a moment after umount returns.
    await waitFor('the daemon to drop the unmounted mount', async () => (await hosted()).length === 0, 10_000);
  }, 60_000);
});

describe('without a local mfsd that can take it', () => {
  it('no mfsd answers: a standalone mfs-mount, said on stderr; umount ends it', async () => {
    const mnt = mountPoint('standalone');
    const r = await run('env', [`OMFS_MFSD_SOCKET=${join(tmp, 'nobody.sock')}`, 'mount', '-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=3,tls=${tls3}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`no mfsd answers on ${join(tmp, 'nobody.sock')}`);
    expect(r.stderr).toContain('starting a standalone mfs-mount instead');
    try {
      expect(processesMentioning(mnt).map((p) => p.cmdline).join('\n')).toContain('--node 3 ');
      expect(fs.readFileSync(join(mnt, '2', 'other'), 'utf8')).toBe('to node 2\n');
    } finally {
      expect((await run('umount', [mnt])).code).toBe(0);
    }
    expect(await eventually(() => processesMentioning(mnt).length === 0, 10_000)).toBe(true);
  }, 60_000);

  it('node= naming another node: the local mfsd (node 1) declines, mount.mfs mounts standalone as that node', async () => {
    const mnt = mountPoint('other-node');
    const r = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=3,tls=${tls3}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('this node\'s mfsd is node 1, node=3 asks for another');
    try {
      expect(await hosted()).toEqual([]);
      expect(processesMentioning(mnt).map((p) => p.cmdline).join('\n')).toContain('--node 3 ');
    } finally {
      expect((await run('umount', [mnt])).code).toBe(0);
    }
  }, 60_000);
});

describe('mfsd stop', () => {
  it('unmounts what it mounted on request', async () => {
    const mnt = mountPoint('until-stop');
    expect((await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile}`])).code).toBe(0);
    expect(await d1!.stop('SIGTERM')).toBe(0);
    expect(mountsUnder(mnt)).toEqual([]);
    expect(fs.existsSync(socket)).toBe(false);
  }, 60_000);
});
