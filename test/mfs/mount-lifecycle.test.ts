// mfs-mount as a command: bad arguments and maps are refused before anything is mounted, SIGTERM
// unmounts, a node with several exports shows each at its path, callers act as themselves on the
// node, and a node that goes away fails only its own subtree (soft: EIO after timeo) and comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, runNode, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { MFS_MOUNT_JS, listedNodes, startMfsMount } from '../harness/mfs-mount.js';
import { fuseMounts } from '../harness/passthrough-mount.js';

let tmp: string;
let ca: TestCa;
const daemons: MfsdHandle[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-mfs-life-'));
  fs.chmodSync(tmp, 0o755);
  ca = await makeTestCa(tmp);
}, 120_000);

afterAll(async () => {
  for (const d of daemons) await d.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function daemon(nodeId: number, opts: Parameters<typeof startMfsd>[0] = {}): Promise<MfsdHandle> {
  const d = await startMfsd({ ca, nodeId, ...opts });
  daemons.push(d);
  return d;
}

const errnoOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'OK';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};

describe('the command line', () => {
  const mnt = (): string => {
    const dir = join(tmp, 'mnt');
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };
  const base = (map: string): string[] => ['--map', map, '--node', '3', '--tls-ca', join(ca.dir, 'ca.crt'), '--tls-cert', join(ca.dir, 'ca.crt'), '--tls-key', join(ca.dir, 'ca.key')];

  it('refuses an unknown -o option by its name, a missing argument and a bad map (exit 2), mounting nothing', async () => {
    const map = join(tmp, 'good.map');
    fs.writeFileSync(map, '# two nodes\n1 127.0.0.1:7001 2\n1 127.0.0.2:7001 ALIAS\n');
    const before = fuseMounts().length;
    const unknown = await runNode(MFS_MOUNT_JS, [...base(map), '-o', 'ro,bogus=1', mnt()]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown mount option "bogus=1"');
    const missing = await runNode(MFS_MOUNT_JS, ['--node', '3', mnt()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--map is required');
    const bad = join(tmp, 'bad.map');
    fs.writeFileSync(bad, '1 127.0.0.1 2\n2 127.0.0.9 1\n');
    const badMap = await runNode(MFS_MOUNT_JS, [...base(bad), mnt()]);
    expect(badMap.code).toBe(2);
    expect(badMap.stderr).toContain(`${bad}:2: node 2 is defined twice`);
    expect(fuseMounts().length).toBe(before);
  });

  it('SIGTERM unmounts and exits 0', async () => {
    const d = await daemon(1);
    const m = await startMfsMount({ ca, node: 3, daemons: [d] });
    try {
      expect(listedNodes(m.mnt)).toEqual(['1']);
      m.proc.kill('SIGTERM');
      expect(await m.exited).toBe(0);
      expect(fuseMounts().some((x) => x.mountPoint === m.mnt)).toBe(false);
    } finally {
      await m.unmount();
    }
  });
});

describe('what a node shows', () => {
  it('several exports: each at its own path under /mfs/<K>, the directories leading to them read-only', async () => {
    const d = await daemon(5, { exports: [{ name: 'a' }, { name: 'b' }] });
    fs.writeFileSync(join(d.exports[0]!.path, 'in-a'), 'A');
    fs.writeFileSync(join(d.exports[1]!.path, 'in-b'), 'B');
    const m = await startMfsMount({ ca, node: 3, daemons: [d] });
    try {
      const top = join(m.mnt, '5');
      const a = join(top, d.exports[0]!.path);
      expect(fs.readFileSync(join(a, 'in-a'), 'utf8')).toBe('A');
      expect(fs.readFileSync(join(top, d.exports[1]!.path, 'in-b'), 'utf8')).toBe('B');
      expect(fs.readdirSync(join(a, '..')).sort()).toEqual(['a', 'b']);
      expect(fs.readdirSync(top)).toEqual([d.exports[0]!.path.split('/')[1]]);
      expect(errnoOf(() => fs.mkdirSync(join(top, 'new')))).toBe('EROFS');
      expect(errnoOf(() => fs.writeFileSync(join(a, '..', 'new'), 'x'))).toBe('EROFS');
      // Inside an export everything is the node's again.
      fs.writeFileSync(join(a, 'made'), 'm');
      expect(fs.readFileSync(join(d.exports[0]!.path, 'made'), 'utf8')).toBe('m');
    } finally {
      await m.unmount();
    }
  });

  it('a caller acts as itself on the node: its uid owns what it makes, and the node refuses what it may not do', async () => {
    const d = await daemon(6);
    const m = await startMfsMount({ ca, node: 3, daemons: [d] });
    try {
      const via = join(m.mnt, '6');
      fs.chmodSync(d.exports[0]!.path, 0o755);
      fs.mkdirSync(join(via, 'open'), 0o777);
      fs.chmodSync(join(via, 'open'), 0o777);
      const asNobody = (...cmd: string[]) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd], { encoding: 'utf8' });
      expect(asNobody('touch', join(via, 'open', 'mine')).status).toBe(0);
      expect(fs.statSync(join(d.exports[0]!.path, 'open', 'mine')).uid).toBe(65534);
      const refused = asNobody('touch', join(via, 'not-mine'));
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toContain('Permission denied');
      expect(fs.existsSync(join(d.exports[0]!.path, 'not-mine'))).toBe(false);
    } finally {
      await m.unmount();
    }
  });
});

/** Established TCP connections from process `pid` to 127.0.0.1:`port` (from ss). */
function connectionsTo(pid: number, port: number): number {
  const out = spawnSync('ss', ['-tnpH', 'state', 'established', 'dst', `127.0.0.1:${port}`], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

describe('sessions on demand', () => {
  it('a node is connected only once /mfs/<K> is used (the root\'s listing needs none), and its idle session closes', async () => {
    const d = await daemon(8);
    const m = await startMfsMount({ ca, node: 3, daemons: [d], args: ['-o', 'idle=1000'] });
    try {
      // A listing with file types (what `ls /mfs` needs) comes from the map alone.
      expect(fs.readdirSync(m.mnt, { withFileTypes: true }).filter((e) => /^[1-9]\d*$/.test(e.name)).map((e) => [e.name, e.isDirectory()])).toEqual([['8', true]]);
      expect(connectionsTo(m.proc.pid!, d.port)).toBe(0);
      fs.writeFileSync(join(m.mnt, '8', 'used'), 'u');
      expect(connectionsTo(m.proc.pid!, d.port)).toBeGreaterThan(0);
      let closed = false;
      for (let k = 0; k < 50 && !closed; k++) {
        await new Promise((res) => setTimeout(res, 200));
        closed = connectionsTo(m.proc.pid!, d.port) === 0;
      }
      expect(closed).toBe(true);
      // Used again: a new session, the same files.
      expect(fs.readFileSync(join(m.mnt, '8', 'used'), 'utf8')).toBe('u');
    } finally {
      await m.unmount();
    }
  });
});

describe('a node that goes away', () => {
  it('soft: its subtree fails with EIO after timeo, the other node keeps answering; it comes back on its own', async () => {
    const d1 = await daemon(1, { config: { sessions: { keepaliveMs: 500 } } });
    const d2 = await daemon(2, { config: { sessions: { keepaliveMs: 500 } } });
    const m = await startMfsMount({ ca, node: 3, daemons: [d1, d2], args: ['-o', 'soft,timeo=1500'] });
    try {
      fs.writeFileSync(join(m.mnt, '2', 'before'), 'kept');
      fs.writeFileSync(join(m.mnt, '1', 'other'), 'one');
      const held = fs.openSync(join(m.mnt, '2', 'before'), 'r');
      await d2.stop('SIGTERM');
      const started = Date.now();
      // A separate process: a stuck call must not stall this test's own event loop.
      const r = spawnSync('cat', [join(m.mnt, '2', 'never-seen')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.stderr).toContain('Input/output error');
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(fs.readFileSync(join(m.mnt, '1', 'other'), 'utf8')).toBe('one');
      // Back on the same port: the mount reconnects by itself, and a file opened before still reads.
      await d2.restart(); // stopped already: restart() finds it exited (0) and starts it again
      let ok = false;
      for (let k = 0; k < 100 && !ok; k++) {
        ok = spawnSync('cat', [join(m.mnt, '2', 'before')], { encoding: 'utf8', timeout: 10_000 }).stdout === 'kept';
        if (!ok) await new Promise((res) => setTimeout(res, 200));
      }
      expect(ok).toBe(true);
      const buf = Buffer.alloc(4);
      expect(errnoOf(() => fs.readSync(held, buf, 0, 4, 0))).toBe('OK');
      expect(buf.toString()).toBe('kept');
      fs.closeSync(held);
    } finally {
      await m.unmount();
    }
  }, 120_000);

  it('hard (the default): a call made while the node is away waits, and finishes once it is back', async () => {
    const d = await daemon(7, { config: { sessions: { keepaliveMs: 500 } } });
    const m = await startMfsMount({ ca, node: 3, daemons: [d] });
    try {
      fs.writeFileSync(join(m.mnt, '7', 'waits'), 'resumed');
      await d.stop('SIGTERM');
      const cat = spawn('cat', [join(m.mnt, '7', 'waits')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      cat.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const done = new Promise<number | null>((res) => cat.once('exit', (code) => res(code)));
      // Still waiting a while later (not failed): the node is away, not gone.
      const early = await Promise.race([done.then(() => 'exited'), new Promise((res) => setTimeout(() => res('waiting'), 1500))]);
      expect(early).toBe('waiting');
      await d.restart();
      expect(await done).toBe(0);
      expect(out).toBe('resumed');
    } finally {
      await m.unmount();
    }
  }, 120_000);

  it('umount -l leaves no process hung: a call waiting for an absent node fails, and the mount exits once unused', async () => {
    const d = await daemon(9, { config: { sessions: { keepaliveMs: 500 } } });
    const m = await startMfsMount({ ca, node: 3, daemons: [d] });
    try {
      fs.writeFileSync(join(m.mnt, '9', 'f'), 'x');
      await d.stop('SIGKILL');
      const cat = spawn('cat', [join(m.mnt, '9', 'f')], { stdio: 'ignore' });
      const done = new Promise<number | null>((res) => cat.once('exit', (code) => res(code)));
      const early = await Promise.race([done.then(() => 'exited'), new Promise((res) => setTimeout(() => res('waiting'), 1000))]);
      expect(early).toBe('waiting');
      expect(spawnSync('umount', ['-l', m.mnt]).status).toBe(0);
      const code = await Promise.race([done, new Promise((res) => setTimeout(() => res('still hung'), 15_000))]);
      expect(code).not.toBe('still hung');
      expect(code).not.toBe(0);
      expect(await Promise.race([m.exited, new Promise((res) => setTimeout(() => res('still running'), 15_000))])).toBe(0);
    } finally {
      await m.unmount();
    }
  }, 120_000);
});

