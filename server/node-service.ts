// NodeService handlers: identity (node number, version, exports), health (uptime, load,
// sessions), load dissemination from peers (Gossip), this node's load view (Load) and the map's
// nodes as they answer (Cluster). The last three need the daemon's DFSA side (dfsa-node.ts) and
// map (load-cluster.ts); without them they answer ENOSYS.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, freemem, hostname, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errno, errnoToStatus } from '../proto/errno.js';
import {
  loadNodeServiceConstructor, type ClusterReplyMsg, type ClusterRequestMsg, type Health, type IdentifyReply,
  type LoadMessageMsg, type LoadReplyMsg, type LoadRequestMsg, type NodeStatusMsg, type ProbeReplyMsg, type ProbeRequestMsg,
  type ProcessesReplyMsg,
} from '../proto/node.js';
import type { DfsaNode } from './dfsa-node.js';
import type { ExportSpec } from './file-service.js';
import { callNode, type ClusterView } from './load-cluster.js';

export interface NodeServiceOptions {
  nodeId: number;
  exports: ExportSpec[];
  tls: boolean;
  startedAt?: number;
  /** Sessions with a live stream, and held (live or away). */
  sessions?: () => { live: number; held: number };
  dfsa?: DfsaNode;
  cluster?: ClusterView;
}
export interface NodeService { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }

/** The largest Probe payload either way (mfsctl calibrate sends at most this): anything larger is EINVAL. */
export const MAX_PROBE_BYTES = 1 << 20;
/** What a Probe reply is cut from: filled once (random, so nothing on the way could shrink it). */
let probeBytes: Buffer | undefined;

/** How long `mfsctl status` waits for each node's Identify. */
const IDENTIFY_DEADLINE_MS = 3000;

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

/** Runs `fn` and answers with its value, or with its errno. */
function answer<T>(cb: grpc.sendUnaryData<T>, fn: () => T | Promise<T>): void {
  Promise.resolve().then(fn).then((v) => cb(null, v), (err: unknown) => cb(errnoToStatus(err)));
}

export function createNodeService(o: NodeServiceOptions): NodeService {
  const startedAt = o.startedAt ?? Date.now();
  const version = omfsVersion();
  const health = (): Health => {
    const s = o.sessions?.() ?? { live: 0, held: 0 };
    return {
      uptime_seconds: (Date.now() - startedAt) / 1000,
      load_average: loadavg(),
      free_memory_bytes: String(freemem()),
      total_memory_bytes: String(totalmem()),
      cpu_count: cpus().length,
      sessions: s.live,
      sessions_held: s.held,
    };
  };
  const identify = (): IdentifyReply => ({
    node: o.nodeId,
    version,
    exports: o.exports.map((e) => ({ path: e.path, dfsa: e.dfsa, read_only: e.readOnly, root_squash: e.rootSquash })),
    hostname: hostname(),
    tls: o.tls,
    health: health(),
  });
  const need = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Errno('ENOSYS', 'this daemon runs without DFSA');
    return x;
  };
  const status = async (cluster: ClusterView, node: number): Promise<NodeStatusMsg> => {
    const addresses = cluster.addresses(node);
    if (node === o.nodeId) return { node, addresses, up: true, error: '', identity: identify() };
    const client = cluster.client(node);
    if (!client) return { node, addresses, up: false, error: 'not in the map', identity: null };
    try {
      const identity = await callNode<IdentifyReply>(client, 'Identify', {}, IDENTIFY_DEADLINE_MS);
      // Another daemon at that address is no answer from this node.
      if (identity.node !== node) return { node, addresses, up: false, error: `${addresses[0]} answers as node ${identity.node}`, identity };
      return { node, addresses, up: true, error: '', identity };
    } catch (err) {
      return { node, addresses, up: false, error: (err as grpc.ServiceError).details ?? String(err), identity: null };
    }
  };
  const probe = (call: grpc.ServerUnaryCall<ProbeRequestMsg, ProbeReplyMsg>): ProbeReplyMsg => {
    if (o.tls && !call.getAuthContext()?.sslPeerCertificate) throw new Errno('EACCES', 'probes are answered only for holders of a cluster certificate');
    const { payload, reply_bytes: want } = call.request;
    if (payload.length > MAX_PROBE_BYTES || !(want >= 0 && want <= MAX_PROBE_BYTES)) {
      throw new Errno('EINVAL', `a probe sends and asks for at most ${MAX_PROBE_BYTES} bytes`);
    }
    probeBytes ??= randomBytes(MAX_PROBE_BYTES);
    const cpu = process.cpuUsage();
    return { payload: probeBytes.subarray(0, want), cpu_user_us: cpu.user, cpu_system_us: cpu.system, received_bytes: payload.length };
  };
  const implementation: grpc.UntypedServiceImplementation = {
    Identify: (_call: grpc.ServerUnaryCall<unknown, IdentifyReply>, cb: grpc.sendUnaryData<IdentifyReply>) => cb(null, identify()),
    Health: (_call: grpc.ServerUnaryCall<unknown, Health>, cb: grpc.sendUnaryData<Health>) => cb(null, health()),
    Gossip: (call: grpc.ServerUnaryCall<LoadMessageMsg, object>, cb: grpc.sendUnaryData<object>) => answer(cb, () => {
      // The TLS handshake already refused callers without a cluster certificate; this holds
      // even if the server's credentials were ever relaxed.
      if (o.tls && !call.getAuthContext()?.sslPeerCertificate) throw new Errno('EACCES', 'load reports are taken only from holders of a cluster certificate');
      need(o.dfsa).receive(call.request);
      return {};
    }),
    Load: (call: grpc.ServerUnaryCall<LoadRequestMsg, LoadReplyMsg>, cb: grpc.sendUnaryData<LoadReplyMsg>) => answer(cb, () => {
      const dfsa = need(o.dfsa);
      return call.request.node === 0 ? dfsa.view() : dfsa.load(call.request.node, call.request.local_only);
    }),
    Cluster: (call: grpc.ServerUnaryCall<ClusterRequestMsg, ClusterReplyMsg>, cb: grpc.sendUnaryData<ClusterReplyMsg>) => answer(cb, async () => {
      const cluster = need(o.cluster);
      const wanted = call.request.node;
      if (wanted !== 0 && !cluster.has(wanted) && wanted !== o.nodeId) throw new Errno('ENOENT', `node ${wanted} is not in the map`);
      // This node is listed even when the map lacks it (a node alone).
      const nodes = wanted !== 0 ? [wanted] : [...new Set([...cluster.nodes(), o.nodeId])].sort((a, b) => a - b);
      return { self: o.nodeId, map: cluster.path ?? '', nodes: await Promise.all(nodes.map((n) => status(cluster, n))) };
    }),
    Probe: (call: grpc.ServerUnaryCall<ProbeRequestMsg, ProbeReplyMsg>, cb: grpc.sendUnaryData<ProbeReplyMsg>) => answer(cb, () => probe(call)),
    Processes: (_call: grpc.ServerUnaryCall<unknown, ProcessesReplyMsg>, cb: grpc.sendUnaryData<ProcessesReplyMsg>) => answer(cb, () => need(o.dfsa).processes()),
  };
  return { definition: loadNodeServiceConstructor().service, implementation };
}
