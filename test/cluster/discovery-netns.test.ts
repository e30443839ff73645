// Discovery on the LAN (cluster/discovery.ts, config "discovery"), as openMosix's omdiscd: three
// machines in network namespaces on one bridged LAN, a map that names node 1 only, and multicast
// announcements on 239.77.0.1; a fourth machine runs a standalone mfs-mount that only listens
// (-o discovery=). Each /mfs comes to list the three nodes, files cross between nodes known only
// by discovery, a node stopped cleanly leaves at once (its goodbye), and one
// killed leaves once it has been silent for the configured number of intervals.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa } from '../harness/mfsd.js';
import { startNsDaemon, startNsMount, type NsDaemon, type NsMount } from '../harness/netns-mfsd.js';
import { createLan, execInAsync, netnsAvailable, type Lan } from '../harness/netns.js';
import { waitFor } from '../harness/outcome.js';

const canRun = netnsAvailable();
let tmp: string;
let lan: Lan | undefined;
const daemons: NsDaemon[] = [];
/** Node 4: a mount without a daemon, listening. */
let listener: NsMount | undefined;
/** Announcements every INTERVAL_MS; a node silent for MISSED of them has left: 15 s. */
const INTERVAL_MS = 500;
const MISSED = 30;

beforeAll(async () => {
  if (!canRun) return;
  tmp = mkdtempSync(join(tmpdir(), 'omfs-discovery-'));
  lan = createLan(4);
  const ca = await makeTestCa(tmp);
  const mapFile = join(tmp, 'openmosix.map');
  writeFileSync(mapFile, '1 10.77.0.1 1   # the others are found on the LAN\n');
  for (const net of lan.nodes.slice(0, 3)) {
    daemons.push(await startNsDaemon({
      ca, nodeId: net.index, net, root: join(tmp, `node${net.index}`), mapFile,
      config: { discovery: { group: '239.77.0.1:7118', intervalMs: INTERVAL_MS, missed: MISSED, interface: net.address } },
    }));
  }
  const net4 = lan.nodes[3]!;
  listener = await startNsMount({ ca, nodeId: 4, net: net4, root: join(tmp, 'node4'), mapFile, options: `soft,timeo=5000,discovery=239.77.0.1:7118,discovery_if=${net4.address}` });
}, 120_000);

afterAll(async () => {
  await listener?.stop();
  await Promise.all(daemons.map((d) => d.stop()));
  lan?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const on = (k: number): NsDaemon => daemons[k - 1]!;

/** The node numbers `d`'s /mfs lists. */
async function listed(d: { pid: number; mnt: string }): Promise<string[]> {
  const r = await execInAsync(d.pid, 'ls', [d.mnt]);
  return r.stdout.split('\n').filter((n) => /^\d+$/.test(n));
}

describe.skipIf(!canRun)('discovery by multicast in three network namespaces', () => {
  it('brings every node into every node\'s /mfs, the map naming only node 1', async () => {
    for (const d of daemons) {
      await waitFor(`node ${d.nodeId} lists 1,2,3 (log:\n${d.log()})`, async () => (await listed(d)).join() === '1,2,3', 30_000, 200);
    }
    expect(on(1).log()).toMatch(/discovery: heard 2@10\.77\.0\.2:7117, 3@10\.77\.0\.3:7117/);
    // The listener is no member (it announces nothing) but mounts every node it heard.
    await waitFor(`the listener lists 1,2,3 (output:\n${listener!.output()})`, async () => (await listed(listener!)).join() === '1,2,3', 30_000, 200);
  });

  it('carries files between nodes known only by discovery', async () => {
    const w = await execInAsync(on(2).pid, 'sh', ['-c', `echo found > ${join(on(2).mnt, '3', 'from-2')}`]);
    expect(w.status, w.stderr).toBe(0);
    expect(readFileSync(join(on(3).exportDir, 'from-2'), 'utf8')).toBe('found\n');
    const r = await execInAsync(on(1).pid, 'cat', [join(on(1).mnt, '3', 'from-2')]);
    expect(r.stdout).toBe('found\n');
    const l = await execInAsync(listener!.pid, 'cat', [join(listener!.mnt, '3', 'from-2')]);
    expect(l.stdout, l.stderr).toBe('found\n');
  });

  it('drops a node that stops cleanly at its goodbye, well before its silence would', async () => {
    expect(await on(2).stop('SIGTERM')).toBe(0);
    const since = Date.now();
    await waitFor('nodes 1, 3 and the listener drop node 2', async () =>
      (await listed(on(1))).join() === '1,3' && (await listed(on(3))).join() === '1,3' && (await listed(listener!)).join() === '1,3', 30_000, 100);
    expect(Date.now() - since).toBeLessThan((INTERVAL_MS * MISSED) / 2);
  });

  it('drops a node killed without a goodbye once it has been silent for the configured intervals', async () => {
    await on(3).stop('SIGKILL');
    await waitFor('node 1 and the listener drop node 3', async () => (await listed(on(1))).join() === '1' && (await listed(listener!)).join() === '1', 60_000, 200);
    // Node 1 came from the map and stays; the others were discovery's only.
    expect(on(1).log()).toMatch(/discovery: no other node heard; cluster 1/);
  });
});
