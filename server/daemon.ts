// mfsd lifecycle: check everything that can be wrong before serving, then bind; on stop, drain
// in-flight calls for a bounded grace period, cancel the rest, close the file service.
// A failed start undoes what it did, so no half-started daemon is left behind.
// Limits (config "limits"): per peer through Peers (open files, calls in flight) and the LockTable
// (locks, waiters); before authentication through transport.ts (handshake deadline, cap). A peer
// is released when its connection closes; a session's when its lease expires (server/session.ts).
import * as grpc from '@grpc/grpc-js';
import { stat } from 'node:fs/promises';
import { formatListen, type MfsdConfig } from './config.js';
import { DfsaNode } from './dfsa-node.js';
import { runMount, runSocket } from './run-config.js';
import { RunService } from './run-service.js';
import { createFileService, type FileService } from './file-service.js';
import { LockTable } from './locks.js';
import { MfsAccess } from './mfs-access.js';
import { mkdirp } from './mkdirp.js';
import { createNodeService } from './node-service.js';
import { processIoHandlers } from './process-io.js';
import { applyProcessIo, type ProcessIoBatch } from '../dfsa/process-stats.js';
import { ClusterView, readClusterMap } from './load-cluster.js';
import type { Discovery } from '../cluster/discovery.js';
import { startDiscovery } from './discovery-node.js';
import { Peers } from './peers.js';
import { countRpcs, omfs, registry, serveMetrics, type MetricsServer } from './metrics.js';
import * as sys from '../sys/index.js';
import type { LocalNode } from '../proto/node-link.js';
import { clientCredentials, readTlsMaterial, serverCredentials, type TlsMaterial } from './tls.js';
import { trackConnections } from './transport.js';

/** Why mfsd could not start; `exitCode` is 2 for a config the admin must fix, 1 otherwise. */
export class StartupError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface RunningDaemon {
  /** The bound port (the real one when the config asked for port 0). */
  port: number;
  /** HOST:PORT clients can dial. */
  address: string;
  /** The one line printed when ready. */
  readyLine: string;
  /** Stop accepting, drain, cancel what is left after the grace period, close; resolves when done. */
  stop(graceMs?: number): Promise<void>;
  /** Re-read the map (SIGHUP): the line to log; a bad map leaves the old one in use and says so. */
  reloadMap(): Promise<string>;
  /**
   * This node as a mount hosted by this process reaches it: its exports (as Identify lists them)
   * and links that run the file service's operations in process, callbacks included.
   */
  localNode: LocalNode;
  /** What this daemon dials other nodes with: its own certificate (node<N>), or plaintext when it serves insecure. */
  clientCredentials: grpc.ChannelCredentials;
  /** The TLS material behind clientCredentials (null: insecure): a hosted mount's sessions go raw with it. */
  tlsMaterial: TlsMaterial | null;
  /** Whether other nodes may use this node's files now (mfsctl nomfs / mfs). */
  access: MfsAccess;
  /** Per-process I/O of a mount hosted by this process, into the advisor's statistics (dfsa/process-stats.ts). */
  reportProcessIo(batch: ProcessIoBatch): void;
  /** Discovery on the LAN (config "discovery"), null when off: its 'change' events say the cluster changed. */
  discovery: Discovery | null;
  /** mfsrun's jobs (server/run-service.ts); homeOf(pid) is the home node of a job running here, for /mfs/home. */
  run: RunService;
}

/** The metrics server of config `metrics`, with the gauges read at each scrape; StartupError (exit 1) when it cannot listen. */
async function serveMetricsOf(cfg: MfsdConfig, sessions: () => { live: number; held: number }, dfsa: DfsaNode): Promise<MetricsServer> {
  omfs.sessions.collect(() => {
    const s = sessions();
    return [[{ state: 'live' }, s.live], [{ state: 'held' }, s.held]];
  });
  omfs.nodeLoad.collect(() => dfsa.view().reports.map((r) => [{ node: String(r.node) }, r.load]));
  const where = formatListen(cfg.metrics!.listen);
  try {
    return await serveMetrics(registry, cfg.metrics!.listen.host, cfg.metrics!.listen.port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EADDRINUSE' ? 'address in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'address not available on this machine' : (err as Error).message;
    throw new StartupError(`metrics: cannot listen on ${where}: ${why}`, 1);
  }
}

async function checkExports(cfg: MfsdConfig): Promise<void> {
  for (const e of cfg.exports) {
    let isDir: boolean;
    try {
      isDir = (await stat(e.path)).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new StartupError(`export ${e.path}: ${code === 'ENOENT' ? 'no such directory' : `cannot stat (${code})`}`, 2);
    }
    if (!isDir) throw new StartupError(`export ${e.path}: not a directory`, 2);
  }
}

/** Server credentials, and the material the daemon also dials its peers with (null: insecure). */
async function credentials(cfg: MfsdConfig): Promise<{ creds: grpc.ServerCredentials; material: TlsMaterial | null }> {
  if (cfg.insecure) return { creds: grpc.ServerCredentials.createInsecure(), material: null };
  try {
    const material = await readTlsMaterial(cfg.tls);
    return { creds: serverCredentials(material), material };
  } catch (err) {
    throw new StartupError(`tls: ${(err as Error).message}`, 2);
  }
}

function mapLine(cfg: MfsdConfig, nodes: number[]): string {
  if (cfg.map === null) return 'no map: this node is alone';
  const own = nodes.includes(cfg.node) ? '' : `; WARNING: node ${cfg.node} is not in it`;
  return `map ${cfg.map}: ${nodes.length} node(s)${own}`;
}

function bind(server: grpc.Server, hostPort: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, creds, (err, port) => {
      if (!err) return resolve(port);
      const why = /EADDRINUSE|address already in use/i.test(err.message) ? 'address in use'
        : /EACCES|permission denied/i.test(err.message) ? 'permission denied'
        : /EADDRNOTAVAIL|cannot assign/i.test(err.message) ? 'address not available on this machine'
        : /Name resolution failed/i.test(err.message) ? 'cannot resolve the host name'
        : err.message;
      reject(new StartupError(`cannot listen on ${hostPort}: ${why}`, 1));
    });
  });
}

function describeExports(cfg: MfsdConfig): string {
  return cfg.exports
    .map((e) => [e.path, e.dfsa ? `dfsa=${e.dfsa}` : '', e.readOnly ? 'ro' : '', e.rootSquash ? 'root_squash' : ''].filter(Boolean).join(':'))
    .join(', ');
}

export async function startDaemon(cfg: MfsdConfig, log: (line: string) => void = (l) => process.stderr.write(`mfsd: ${l}\n`)): Promise<RunningDaemon> {
  await checkExports(cfg);
  const { creds, material } = await credentials(cfg);
  let cluster: ClusterView;
  try {
    cluster = new ClusterView(cfg.node, cfg.map, cfg.mapExplicit, await readClusterMap(cfg.map, cfg.mapExplicit), material);
  } catch (err) {
    throw new StartupError((err as Error).message, 2);
  }
  try {
    await mkdirp(cfg.stateDir, 0o700);
  } catch (err) {
    throw new StartupError(`stateDir ${cfg.stateDir}: cannot create (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  // Peers are held to their own open-file limit; the daemon's own must cover them all (best effort:
  // without CAP_SYS_RESOURCE the hard limit stays).
  sys.raiseFdLimit();
  // mfsctl nomfs survives a restart: the state dir says whether other nodes are refused.
  const access = new MfsAccess(cfg.node, cfg.stateDir, !cfg.insecure);
  if (access.refusing) log(`nomfs: other nodes are refused access to this node's files (since ${access.refusing.toISOString()}; mfsctl mfs allows them again)`);
  const peers = new Peers(cfg.limits);
  const locks = new LockTable({ maxLocksPerPeer: cfg.limits.locksPerPeer, maxWaitersPerPeer: cfg.limits.lockWaitersPerPeer });
  let files: FileService;
  try {
    files = await createFileService({ nodeId: cfg.node, exports: cfg.exports, stateDir: cfg.stateDir, locks, peers, tls: !cfg.insecure, sessions: cfg.sessions, gate: access });
  } catch (err) {
    throw new StartupError(`file service: ${(err as Error).message}`, 1);
  }
  const keepaliveMs = cfg.sessions.keepaliveMs;
  const server = new grpc.Server({
    // A peer that went silent must not pin a SetLkW, a session stream or its lease forever: the
    // server pings every keepaliveMs and drops a connection whose ping is not answered within
    // keepaliveMs, so a dead client's streams end (and its session goes away) within about twice
    // keepaliveMs. Clients ping every keepaliveMs too (proto/session-client.ts); grpc-js 1.14's
    // server polices no ping rate (it has no ping-strike code; checked in
    // node_modules/@grpc/grpc-js/build/src/server.js), so nothing here could refuse them; the
    // C-core names are set anyway so a server built on another gRPC accepts the same clients.
    'grpc.keepalive_time_ms': keepaliveMs,
    'grpc.keepalive_timeout_ms': keepaliveMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': keepaliveMs,
    'grpc.http2.max_ping_strikes': 0,
    interceptors: [peers.interceptor(), countRpcs()],
  });
  trackConnections(server, {
    onConnectionClosed: (key) => peers.end(key),
    handshakeTimeoutMs: cfg.limits.tlsHandshakeTimeoutMs,
    maxUnauthenticated: cfg.limits.unauthenticatedConnections,
    onRawConnection: (socket) => files.session.acceptRaw(socket),
  });
  const dfsa = new DfsaNode({ self: cfg.node, settings: cfg.dfsa, stateDir: cfg.stateDir, cluster, log });
  const run = new RunService({
    self: cfg.node, cluster, tls: material, socket: runSocket(cfg.run, cfg.node, cfg.stateDir), mount: () => runMount(cfg.run, cfg.mount?.path, cfg.stateDir), log,
  });
  let port: number;
  let metricsServer: MetricsServer | null = null;
  try {
    server.addService(files.definition, access.guard(files.definition, files.implementation));
    server.addService(files.session.definition, files.session.implementation);
    const sessions = () => ({ live: files.session.live(), held: files.session.held() });
    const node = createNodeService({ nodeId: cfg.node, exports: cfg.exports, tls: !cfg.insecure, sessions, dfsa, cluster });
    // ReportProcessIo (server/process-io.ts): a standalone mount's per-process I/O, from this node's own certificate.
    const processIo = processIoHandlers({ self: cfg.node, tls: !cfg.insecure, apply: (b) => applyProcessIo(dfsa.stats, b) });
    server.addService(node.definition, { ...node.implementation, ...processIo });
    server.addService(dfsa.advisor.definition, dfsa.advisor.implementation);
    server.addService(run.definition, run.implementation);
    port = await bind(server, formatListen(cfg.listen), creds);
    metricsServer = cfg.metrics ? await serveMetricsOf(cfg, sessions, dfsa) : null;
  } catch (err) {
    server.forceShutdown();
    cluster.close();
    await files.close().catch(() => undefined);
    throw err;
  }
  const address = formatListen({ host: cfg.listen.host, port });
  let discovery: Discovery | null = null;
  if (cfg.discovery) {
    try {
      discovery = await startDiscovery(cfg, port, cluster, log);
    } catch (err) {
      server.forceShutdown();
      cluster.close();
      await files.close().catch(() => undefined);
      throw new StartupError(`discovery: ${(err as Error).message}`, 1);
    }
  }
  log(mapLine(cfg, cluster.nodes()));
  if (metricsServer) log(`metrics: http://${metricsServer.address}/metrics`);
  dfsa.start();
  // Without its socket mfsrun cannot reach this node; files are served all the same.
  await run.listen().catch((err: Error) => log(`run: no mfsrun socket (${err.message}); mfsrun cannot start jobs through this node`));
  const readyLine = `mfsd: node ${cfg.node} listening on ${address} (${cfg.insecure ? 'insecure' : 'tls'}), exports: ${describeExports(cfg)}`;

  let stopping: Promise<void> | null = null;
  const stop = (graceMs = cfg.shutdownGraceMs): Promise<void> => {
    // A second stop with no grace (second SIGTERM) cancels what the first is still draining.
    if (stopping && graceMs === 0) server.forceShutdown();
    stopping ??= (async () => {
      // A goodbye first: the other nodes drop this one at once rather than after missed announcements.
      discovery?.close();
      dfsa.stop();
      // Jobs' streams would hold tryShutdown: hang them up first.
      await run.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
        // Session streams last as long as their client: end each once its requests are answered
        // (the sessions stay persisted, clients resume them after the restart).
        files.session.shutdown();
      });
      cluster.close();
      await metricsServer?.close();
      await files.close();
    })();
    return stopping;
  };
  const reloadMap = async (): Promise<string> => {
    try {
      await cluster.reload();
      return mapLine(cfg, cluster.nodes());
    } catch (err) {
      return `${(err as Error).message}; keeping the map in use (${cluster.nodes().length} node(s))`;
    }
  };
  const localNode: LocalNode = {
    exports: cfg.exports.map((e) => ({ path: e.path, dfsa: e.dfsa, read_only: e.readOnly, root_squash: e.rootSquash })),
    openLink: () => files.openLocalLink(),
  };
  const dialWith = material ? clientCredentials(material) : grpc.credentials.createInsecure();
  const reportProcessIo = (batch: ProcessIoBatch): void => applyProcessIo(dfsa.stats, batch);
  return { port, address, readyLine, stop, reloadMap, localNode, clientCredentials: dialWith, tlsMaterial: material, access, reportProcessIo, discovery, run };
}
