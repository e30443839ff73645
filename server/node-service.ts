// NodeService handlers: identity (node number, version, exports) and health (uptime, load).
import * as grpc from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, freemem, hostname, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNodeServiceConstructor, type Health, type IdentifyReply } from '../proto/node.js';
import type { ExportSpec } from './file-service.js';

export interface NodeServiceOptions { nodeId: number; exports: ExportSpec[]; tls: boolean; startedAt?: number }
export interface NodeService { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }

/** The omfs version from the package.json above this file (found from src/ and from dist/). */
export function omfsVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'omfs' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export function createNodeService(o: NodeServiceOptions): NodeService {
  const startedAt = o.startedAt ?? Date.now();
  const version = omfsVersion();
  const health = (): Health => ({
    uptime_seconds: (Date.now() - startedAt) / 1000,
    load_average: loadavg(),
    free_memory_bytes: String(freemem()),
    total_memory_bytes: String(totalmem()),
    cpu_count: cpus().length,
  });
  const identify = (): IdentifyReply => ({
    node: o.nodeId,
    version,
    exports: o.exports.map((e) => ({ path: e.path, dfsa: e.dfsa, read_only: e.readOnly, root_squash: e.rootSquash })),
    hostname: hostname(),
    tls: o.tls,
    health: health(),
  });
  const implementation: grpc.UntypedServiceImplementation = {
    Identify: (_call: grpc.ServerUnaryCall<unknown, IdentifyReply>, cb: grpc.sendUnaryData<IdentifyReply>) => cb(null, identify()),
    Health: (_call: grpc.ServerUnaryCall<unknown, Health>, cb: grpc.sendUnaryData<Health>) => cb(null, health()),
  };
  return { definition: loadNodeServiceConstructor().service, implementation };
}
