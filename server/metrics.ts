// Prometheus metrics of mfsd, in the text exposition format 0.0.4, with no dependency: a small
// registry of counters and gauges with labels, the daemon's own metric families (`omfs`), and an
// HTTP server for them on the address the config names (`metrics.listen`; off by default).
//
// The families are one per process, like a Prometheus client's default registry, so that any
// module of the daemon can count with one line (`omfs.operations.inc({ peer, op })`) without the
// registry being passed down to it. Label values come from our own code (operation names, node
// numbers from verified certificates); a family still holds at most MAX_SERIES label sets, so
// nothing a peer does can grow it without bound: past that, new label sets are not recorded and
// omfs_metrics_series_dropped_total says so.
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Labels = Readonly<Record<string, string>>;

/** Label sets one family keeps at most. */
export const MAX_SERIES = 10_000;
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Text of a sample value: integers as such, the special values as Prometheus spells them. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

abstract class Family {
  protected readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    private readonly registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    readonly labelNames: readonly string[],
  ) {
    if (!NAME.test(name)) throw new Error(`metric name "${name}" is not a Prometheus name`);
    for (const l of labelNames) if (!LABEL.test(l) || l.startsWith('__')) throw new Error(`${name}: label name "${l}" is not allowed`);
  }

  /** The series of `labels`, made on first use; undefined when the family is full. */
  protected slot(labels: Labels): { labels: Labels; value: number } | undefined {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !this.labelNames.every((l) => typeof labels[l] === 'string')) {
      throw new Error(`${this.name}: labels must be exactly ${this.labelNames.join(', ') || '(none)'}, got ${keys.join(', ') || '(none)'}`);
    }
    const key = this.labelNames.map((l) => labels[l]).join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= MAX_SERIES) {
        this.registry.dropped();
        return undefined;
      }
      s = { labels: Object.fromEntries(this.labelNames.map((l) => [l, labels[l]!])), value: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  /** The samples to expose now. */
  samples(): Array<{ labels: Labels; value: number }> {
    return [...this.series.values()];
  }

  /** The value of one label set (0 when never touched): tests, and modules that read back. */
  get(labels: Labels = {}): number {
    return this.samples().find((s) => this.labelNames.every((l) => s.labels[l] === labels[l]))?.value ?? 0;
  }

  expose(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const s of this.samples()) {
      const labels = this.labelNames.map((l) => `${l}="${escapeLabel(s.labels[l] ?? '')}"`).join(',');
      lines.push(`${this.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

/** Only goes up (by a finite, non-negative amount). */
export class Counter extends Family {
  inc(labels: Labels = {}, by = 1): void {
    if (!(Number.isFinite(by) && by >= 0)) throw new Error(`${this.name}: a counter goes up by a finite amount >= 0, not ${by}`);
    const s = this.slot(labels);
    if (s) s.value += by;
  }
}

/** Set to any value, or computed at each scrape by `collect`. */
export class Gauge extends Family {
  private collector: (() => Array<[Labels, number]>) | undefined;

  set(labels: Labels, value: number): void {
    const s = this.slot(labels);
    if (s) s.value = value;
  }

  /** From now on the samples are what `fn` returns at each scrape (replacing any earlier one). */
  collect(fn: (() => Array<[Labels, number]>) | undefined): void {
    this.collector = fn;
  }

  override samples(): Array<{ labels: Labels; value: number }> {
    if (!this.collector) return super.samples();
    let pairs: Array<[Labels, number]>;
    try {
      pairs = this.collector();
    } catch {
      // A scrape never fails for one family's source.
      return [];
    }
    return pairs.slice(0, MAX_SERIES).map(([labels, value]) => ({ labels, value }));
  }
}

export class Registry {
  private readonly families = new Map<string, Family>();
  private droppedSeries = 0;

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(this, name, help, 'counter', labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(this, name, help, 'gauge', labelNames));
  }

  /** A label set was not recorded: its family was full. */
  dropped(): void {
    this.droppedSeries += 1;
  }

  /** Every family, in the order registered: the body of a scrape. */
  expose(): string {
    const dropped = `# HELP omfs_metrics_series_dropped_total Label sets not recorded because their family held ${MAX_SERIES} already\n# TYPE omfs_metrics_series_dropped_total counter\nomfs_metrics_series_dropped_total ${this.droppedSeries}\n`;
    return [...this.families.values()].map((f) => f.expose()).join('') + dropped;
  }

  private add<F extends Family>(f: F): F {
    if (this.families.has(f.name)) throw new Error(`metric ${f.name} is registered twice`);
    this.families.set(f.name, f);
    return f;
  }
}

/** This daemon's registry. */
export const registry = new Registry();

/** What mfsd counts. Hooks elsewhere count with one line each; see the helpers below. */
export const omfs = {
  sessions: registry.gauge('omfs_sessions', 'Sessions this daemon holds: live (with a stream) and held (live or within their lease)', ['state']),
  operations: registry.counter('omfs_operations_total', 'File operations served through sessions, per peer node and operation', ['peer', 'op']),
  bytes: registry.counter('omfs_bytes_total', 'File data served through sessions, per peer node: read (sent to the peer) and write (received)', ['peer', 'direction']),
  invalidations: registry.counter('omfs_invalidations_sent_total', 'Invalidations sent to caching sessions, per peer node', ['peer']),
  rpcs: registry.counter('omfs_rpc_calls_total', 'gRPC calls this daemon answered (a session stream counts once, when it ends), per method and status', ['method', 'code']),
  advisorDecisions: registry.counter('omfs_advisor_decisions_total', 'Advice the Advisor service gave (Advise replies and Watch updates), per decision', ['decision', 'via']),
  migrations: registry.counter('omfs_migrations_total', 'Processes moved from this node (restarted on another), per target node', ['to']),
  nodeLoad: registry.gauge('omfs_node_load', 'Load (runnable tasks per CPU) of each node this node holds a report of, its own included', ['node']),
};

/**
 * The peer node of a peer key: "session:<node>:<id>" (a session) and "local:<node>:<id>" (the
 * mount this daemon hosts) name it; a unary call's peer (its connection, "ip:port") is "unary".
 */
export function peerNode(key: string): string {
  return /^(?:session|local):(\d+):/.exec(key)?.[1] ?? 'unary';
}

/** Counts one operation a session ran (server/session.ts, when it succeeded), with its data bytes. */
export function countOperation(peerKey: string, op: string, req: unknown, reply: unknown): void {
  const peer = peerNode(peerKey);
  omfs.operations.inc({ peer, op });
  const data = (x: unknown): number => {
    const d = (x as { data?: unknown } | null | undefined)?.data;
    return d instanceof Uint8Array ? d.length : 0;
  };
  if (op === 'read') omfs.bytes.inc({ peer, direction: 'read' }, data(reply));
  else if (op === 'write') omfs.bytes.inc({ peer, direction: 'write' }, data(req));
}

/** Counts one invalidation sent to the session (or local link) of `peerKey` (server/callbacks.ts). */
export function countInvalidation(peerKey: string): void {
  omfs.invalidations.inc({ peer: peerNode(peerKey) });
}

/** Counts a process moved to node `to` (the scheduler, mfsctl migrate). */
export function countMigration(to: number): void {
  omfs.migrations.inc({ to: String(to) });
}

/** A server interceptor counting every call this daemon answers by method and status (omfs_rpc_calls_total). */
export function countRpcs(): grpc.ServerInterceptor {
  return (method, call) => new grpc.ServerInterceptingCall(call, {
    sendStatus: (status, next) => {
      omfs.rpcs.inc({ method: method.path, code: grpc.status[status.code] ?? String(status.code) });
      next(status);
    },
  });
}

export interface MetricsServer {
  /** HOST:PORT it listens on (the real port when asked for 0). */
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `reg` at GET /metrics on host:port (HEAD too; 404 for other paths, 405 for other
 * methods). Nothing else is read from a request; slow or idle clients are cut off.
 */
export function serveMetrics(reg: Registry, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('GET or HEAD\n');
      return;
    }
    const body = reg.expose();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 64;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve({
        address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
        port: a.port,
        close: () => new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
      });
    });
  });
}
