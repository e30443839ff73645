// DFSA between real daemons: three mfsd under mutual TLS with one openMosix map learn each
// other's loads by gossip, mfsctl shows the views (getload, whois, status), gossip without a
// cluster certificate is refused, and the Advisor served by a daemon ranks nodes for an explicit
// profile with the cost tables of its state directory as mfsctl setcosts leaves them.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdvisorConstructor, type AdviseReplyMsg } from '../../proto/advisor.js';
import { loadNodeServiceConstructor, type LoadReplyMsg } from '../../proto/node.js';
import { MFSCTL_JS, MFSD_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';

const INTERVAL_MS = 200;
let root: string;
let ca: TestCa;
let mapPath: string;
const daemons: MfsdHandle[] = [];
const clients: grpc.Client[] = [];

const ctl = (h: MfsdHandle, ...args: string[]) => runNode(MFSCTL_JS, [...args, '--config', h.configPath, '--listen', h.address]);

/** Waits until `pred` holds, polling; fails with the last value after `ms`. */
async function eventually<T>(what: string, get: () => Promise<T>, pred: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes the map, SIGHUPs every daemon and waits until each says it re-read it. */
async function applyMap(text: string, expectLine: RegExp): Promise<void> {
  writeFileSync(mapPath, text);
  const before = daemons.map((h) => h.stderr().length);
  for (const h of daemons) h.proc.kill('SIGHUP');
  await Promise.all(daemons.map((h, i) => eventually(`node ${h.nodeId} SIGHUP`, async () => `${h.stderr().slice(before[i])} [${h.proc.exitCode}/${h.proc.signalCode}] ${h.stderr()}`, (s) => expectLine.test(s), 10_000)));
}

/** node -> age in seconds, from `mfsctl getload` output. */
function loadRows(stdout: string): Map<number, number> {
  const rows = new Map<number, number>();
  for (const m of stdout.matchAll(/^(\d+)\*?\s+[\d.]+\s+\d+\s+[\d.]+\s+\d+\s+[\d.]+\s+[\d.]+\s+([\d.]+) s$/gm)) rows.set(Number(m[1]), Number(m[2]));
  return rows;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'omfs-node-dfsa-'));
  ca = await makeTestCa(root);
  mapPath = join(root, 'openmosix.map');
  // Ports are the kernel's choice: start with an empty map (a node alone), then write the real one.
  writeFileSync(mapPath, '# filled in once the daemons have ports\n');
  for (const nodeId of [1, 2, 3]) {
    daemons.push(await startMfsd({ ca, nodeId, config: { map: mapPath, dfsa: { intervalMs: INTERVAL_MS } } }));
  }
  await applyMap(daemons.map((h) => `${h.nodeId} 127.0.0.1:${h.port} 1\n`).join(''), /SIGHUP: map .*: 3 node\(s\)\n/);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(daemons.map((h) => h.cleanup()));
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('load dissemination between mfsd daemons', () => {
  it('each daemon learns the loads of the other two within a few intervals (mfsctl getload)', async () => {
    for (const h of daemons) {
      const r = await eventually(`getload on node ${h.nodeId}`, () => ctl(h, 'getload'), (r) => r.code === 0 && loadRows(r.stdout).size === 3);
      const rows = loadRows(r.stdout);
      expect([...rows.keys()].sort()).toEqual([1, 2, 3]);
      expect(r.stdout).toMatch(new RegExp(`^${h.nodeId}\\* `, 'm'));
      // Reports are refreshed every interval by gossip: none is more than a few intervals old
      // (10 intervals = 2 s: generous for a loaded machine).
      for (const [node, age] of rows) expect(age, `node ${node}'s report on node ${h.nodeId}`).toBeLessThanOrEqual((10 * INTERVAL_MS) / 1000);
    }
    const one = await ctl(daemons[0]!, 'getload', '3');
    expect(one.code).toBe(0);
    expect([...loadRows(one.stdout).keys()]).toEqual([3]);
    const unknown = await ctl(daemons[0]!, 'getload', '9');
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toContain('node 9 is not in the map');
  });

  it('gossip from a client without a cluster certificate is refused; a certified peer is heard', async () => {
    const h = daemons[0]!;
    const NodeClient = loadNodeServiceConstructor();
    const report = (node: number) => ({ from: node, reports: [{ node, load: 0.5, cpus: 1, speed: 1, free_mem_kb: 1, read_kbps: 0, write_kbps: 0, age_ms: 0 }] });
    const other = await makeTestCa(join(root, 'other'));
    const foreign = new NodeClient(h.address, await other.credentials(await other.issue('node40')));
    // Trusts the cluster CA but shows no certificate of its own.
    const noCert = new NodeClient(h.address, grpc.credentials.createSsl(readFileSync(join(ca.dir, 'ca.crt'))));
    const plain = new NodeClient(h.address, grpc.credentials.createInsecure());
    const certified = new NodeClient(h.address, await nodeCredentials(ca, 41));
    clients.push(foreign, noCert, plain, certified);
    await expect(unary(foreign, 'Gossip', report(40), 3000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(unary(noCert, 'Gossip', report(42), 3000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(unary(plain, 'Gossip', report(43), 3000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await unary(certified, 'Gossip', report(41));
    const view = await unary<LoadReplyMsg>(certified, 'Load', { node: 0, local_only: true });
    const nodes = view.reports.map((r) => r.node);
    expect(nodes).toContain(41);
    for (const refused of [40, 42, 43]) expect(nodes).not.toContain(refused);
    // A malformed report is refused whole.
    await expect(unary(certified, 'Gossip', { from: 41, reports: [{ ...report(44).reports[0], load: -1 }] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });
});

describe('mfsctl whois and status', () => {
  it('whois N: the address of the map, state, exports with DFSA indexes, sessions', async () => {
    const [h1, h2] = [daemons[0]!, daemons[1]!];
    const r = await ctl(h1, 'whois', '2');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^node 2: up$/m);
    expect(r.stdout).toMatch(new RegExp(`^  addresses  127\\.0\\.0\\.1:${h2.port}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^  exports    ${h2.exports[0]!.path}:dfsa=1$`, 'm'));
    expect(r.stdout).toMatch(/^  tls        yes$/m);
    expect(r.stdout).toMatch(/^  sessions   0 live, 0 held$/m);
    // A session open on node 2 is counted (Health.sessions).
    const session = await openSession(h2.address, await nodeCredentials(ca, 7), 7);
    try {
      expect((await ctl(h1, 'whois', '2')).stdout).toMatch(/^  sessions   1 live, 1 held$/m);
    } finally {
      await session.close();
    }
    const self = await ctl(h1, 'whois', '1');
    expect(self.stdout).toMatch(/^node 1 \(this node\): up$/m);
    const absent = await ctl(h1, 'whois', '7');
    expect(absent).toMatchObject({ code: 1 });
    expect(absent.stderr).toContain('node 7 is not in the map');
    expect((await ctl(h1, 'whois')).code).toBe(2);
  });

  it('status: every node of the map up with address, sessions and exports, then this node\'s load view', async () => {
    const h1 = daemons[0]!;
    const r = await ctl(h1, 'status');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`node 1, map ${mapPath}: 3 node(s), 3 up\n`);
    for (const h of daemons) {
      expect(r.stdout).toMatch(new RegExp(`^${h.nodeId}\\*?\\s+up\\s+127\\.0\\.0\\.1:${h.port}\\s+0\\s+${h.exports[0]!.path}:dfsa=1$`, 'm'));
    }
    expect(r.stdout).toContain('loads known to node 1:\n');
    expect(loadRows(r.stdout.slice(r.stdout.indexOf('loads known'))).size).toBeGreaterThanOrEqual(3);
  });
});

describe('the Advisor served by mfsd', () => {
  const advise = async (h: MfsdHandle, profile: object): Promise<AdviseReplyMsg> => {
    const Advisor = loadAdvisorConstructor();
    const client = new Advisor(h.address, await nodeCredentials(ca, 1));
    clients.push(client);
    return unary<AdviseReplyMsg>(client, 'Advise', { profile });
  };
  const heavyFrom3 = { io: [{ node: 3, calls: 200, read_kb: 50_000, write_kb: 0 }], cpu: 0.2, dirty_pages: 0, here: 0 };

  it('over mutual TLS, ranks node 3 first for heavy reads from node 3, priced with the default mfscosts', async () => {
    const { advice } = await advise(daemons[0]!, heavyFrom3);
    expect(advice).toMatchObject({ here: 1, move: true, to: 3 });
    expect(advice.ranked.map((n) => n.node).sort()).toEqual([1, 2, 3]);
    expect(advice.ranked[0]).toMatchObject({ node: 3, io_us: 0 });
    // Remote I/O from node 1: (36+40) per call, (14+19) per KB read.
    expect(advice.ranked.find((n) => n.node === 1)!.io_us).toBe(200 * 76 + 50_000 * 33);
  });

  it('uses the costs mfsctl setcosts writes to the state directory, without a restart', async () => {
    const h = daemons[0]!;
    const set = await runNode(MFSCTL_JS, ['setcosts', '1', '2', '3', '4', '5', '6', '--state-dir', h.stateDir]);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    const { advice } = await advise(h, heavyFrom3);
    expect(advice.ranked.find((n) => n.node === 1)!.io_us).toBe(200 * (1 + 2) + 50_000 * (3 + 4));
    expect(advice.ranked[0]!.node).toBe(3);
    // A table file that stops parsing (edited by hand) is not taken: the last good one stays,
    // the daemon says why, and nothing falls back to defaults nobody chose.
    const before = h.stderr().length;
    writeFileSync(join(h.stateDir, 'mfscosts'), '1 2 3 4 5\n');
    const kept = await advise(h, heavyFrom3);
    expect(kept.advice.ranked.find((n) => n.node === 1)!.io_us).toBe(200 * (1 + 2) + 50_000 * (3 + 4));
    // (stderr travels on its own pipe: it may arrive after the reply)
    const said = await eventually('the refusal on stderr', async () => h.stderr().slice(before), (s) => s.includes('keeping'));
    expect(said).toContain(`dfsa: ${join(h.stateDir, 'mfscosts')}: `);
    expect(said).toContain('keeping 1 2 3 4 5 6');
    // Reports of nodes outside the map (node 41, heard from a certified peer above) are never advised.
    expect(kept.advice.ranked.map((n) => n.node)).not.toContain(41);
  });
});

describe('a node outside the window, the map on SIGHUP, a node down', () => {
  it('a daemon that has heard nobody asks the data node directly (Advise, getload N)', async () => {
    // Node 4 knows nodes 2 and 3 from its own map but never gossips (its first interval is an
    // hour away) and nobody gossips to it: its window is empty.
    const lonelyMap = join(root, 'lonely.map');
    writeFileSync(lonelyMap, '# node 4 is added below\n');
    const h4 = await startMfsd({ ca, nodeId: 4, config: { map: lonelyMap, dfsa: { intervalMs: 3_600_000 } } });
    daemons.push(h4);
    writeFileSync(lonelyMap, [2, 3, 4].map((n) => `${n} 127.0.0.1:${daemons[n - 1]!.port} 1\n`).join(''));
    const before = h4.stderr().length;
    h4.proc.kill('SIGHUP');
    await eventually('node 4 SIGHUP', async () => `${h4.stderr().slice(before)} (exit ${h4.proc.exitCode}/${h4.proc.signalCode}; all: ${h4.stderr()})`, (s) => /SIGHUP: map .*: 3 node\(s\)/.test(s));
    expect(loadRows((await ctl(h4, 'getload')).stdout).size).toBe(1);
    const Advisor = loadAdvisorConstructor();
    const client = new Advisor(h4.address, await nodeCredentials(ca, 1));
    clients.push(client);
    const { advice } = await unary<AdviseReplyMsg>(client, 'Advise', { profile: { io: [{ node: 3, calls: 200, read_kb: 50_000, write_kb: 0 }], cpu: 0.2, dirty_pages: 0, here: 0 } });
    expect(advice).toMatchObject({ here: 4, move: true, to: 3 });
    const r = await ctl(h4, 'getload', '2');
    expect(r.code).toBe(0);
    expect([...loadRows(r.stdout).keys()]).toEqual([2]);
    expect(r.stdout).toContain("(node 2 was not in node 4's window: asked directly)");
  });

  it('a bad map on SIGHUP is refused naming file:line, the old one stays; a bad map at start is exit 2', async () => {
    const trio = daemons.slice(0, 3);
    writeFileSync(mapPath, `1 127.0.0.1:${trio[0]!.port} 1\n2 not_a_host! 1\n`);
    const before = trio.map((h) => h.stderr().length);
    for (const h of trio) h.proc.kill('SIGHUP');
    for (const [i, h] of trio.entries()) {
      const said = await eventually(`node ${h.nodeId} SIGHUP`, async () => h.stderr().slice(before[i]), (s) => s.includes('keeping'));
      expect(said).toContain(`SIGHUP: ${mapPath}:2: `);
      expect(said).toContain('keeping the map in use (3 node(s))');
    }
    expect((await ctl(trio[0]!, 'status')).stdout).toContain('3 node(s), 3 up');

    const dir = mkdtempSync(join(root, 'badstart-'));
    const config = join(dir, 'mfsd.json');
    writeFileSync(config, JSON.stringify({ node: 1, listen: '127.0.0.1:0', stateDir: join(dir, 'state'), exports: [{ path: dir }], insecure: true, map: mapPath }));
    const r = await runNode(MFSD_JS, ['--config', config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mfsd: ${mapPath}:2: `);
  });

  it('status shows a stopped node down, the others up', async () => {
    const h3 = daemons[2]!;
    await h3.stop();
    const r = await ctl(daemons[0]!, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('3 node(s), 2 up');
    expect(r.stdout).toMatch(new RegExp(`^3\\s+down\\s+127\\.0\\.0\\.1:${h3.port}\\s+-\\s+\\S`, 'm'));
    const w = await ctl(daemons[0]!, 'whois', '3');
    expect(w.stdout).toMatch(/^node 3: down \(.+\)$/m);
  });
});
