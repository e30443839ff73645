// Issue 10, "nodes in three network namespaces, each with its own address from the map file,
// mounting each other": three machines on one LAN (10.77.0.0/24 through a bridge), each running
// an mfsd that hosts its /mfs mount, all reading one map file. Node 3's first map address is on an
// interface no other node can route to (a second network of its own): it is reached through its
// ALIAS line only. Every node writes into every other node's export through its own /mfs, and
// reads what the others wrote.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa } from '../harness/mfsd.js';
import { startNsDaemon, type NsDaemon } from '../harness/netns-mfsd.js';
import { addUnreachableAddress, createLan, execIn, execInAsync, execNs, netnsAvailable, type Lan } from '../harness/netns.js';

const canRun = netnsAvailable();
let tmp: string;
let lan: Lan | undefined;
const daemons: NsDaemon[] = [];

const MAP = `# three machines on 10.77.0.0/24
1 10.77.0.1 2        # nodes 1 and 2: .1 and .2
3 10.99.0.3 1        # node 3's first address: a network only node 3 is on
3 10.77.0.3 ALIAS    # ... so the others reach it here
`;

beforeAll(async () => {
  if (!canRun) return;
  tmp = mkdtempSync(join(tmpdir(), 'omfs-netns-'));
  lan = createLan(3);
  addUnreachableAddress(lan.nodes[2]!, '10.99.0.3');
  const ca = await makeTestCa(tmp);
  const mapFile = join(tmp, 'openmosix.map');
  writeFileSync(mapFile, MAP);
  for (const net of lan.nodes) {
    const hosts = net.index === 3 ? ['10.99.0.3', net.address] : [net.address];
    daemons.push(await startNsDaemon({ ca, nodeId: net.index, net, root: join(tmp, `node${net.index}`), mapFile, hosts }));
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  lan?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const on = (k: number): NsDaemon => daemons[k - 1]!;

describe.skipIf(!canRun)('three nodes in three network namespaces', () => {
  it('puts each node on its own address, and node 3\'s first map address out of the others\' reach', () => {
    for (const d of daemons) {
      expect(execNs(d.net, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']).stdout).toContain(`inet ${d.net.address}/24`);
    }
    // No route from node 1 to node 3's first address: only the ALIAS can carry the connection.
    const route = execNs(on(1).net, 'ip', ['route', 'get', '10.99.0.3']);
    expect(route.status).not.toBe(0);
    expect(route.stderr).toMatch(/unreachable/i);
  });

  it('lists the map\'s nodes in every node\'s /mfs', () => {
    for (const d of daemons) {
      const ls = execIn(d.pid, 'ls', [d.mnt]);
      expect(ls.status, ls.stderr).toBe(0);
      expect(ls.stdout.split('\n').filter((n) => /^\d+$/.test(n))).toEqual(['1', '2', '3']);
    }
  });

  it('lets every node write into every other node\'s export through its own /mfs, node 3 through its alias', async () => {
    for (const writer of daemons) {
      for (const owner of daemons) {
        if (owner === writer) continue;
        const path = join(writer.mnt, String(owner.nodeId), `from-${writer.nodeId}`);
        // Async: the daemons are processes of their own, but a blocked event loop would stall the test's timers.
        const w = await execInAsync(writer.pid, 'sh', ['-c', `printf 'node %s wrote this' ${writer.nodeId} > ${path}`]);
        expect(w.status, `node ${writer.nodeId} writing on node ${owner.nodeId}: ${w.stderr}\n${writer.log()}`).toBe(0);
        // On the owner's disk, bare.
        expect(readFileSync(join(owner.exportDir, `from-${writer.nodeId}`), 'utf8')).toBe(`node ${writer.nodeId} wrote this`);
      }
    }
  });

  it('shows each node what the others wrote on a third node', async () => {
    for (const reader of daemons) {
      for (const owner of daemons) {
        for (const writer of daemons) {
          if (writer === owner || reader === writer) continue;
          const r = await execInAsync(reader.pid, 'cat', [join(reader.mnt, String(owner.nodeId), `from-${writer.nodeId}`)]);
          expect(r.status, r.stderr).toBe(0);
          expect(r.stdout).toBe(`node ${writer.nodeId} wrote this`);
        }
      }
    }
  });

  it('sees a file renamed on one node renamed on the others at once (callbacks cross the namespaces)', async () => {
    const mv = await execInAsync(on(1).pid, 'mv', [join(on(1).mnt, '3', 'from-2'), join(on(1).mnt, '3', 'moved-by-1')]);
    expect(mv.status, mv.stderr).toBe(0);
    const ls = await execInAsync(on(2).pid, 'ls', [join(on(2).mnt, '3')]);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual(['from-1', 'moved-by-1']);
  });
});
