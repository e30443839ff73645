// NodeService against a real daemon: Identify reports what the config says, Health is live.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadNodeServiceConstructor, type Health, type IdentifyReply } from '../../proto/node.js';
import { startMfsd, unary, type MfsdHandle } from '../harness/mfsd.js';

let mfsd: MfsdHandle;
let client: grpc.Client;
beforeAll(async () => {
  mfsd = await startMfsd({
    nodeId: 4242,
    exports: [{ name: 'home', dfsa: 3 }, { name: 'scratch', dfsa: 8, readOnly: true, rootSquash: true }, { name: 'plain', dfsa: 0 }],
  });
  const NodeClient = loadNodeServiceConstructor();
  client = new NodeClient(mfsd.address, await mfsd.clientCredentials());
});
afterAll(async () => {
  client?.close();
  await mfsd?.cleanup();
});

describe('NodeService', () => {
  it('Identify returns the node number, version and exports of the config', async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    const r = await unary<IdentifyReply>(client, 'Identify', {});
    expect(r.node).toBe(4242);
    expect(r.version).toBe(pkg.version);
    expect(r.tls).toBe(false);
    expect(r.exports).toEqual([
      { path: join(mfsd.root, 'home'), dfsa: 3, read_only: false, root_squash: false },
      { path: join(mfsd.root, 'scratch'), dfsa: 8, read_only: true, root_squash: true },
      { path: join(mfsd.root, 'plain'), dfsa: 0, read_only: false, root_squash: false },
    ]);
    expect(mfsd.readyLine).toContain(`exports: ${join(mfsd.root, 'home')}:dfsa=3, ${join(mfsd.root, 'scratch')}:dfsa=8:ro:root_squash, ${join(mfsd.root, 'plain')}`);
  });

  it('Health reports uptime that grows, three load averages and the machine size', async () => {
    const a = await unary<Health>(client, 'Health', {});
    await new Promise((r) => setTimeout(r, 50));
    const b = await unary<Health>(client, 'Health', {});
    expect(b.uptime_seconds).toBeGreaterThan(a.uptime_seconds);
    expect(a.load_average).toHaveLength(3);
    expect(a.cpu_count).toBe(cpus().length);
    expect(BigInt(a.total_memory_bytes)).toBeGreaterThan(BigInt(a.free_memory_bytes));
  });
});
