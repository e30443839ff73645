// /mfs as admins mount it: `mount -t mfs` and an fstab line go through mount(8) and the mount.mfs
// helper (to real mfsd daemons with mutual TLS), `umount` ends the mount and its process, bad
// options are refused by name with nothing mounted, and a running mount re-reads its map on SIGHUP
// (a map with comments and an ALIAS line; nodes added and removed show in `ls`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { listedNodes, startMfsMount } from '../harness/mfs-mount.js';
import { ensureMountHelper, eventually, mountsUnder, processesMentioning, run } from '../harness/mfs-admin.js';
import { parseHelperArgs } from '../../fuse/mfs/mount-helper-options.js';

let tmp: string;
let ca: TestCa;
let restoreHelper = (): void => {};
const daemons: MfsdHandle[] = [];
let mapFile: string;
let tls1: string;
let tls2: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(join(tmpdir(), 'omfs-admin-'));
  fs.chmodSync(tmp, 0o755);
  ca = await makeTestCa(tmp);
  for (const n of [1, 2]) daemons.push(await startMfsd({ ca, nodeId: n }));
  tls1 = await ca.issue('node1');
  tls2 = await ca.issue('node2');
  mapFile = join(tmp, 'openmosix.map');
  fs.writeFileSync(mapFile, [
    '# two nodes of this machine',
    `1 127.0.0.1:${daemons[0]!.port} 1`,
    `2 127.0.0.1:${daemons[1]!.port} 1   # node 2`,
    `2 127.0.0.2:${daemons[1]!.port} ALIAS`,
  ].join('\n') + '\n');
  restoreHelper = ensureMountHelper();
}, 120_000);

afterAll(async () => {
  for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  for (const p of processesMentioning(tmp)) process.kill(p.pid, 'SIGKILL');
  for (const d of daemons) await d.cleanup();
  restoreHelper();
  // mount.mfs's logs of this test's mounts (/run/omfs/<mount point, "/" as "-">.log).
  const logPrefix = tmp.replace(/^\/+/, '').replace(/\//g, '-');
  for (const f of fs.existsSync('/run/omfs') ? fs.readdirSync('/run/omfs') : []) {
    if (f.startsWith(logPrefix)) fs.rmSync(join('/run/omfs', f), { force: true });
  }
  if (mountsUnder(tmp).length === 0) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const exportOf = (d: MfsdHandle): string => d.exports[0]!.path;

function mountPoint(name: string): string {
  const mnt = join(tmp, name);
  fs.mkdirSync(mnt, { recursive: true });
  return mnt;
}

/** umount, then: not mounted, and the mount's process ends on its own. */
async function umountAndCheck(mnt: string): Promise<void> {
  const r = await run('umount', [mnt]);
  expect(r.code, r.stderr).toBe(0);
  expect(mountsUnder(mnt)).toEqual([]);
  expect(await eventually(() => processesMentioning(mnt).length === 0, 10_000), JSON.stringify(processesMentioning(mnt))).toBe(true);
}

describe('mount(8) with mount.mfs', () => {
  it('mount -t mfs mounts the cluster of the map as the node of the options, and umount ends it', async () => {
    const mnt = mountPoint('by-type');
    const r = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=1,tls=${tls1},soft,timeo=5000,nosuid,nodev`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    try {
      expect(mountsUnder(mnt)).toEqual([mnt]);
      expect(listedNodes(mnt).sort()).toEqual(['1', '2']);
      fs.writeFileSync(join(mnt, '2', 'from-mount-t'), 'through mount -t mfs\n');
      expect(fs.readFileSync(join(exportOf(daemons[1]!), 'from-mount-t'), 'utf8')).toBe('through mount -t mfs\n');
    } finally {
      await umountAndCheck(mnt);
    }
  }, 60_000);

  it('an fstab line (mount -T FSTAB DIR) with mount(8)\'s own options and dfsa=1', async () => {
    const mnt = mountPoint('by-fstab');
    const fstab = join(tmp, 'fstab');
    fs.writeFileSync(fstab, `# omfs\nnone ${mnt} mfs noauto,_netdev,nofail,dfsa=1,map=${mapFile},node=2,tls=${tls2} 0 0\n`);
    const r = await run('mount', ['-T', fstab, mnt]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    try {
      fs.writeFileSync(join(exportOf(daemons[0]!), 'on-node-1'), 'node 1 file\n');
      expect(fs.readFileSync(join(mnt, '1', 'on-node-1'), 'utf8')).toBe('node 1 file\n');
    } finally {
      await umountAndCheck(mnt);
    }
  }, 60_000);

  it('refuses an unknown option by its name, and a bad value, leaving nothing mounted or running', async () => {
    const mnt = mountPoint('refused');
    const unknown = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=1,tls=${tls1},bogus=1`]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown mount option "bogus=1"');
    const badValue = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=1,tls=${tls1},timeo=soon`]);
    expect(badValue.code).not.toBe(0);
    expect(badValue.stderr).toContain('timeo');
    const noCerts = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},node=1,tls=${join(tmp, 'nowhere')}`]);
    expect(noCerts.code).not.toBe(0);
    expect(noCerts.stderr).toContain(`${join(tmp, 'nowhere', 'ca.crt')} is missing`);
    expect(mountsUnder(mnt)).toEqual([]);
    expect(processesMentioning(mnt)).toEqual([]);
  }, 60_000);
});

describe('mount.mfs finds this node', () => {
  it('without node=, this node is the map\'s node with an address of this host', async () => {
    const mnt = mountPoint('own-node');
    // Node 1 is at 127.0.0.1 (an address of lo); node 2 at "localhost", a name, not this host's name.
    const map = join(tmp, 'own.map');
    fs.writeFileSync(map, `1 127.0.0.1:${daemons[0]!.port} 1\n2 localhost:${daemons[1]!.port} 1\n`);
    const r = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${map},tls=${tls1}`]);
    expect(r.code, r.stderr).toBe(0);
    try {
      expect(processesMentioning(mnt).map((p) => p.cmdline).join('\n')).toContain('--node 1 ');
      fs.writeFileSync(join(mnt, '2', 'own-node'), 'from node 1\n');
      expect(fs.readFileSync(join(exportOf(daemons[1]!), 'own-node'), 'utf8')).toBe('from node 1\n');
    } finally {
      await umountAndCheck(mnt);
    }
  }, 60_000);

  it.skipIf(fs.existsSync('/etc/omfs/mfsd.json'))('several nodes on this host and no mfsd config: refused, asking for node=', async () => {
    const mnt = mountPoint('ambiguous');
    const r = await run('mount', ['-t', 'mfs', 'mfs', mnt, '-o', `map=${mapFile},tls=${tls1}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('node=N');
    expect(mountsUnder(mnt)).toEqual([]);
  }, 60_000);
});

describe('mount.mfs options', () => {
  it('passes its own options to the mount, drops mount(8)\'s, and takes map, node and tls', () => {
    const a = parseHelperArgs(['mfs', '/mfs', '-n', '-o', 'defaults,rw,_netdev,noauto,soft,timeo=2000,dfsa=0,map=/x/m.map,node=4,tls=/x/tls']);
    expect(a).toMatchObject({ spec: 'mfs', mountPoint: '/mfs', map: '/x/m.map', node: 4, tlsDir: '/x/tls', mountOptions: ['rw', 'soft', 'timeo=2000', 'dfsa=0'] });
  });

  it('-s lets unknown options through (said), otherwise each is an error naming it', () => {
    expect(parseHelperArgs(['mfs', '/mfs', '-s', '-o', 'ro,whatever']).ignored).toEqual(['whatever']);
    expect(() => parseHelperArgs(['mfs', '/mfs', '-o', 'ro,whatever'])).toThrow('unknown mount option "whatever"');
    expect(() => parseHelperArgs(['mfs', '/mfs', '-o', 'node=0'])).toThrow('node');
    expect(() => parseHelperArgs(['mfs', '/mfs', '-o', 'map='])).toThrow('map');
    expect(() => parseHelperArgs(['/mfs'])).toThrow('SPEC and DIR');
  });
});

describe('SIGHUP', () => {
  it('re-reads the map: nodes added and removed show in ls, and a bad map changes nothing', async () => {
    // As node 3 (a client of the map's nodes): the harness issues its own node<N> certificate.
    const m = await startMfsMount({ ca, node: 3, daemons: [daemons[0]!] });
    try {
      expect(listedNodes(m.mnt)).toEqual(['1']);
      fs.writeFileSync(join(exportOf(daemons[1]!), 'hup'), 'node 2 joined\n');
      fs.writeFileSync(m.mapFile, `# now two\n1 127.0.0.1:${daemons[0]!.port} 1\n2 127.0.0.1:${daemons[1]!.port} 1 # added\n2 127.0.0.2:${daemons[1]!.port} ALIAS\n`);
      m.proc.kill('SIGHUP');
      expect(await eventually(() => listedNodes(m.mnt).join() === '1,2', 10_000)).toBe(true);
      expect(fs.readFileSync(join(m.mnt, '2', 'hup'), 'utf8')).toBe('node 2 joined\n');
      expect(fs.statSync(join(m.mnt, '1')).isDirectory()).toBe(true); // the kernel caches the name "1"

      fs.writeFileSync(m.mapFile, `2 127.0.0.1:${daemons[1]!.port} 1\n`);
      m.proc.kill('SIGHUP');
      expect(await eventually(() => listedNodes(m.mnt).join() === '2', 10_000)).toBe(true);
      expect(() => fs.statSync(join(m.mnt, '1'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));

      fs.writeFileSync(m.mapFile, 'this is not a map\n');
      m.proc.kill('SIGHUP');
      expect(await eventually(() => m.output().includes('SIGHUP: map not changed'), 10_000)).toBe(true);
      expect(listedNodes(m.mnt)).toEqual(['2']);
      expect(fs.readFileSync(join(m.mnt, '2', 'hup'), 'utf8')).toBe('node 2 joined\n');
    } finally {
      await m.unmount();
    }
  }, 60_000);
});
