// mfsctl calibrate between real daemons: three mfsd under mutual TLS with one openMosix map.
// It measures every other node of the map (or the ones named), shows each node's table and the
// median, writes mfscosts as setcosts does (what getcosts then prints, and what the daemon's
// advisor then prices with), and refuses bad usage. The Probe RPC it uses bounds its payloads.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdvisorConstructor, type AdviseReplyMsg } from '../../proto/advisor.js';
import { loadNodeServiceConstructor, type ProbeReplyMsg } from '../../proto/node.js';
import { MFSCTL_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { statusToErrno } from '../../proto/errno.js';

const errnoOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: grpc.ServiceError) => statusToErrno(e).code);

let root: string;
let ca: TestCa;
const daemons: MfsdHandle[] = [];
const clients: grpc.Client[] = [];

const ctl = (h: MfsdHandle, ...args: string[]) => runNode(MFSCTL_JS, [...args, '--config', h.configPath, '--listen', h.address], 120_000);
const getcosts = async (h: MfsdHandle): Promise<string> => (await runNode(MFSCTL_JS, ['getcosts', '--state-dir', h.stateDir])).stdout;
/** The values of a table row ("after", "node 2", ...) of calibrate's output. */
function row(stdout: string, label: string): number[] | undefined {
  const m = new RegExp(`^${label}\\s+((?:\\d+\\s*){6})$`, 'm').exec(stdout);
  return m?.[1]!.trim().split(/\s+/).map(Number);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'omfs-calibrate-'));
  ca = await makeTestCa(root);
  const mapPath = join(root, 'openmosix.map');
  writeFileSync(mapPath, '# filled in once the daemons have ports\n');
  for (const nodeId of [1, 2, 3]) daemons.push(await startMfsd({ ca, nodeId, config: { map: mapPath, dfsa: { intervalMs: 200 } } }));
  writeFileSync(mapPath, daemons.map((h) => `${h.nodeId} 127.0.0.1:${h.port} 1\n`).join(''));
  const before = daemons.map((h) => h.stderr().length);
  for (const h of daemons) h.proc.kill('SIGHUP');
  await Promise.all(daemons.map((h, i) => waitFor(`node ${h.nodeId} re-reading the map`, () => /SIGHUP: map .*: 3 node\(s\)/.test(h.stderr().slice(before[i])), 10_000)));
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(daemons.map((h) => h.cleanup()));
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('mfsctl calibrate', () => {
  it('--dry-run measures every other node of the map, shows each table and their median, writes nothing', async () => {
    const [one] = daemons;
    const r = await ctl(one!, 'calibrate', '--dry-run', '--reps', '3', '--sizes', '0,64,256');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/calibrating node 1 against nodes 2 \(127\.0\.0\.1:\d+\), 3 \(127\.0\.0\.1:\d+\)/);
    expect(r.stdout).toMatch(/node 2: 18 calls/);
    expect(r.stdout).toMatch(/node 3: 5 new connections/);
    expect(row(r.stdout, 'before')).toEqual([36, 40, 14, 19, 88, 56]);
    const two = row(r.stdout, 'node 2')!;
    const three = row(r.stdout, 'node 3')!;
    const after = row(r.stdout, 'after \\(median\\)')!;
    // The median of two is their mean, rounded.
    expect(after).toEqual(two.map((v, i) => Math.round((v + three[i]!) / 2)));
    expect(r.stdout).toMatch(/median of the 2 nodes' tables/);
    expect(r.stdout).toMatch(/--dry-run: .*mfscosts not changed/);
    expect(await getcosts(one!)).toBe('36 40 14 19 88 56\n');
  }, 120_000);

  it('against one named node writes the table it shows: getcosts prints it and the daemon\'s advisor prices with it', async () => {
    const [, two] = daemons;
    // Real calls between real daemons cost something: a call is never free on either side in all.
    const r = await ctl(two!, 'calibrate', '3', '--reps', '5', '--sizes', '0,16,256,1024');
    expect(r.code, r.stderr).toBe(0);
    const after = row(r.stdout, 'after')!;
    expect(after).toHaveLength(6);
    expect(after[0]! + after[1]!, 'connection, server + client').toBeGreaterThan(0);
    expect(r.stdout).toMatch(/written to .*mfscosts/);
    expect(await getcosts(two!)).toBe(`${after.join(' ')}\n`);
    // The daemon re-reads the table on use: one remote call per second to node 3 costs CONN_S + CONN_C on node 2.
    const advisor = new (loadAdvisorConstructor())(two!.address, await two!.clientCredentials());
    clients.push(advisor);
    const a = await unary<AdviseReplyMsg>(advisor, 'Advise', { profile: { io: [{ node: 3, calls: 1, read_kb: 0, write_kb: 0 }], cpu: 0, dirty_pages: 0, here: 2 } });
    const onTwo = a.advice.ranked.find((n) => n.node === 2);
    expect(onTwo?.io_us).toBeCloseTo(after[0]! + after[1]!, 6);
  }, 120_000);

  it('--connection new puts a new connection\'s cost (TLS handshake included) in the connection fields', async () => {
    const r = await ctl(daemons[0]!, 'calibrate', '2', '--dry-run', '--reps', '3', '--sizes', '0,64', '--connection', 'new');
    expect(r.code, r.stderr).toBe(0);
    const m = /new connection and its first call: server ([\d.]+) µs, client ([\d.]+) µs/.exec(r.stdout);
    expect(row(r.stdout, 'after')!.slice(0, 2)).toEqual([Math.round(Number(m![1])), Math.round(Number(m![2]))]);
    expect(r.stdout).toMatch(/CONN = a new connection/);
  }, 120_000);

  it('refuses bad usage (exit 2) and a node outside the map (exit 1), before measuring', async () => {
    const one = daemons[0]!;
    for (const args of [['--sizes', '0,2048'], ['--sizes', '64'], ['--reps', '1'], ['x'], ['--connection', 'sometimes'], ['--bogus']]) {
      const r = await ctl(one, 'calibrate', '--dry-run', ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/usage: mfsctl calibrate/);
    }
    const r = await ctl(one, 'calibrate', '9', '--dry-run');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/node 9 is not in node 1's map/);
  }, 60_000);
});

describe('NodeService.Probe', () => {
  it('answers the size asked with the daemon\'s CPU time, and refuses more than 1 MiB either way (EINVAL)', async () => {
    const h = daemons[0]!;
    const c = new (loadNodeServiceConstructor())(h.address, await h.clientCredentials());
    clients.push(c);
    const r = await unary<ProbeReplyMsg>(c, 'Probe', { payload: Buffer.alloc(1000), reply_bytes: 5000 });
    expect(r.payload.length).toBe(5000);
    expect(r.received_bytes).toBe(1000);
    expect(Number(r.cpu_user_us) + Number(r.cpu_system_us)).toBeGreaterThan(0);
    const max = 1 << 20;
    expect(await errnoOf(unary(c, 'Probe', { payload: Buffer.alloc(0), reply_bytes: max + 1 }))).toBe('EINVAL');
    expect(await errnoOf(unary(c, 'Probe', { payload: Buffer.alloc(max + 1), reply_bytes: 0 }))).toBe('EINVAL');
    // The daemon is still there.
    expect((await unary<ProbeReplyMsg>(c, 'Probe', { payload: Buffer.alloc(0), reply_bytes: max })).payload.length).toBe(max);
  });

  it('is not answered without a cluster certificate', async () => {
    const h = daemons[0]!;
    const c = new (loadNodeServiceConstructor())(h.address, grpc.credentials.createInsecure());
    clients.push(c);
    expect(await errnoOf(unary(c, 'Probe', { payload: Buffer.alloc(0), reply_bytes: 0 }, 3000))).not.toBe('OK');
  });
});
