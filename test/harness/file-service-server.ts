// In-process FileService (and its session service) on 127.0.0.1:<random port> with temp exports and a typed client.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileService, type ExportSpec, type FileService } from '../../server/file-service.js';
import { LockTable } from '../../server/locks.js';
import { Peers, type PeerLimits } from '../../server/peers.js';
import { trackConnections } from '../../server/transport.js';
import { FileClient } from '../../proto/file-client.js';

export interface Harness {
  dir: string; stateDir: string; exports: string[]; address: string; client: FileClient; service: FileService;
  server: grpc.Server; locks: LockTable;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  nodeId?: number; exports?: Array<Partial<ExportSpec> & { name: string }>;
  /** Per-peer limits (default: the daemon's defaults). */
  limits?: Partial<PeerLimits>;
}

/** Served as mfsd serves it: per-peer call limit, and a peer released when its connection closes. */
async function serve(service: FileService): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server({ interceptors: [service.peers.interceptor()] });
  trackConnections(server, { onConnectionClosed: (key) => service.peers.end(key), handshakeTimeoutMs: 10_000, maxUnauthenticated: 256 });
  server.addService(service.definition, service.implementation);
  server.addService(service.session.definition, service.session.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, address: `127.0.0.1:${port}` };
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'omfs-fs-'));
  const stateDir = join(dir, 'state');
  const specs: ExportSpec[] = (opts.exports ?? [{ name: 'a' }]).map((e, i) => {
    const path = join(dir, e.name);
    mkdirSync(path, { recursive: true });
    return { path, dfsa: e.dfsa ?? i + 1, readOnly: e.readOnly ?? false, rootSquash: e.rootSquash ?? false };
  });
  // Only the knobs given: the LockTable's defaults stand for the rest.
  const lockLimits = {
    ...(opts.limits?.locksPerPeer !== undefined ? { maxLocksPerPeer: opts.limits.locksPerPeer } : {}),
    ...(opts.limits?.lockWaitersPerPeer !== undefined ? { maxWaitersPerPeer: opts.limits.lockWaitersPerPeer } : {}),
  };
  const locks = new LockTable(lockLimits);
  const nodeId = opts.nodeId ?? 7;
  let service = await createFileService({ nodeId, exports: specs, stateDir, locks, peers: new Peers(opts.limits) });
  let { server, address } = await serve(service);
  const h: Harness = {
    dir, stateDir, exports: specs.map((s) => s.path), address, client: new FileClient(address), service, server, locks,
    async restart() {
      h.server.forceShutdown();
      await h.service.close();
      service = await createFileService({ nodeId, exports: specs, stateDir, locks: new LockTable(lockLimits), peers: new Peers(opts.limits) });
      ({ server, address } = await serve(service));
      h.client.close();
      Object.assign(h, { service, server, address, client: new FileClient(address) });
    },
    async stop() {
      h.client.close();
      h.server.forceShutdown();
      await h.service.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
