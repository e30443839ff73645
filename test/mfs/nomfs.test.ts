// mfsctl nomfs / mfs (openMosix's mosctl): node 3's mfsd (hosting its own /mfs) refuses other
// nodes' access and allows it again. While refusing: new sessions and unary file calls of other
// nodes get EACCES, open sessions of other nodes end and their mounts see the node away (soft: EIO,
// hard: the call waits and finishes after `mfsctl mfs`), node 3's own mount keeps working, `mfsctl
// status` says so, and the state survives a daemon restart. Real daemons (mutual TLS), real mounts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeTestCa, MFSCTL_JS, runNode, type TestCa } from '../harness/mfsd.js';
import { startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';
import { startMfsMount, type MfsMount } from '../harness/mfs-mount.js';
import { code } from '../harness/outcome.js';
import { peerClient } from '../harness/peer-client.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';

let tmp: string;
let ca: TestCa;
let h3: HostingMfsd | undefined;
const mounts: MfsMount[] = [];
const root = { uid: 0, gid: 0, groups: [], pid: process.pid };

beforeAll(async () => {
  tmp = fs.mkdtempSync(join(tmpdir(), 'omfs-nomfs-'));
  ca = await makeTestCa(tmp);
  h3 = await startHostingMfsd({ ca, nodeId: 3, others: [], options: 'cache=3600' });
}, 120_000);

afterAll(async () => {
  for (const m of mounts) await m.unmount();
  await h3?.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

async function mountAs(node: number, options: string): Promise<MfsMount> {
  const m = await startMfsMount({ ca, node, daemons: [h3!.daemon], args: ['-o', options] });
  mounts.push(m);
  return m;
}

const mfsctl = (...args: string[]) => runNode(MFSCTL_JS, [...args, '--config', h3!.daemon.configPath]);

/** cat in its own process (a call that waits must not stall this test's event loop). */
function cat(path: string): { done: Promise<{ code: number | null; out: string; err: string }> } {
  const p = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { done: new Promise((resolve) => p.once('close', (c) => resolve({ code: c, out, err }))) };
}

describe('mfsctl nomfs', () => {
  it('refuses other nodes (their sessions end: soft EIO, hard waits; new ones EACCES), not this node\'s own mount; mfsctl mfs lets them back', async () => {
    const exp = h3!.daemon.exports[0]!.path;
    fs.writeFileSync(join(exp, 'f'), 'node 3 data\n');
    const soft = await mountAs(1, 'soft,timeo=1500');
    const hard = await mountAs(2, 'hard');
    const fresh = await mountAs(4, 'soft,timeo=1500');
    expect(fs.readFileSync(join(soft.mnt, '3', 'f'), 'utf8')).toBe('node 3 data\n');
    expect(fs.readFileSync(join(hard.mnt, '3', 'f'), 'utf8')).toBe('node 3 data\n');

    const r = await mfsctl('nomfs');
    expect(r.code, r.stderr).toBe(0);
    // Nodes 1 and 2 had sessions (a main stream each, and a bulk one).
    expect(Number(/\((\d+) of their session streams ended\)/.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(2);
    expect(h3!.daemon.stderr()).toContain('admin: nomfs');

    // soft: node 3 is away for node 1: EIO after timeo (a name never looked up, so nothing cached answers).
    const softRead = spawnSync('cat', [join(soft.mnt, '3', 'never-seen')], { encoding: 'utf8', timeout: 30_000 });
    expect(softRead.stderr).toContain('Input/output error');
    // hard: node 2's call waits...
    const waiting = cat(join(hard.mnt, '3', 'f2'));
    fs.writeFileSync(join(exp, 'f2'), 'after mfs\n');
    const early = await Promise.race([waiting.done.then(() => 'exited'), new Promise((res) => setTimeout(() => res('waiting'), 2000))]);
    expect(early).toBe('waiting');
    // A node that had no session: refused at once, EACCES.
    const freshRead = spawnSync('ls', [join(fresh.mnt, '3')], { encoding: 'utf8', timeout: 30_000 });
    expect(freshRead.stderr).toContain('Permission denied');
    // A session and a unary file call from another node: EACCES, saying why.
    const creds5 = await nodeCredentials(ca, 5);
    const refused = await openSession(h3!.daemon.address, creds5, 5).then(() => null, (err: unknown) => err as { code: string; message: string });
    expect(refused?.code).toBe('EACCES');
    expect(refused?.message).toContain('mfsctl nomfs');
    const client5 = peerClient(h3!.daemon.address, creds5);
    expect(await code(client5.root(root, exp))).toBe('EACCES');
    client5.close();
    // This node's own mount, in process: untouched.
    fs.writeFileSync(join(h3!.own, 'own-write'), 'still mine\n');
    expect(fs.readFileSync(join(exp, 'own-write'), 'utf8')).toBe('still mine\n');
    expect(fs.readFileSync(join(h3!.own, 'f'), 'utf8')).toBe('node 3 data\n');
    // ...and a unary call with node 3's own certificate passes.
    const cfg = JSON.parse(fs.readFileSync(h3!.daemon.configPath, 'utf8')) as { tls: { cert: string } };
    const own = peerClient(h3!.daemon.address, await ca.credentials(dirname(cfg.tls.cert)));
    expect(await code(own.root(root, exp))).toBe('OK');
    own.close();

    const status = await mfsctl('status');
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/mfs access: nomfs: other nodes refused since \d{4}-/);
    expect(status.stdout).toContain(`mounts hosted by mfsd: ${h3!.mnt}`);

    const back = await mfsctl('mfs');
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('may use this node\'s files again');
    // The hard call finishes on its own once node 3 lets its session back.
    const done = await Promise.race([waiting.done, new Promise<null>((res) => setTimeout(() => res(null), 30_000))]);
    expect(done).toEqual({ code: 0, out: 'after mfs\n', err: '' });
    expect(spawnSync('cat', [join(soft.mnt, '3', 'f')], { encoding: 'utf8', timeout: 30_000 }).stdout).toBe('node 3 data\n');
    expect(fs.readFileSync(join(fresh.mnt, '3', 'f'), 'utf8')).toBe('node 3 data\n');
    expect((await mfsctl('status')).stdout).toContain('mfs access: mfs: open to other nodes');
  }, 120_000);

  it('is kept across an mfsd restart (state dir), until mfsctl mfs', async () => {
    expect((await mfsctl('nomfs')).code).toBe(0);
    expect(fs.existsSync(join(h3!.daemon.stateDir, 'nomfs'))).toBe(true);
    // Restarted with its config (its own mount comes back too).
    await h3!.daemon.restart();
    expect(h3!.daemon.stderr()).toContain('nomfs: other nodes are refused');
    const creds6 = await nodeCredentials(ca, 6);
    expect(await code(openSession(h3!.daemon.address, creds6, 6))).toBe('EACCES');
    expect((await mfsctl('mfs')).code).toBe(0);
    expect(fs.existsSync(join(h3!.daemon.stateDir, 'nomfs'))).toBe(false);
    const s = await openSession(h3!.daemon.address, creds6, 6);
    await s.close();
  }, 90_000);

  it('says what is wrong: bad arguments (exit 2), no daemon on the socket (exit 1)', async () => {
    const extra = await mfsctl('nomfs', 'now');
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('unexpected "now"');
    const nobody = await runNode(MFSCTL_JS, ['mfs', '--socket', join(tmp, 'nobody.sock')]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain(`no mfsd answers on ${join(tmp, 'nobody.sock')}`);
  });
});
