// mfsd configuration: a JSON file (default /etc/omfs/mfsd.json) and flags; a flag wins over the
// file. Every problem is a ConfigError whose one-line message names the field; mfsd exits 2.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { parseGroup } from '../cluster/discovery.js';
import { DEFAULT_DISSEMINATION } from '../dfsa/dissemination.js';
import type { ExportSpec } from './export-spec.js';
import { DEFAULT_PEER_LIMITS, type PeerLimits } from './peers.js';
import { parseRunSettings, type RunSettings } from './run-config.js';

export const DEFAULT_CONFIG_PATH = '/etc/omfs/mfsd.json';
export const DEFAULT_LISTEN = '0.0.0.0:7117';
export const DEFAULT_STATE_DIR = '/var/lib/omfs';
export const DEFAULT_TLS_DIR = '/etc/omfs/tls';
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** The openMosix map, used when the config names none and the file exists (else: a node alone). */
export const DEFAULT_MAP_PATH = '/etc/openmosix.map';

/** What protects the daemon from its peers (per authenticated peer) and from hosts that never authenticate. */
export interface Limits extends PeerLimits {
  /** Connections that have not finished their TLS handshake, at once; more are closed at once. */
  unauthenticatedConnections: number;
  /** A TLS client that has not finished its handshake by then is disconnected. */
  tlsHandshakeTimeoutMs: number;
}
export const DEFAULT_LIMITS: Readonly<Limits> = {
  ...DEFAULT_PEER_LIMITS,
  unauthenticatedConnections: 256,
  tlsHandshakeTimeoutMs: 10_000,
};
/** Each knob's range: at least 1 (0 would refuse every peer), at most what makes sense on one host. */
const LIMIT_RANGES: Readonly<Record<keyof Limits, readonly [number, number]>> = {
  openFilesPerPeer: [1, 1_048_576],
  requestsPerPeer: [1, 1_000_000],
  locksPerPeer: [1, 10_000_000],
  lockWaitersPerPeer: [1, 1_000_000],
  unauthenticatedConnections: [1, 1_000_000],
  tlsHandshakeTimeoutMs: [100, 600_000],
};

/** Sessions (proto/session.proto): leases, callbacks, direct changes, slow exports. */
export interface SessionSettings {
  /** How long a session's open files and locks outlive its stream; also how long a writer waits for an invalidation ack before fencing. */
  leaseMs: number;
  /** HTTP/2 keepalive ping interval on session connections (a dead peer is noticed within about twice this). */
  keepaliveMs: number;
  /** Callbacks one session may hold; beyond, the oldest are recalled with an invalidation. */
  callbacksPerSession: number;
  /** Changes made directly in an export (not through mfsd) are invalidated within this bound (fanotify/inotify batching). */
  directChangeMs: number;
  /** A file system call on an export slower than this marks the export slow: its calls then run off the event loop. */
  slowCallMs: number;
}
export const DEFAULT_SESSIONS: Readonly<SessionSettings> = {
  leaseMs: 15_000,
  keepaliveMs: 5_000,
  callbacksPerSession: 65_536,
  directChangeMs: 100,
  slowCallMs: 20,
};
const SESSION_RANGES: Readonly<Record<keyof SessionSettings, readonly [number, number]>> = {
  leaseMs: [100, 3_600_000],
  keepaliveMs: [100, 600_000],
  callbacksPerSession: [16, 100_000_000],
  directChangeMs: [1, 60_000],
  slowCallMs: [1, 60_000],
};

/** DFSA in the daemon: load dissemination (dfsa/dissemination.ts) and this node's CPU speed. */
export interface DfsaSettings {
  /** How often this node sends its load to `fanout` random peers. */
  intervalMs: number;
  /** Peers each interval's report goes to. */
  fanout: number;
  /** Reports about other nodes held (the freshest). */
  window: number;
  /** Reports of the window forwarded with this node's own. */
  forward: number;
  /**
   * This node's CPU speed in thousandths of a standard CPU (1000 = standard), as openMosix's
   * `mosctl setspeed` was the admin's figure: the MHz Linux reports is 0 in many VMs and says
   * nothing across CPU generations, so it is not guessed.
   */
  speed: number;
}
export const DEFAULT_DFSA: Readonly<DfsaSettings> = {
  intervalMs: DEFAULT_DISSEMINATION.intervalMs,
  fanout: DEFAULT_DISSEMINATION.fanout,
  window: DEFAULT_DISSEMINATION.window,
  forward: DEFAULT_DISSEMINATION.forward,
  speed: 1000,
};
const DFSA_RANGES: Readonly<Record<keyof DfsaSettings, readonly [number, number]>> = {
  intervalMs: [50, 3_600_000],
  fanout: [1, 256],
  window: [1, 65_535],
  forward: [0, 65_535],
  speed: [1, 1_000_000],
};

/**
 * mfsd hosts the /mfs mount itself (issue 10, "One daemon per node"): its own node through the
 * file service in process, the others through sessions with its own certificate.
 */
export interface MountConfig {
  /** The mount point (absolute). */
  path: string;
  /** The map of the nodes mounted; default: the daemon's own (`map`). */
  map: string | null;
  /** mfs-mount's -o list (ro, hard|soft, timeo=MS, idle=MS, cache=SECONDS, dfsa=0|1), checked when mounting. */
  options: string;
}

/** Discovery on the LAN by UDP multicast (cluster/discovery.ts), as openMosix's omdiscd; off unless configured. */
export interface DiscoveryConfig {
  group: string;
  port: number;
  intervalMs: number;
  /** Intervals without an announcement after which a node has left. */
  missed: number;
  /** Local IPv4 address of the interface to use (default: the kernel's choice by route). */
  interface?: string;
  /** The address others dial this node at (default: the source address of its announcements). */
  address?: string;
}
export const DEFAULT_DISCOVERY_INTERVAL_MS = 2_000;
export const DEFAULT_DISCOVERY_MISSED = 3;

export interface TlsPaths { ca: string; cert: string; key: string }
export interface ListenAddress { host: string; port: number }
export interface MfsdConfig {
  node: number;
  listen: ListenAddress;
  stateDir: string;
  exports: ExportSpec[];
  tls: TlsPaths;
  insecure: boolean;
  /** How long SIGTERM waits for in-flight calls before cancelling them. */
  shutdownGraceMs: number;
  limits: Limits;
  sessions: SessionSettings;
  /** Path of the openMosix map (cluster/map-file.ts); null: none, this node is alone. */
  map: string | null;
  /** The map was named (config or flag): a missing file is then an error, not "alone". */
  mapExplicit: boolean;
  dfsa: DfsaSettings;
  /** Mount the cluster here as well (absent: serve only). */
  mount?: MountConfig;
  /** Announce this node and learn others on the LAN (absent: the map alone). */
  discovery?: DiscoveryConfig;
  /** The local admin socket (server/admin-socket.ts: mount.mfs hand-over, mfsctl nomfs/mfs); default <stateDir>/mfsd.sock. */
  adminSocket: string;
  /** mfsrun (server/run-config.ts): its unix socket, this node's /mfs for path translation. */
  run?: RunSettings;
  /** Prometheus text metrics at http://LISTEN/metrics (server/metrics.ts); absent: off. */
  metrics?: MetricsConfig;
}

/** `"metrics": { "listen": "127.0.0.1:9117" }` or `--metrics-listen HOST:PORT`. */
export interface MetricsConfig { listen: ListenAddress }

/** A bad config file or flag; the message is the whole story, one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const USAGE = `usage: mfsd [--config PATH] [--node N] [--listen HOST:PORT] [--state-dir DIR]
            [--export PATH[:dfsa=N][:ro][:root_squash]]... [--tls-ca FILE] [--tls-cert FILE]
            [--tls-key FILE] [--insecure] [--shutdown-grace-ms MS] [--map FILE]
            [--mount PATH [--mount-options LIST]] [--admin-socket PATH] [--metrics-listen HOST:PORT]
Config file (JSON, default ${DEFAULT_CONFIG_PATH}): { "node": 1, "listen": "${DEFAULT_LISTEN}",
  "stateDir": "${DEFAULT_STATE_DIR}", "exports": [{ "path": "/srv", "dfsa": 1, "readOnly": false,
  "rootSquash": false }], "tls": { "ca": "...", "cert": "...", "key": "..." }, "insecure": false,
  "limits": { "openFilesPerPeer": ${DEFAULT_LIMITS.openFilesPerPeer}, "requestsPerPeer": ${DEFAULT_LIMITS.requestsPerPeer}, "locksPerPeer": ${DEFAULT_LIMITS.locksPerPeer},
  "lockWaitersPerPeer": ${DEFAULT_LIMITS.lockWaitersPerPeer}, "unauthenticatedConnections": ${DEFAULT_LIMITS.unauthenticatedConnections}, "tlsHandshakeTimeoutMs": ${DEFAULT_LIMITS.tlsHandshakeTimeoutMs} },
  "sessions": { "leaseMs": ${DEFAULT_SESSIONS.leaseMs}, "keepaliveMs": ${DEFAULT_SESSIONS.keepaliveMs}, "callbacksPerSession": ${DEFAULT_SESSIONS.callbacksPerSession},
  "directChangeMs": ${DEFAULT_SESSIONS.directChangeMs}, "slowCallMs": ${DEFAULT_SESSIONS.slowCallMs} },
  "map": "${DEFAULT_MAP_PATH}" (default when it exists; SIGHUP re-reads it),
  "dfsa": { "intervalMs": ${DEFAULT_DFSA.intervalMs}, "fanout": ${DEFAULT_DFSA.fanout}, "window": ${DEFAULT_DFSA.window}, "forward": ${DEFAULT_DFSA.forward}, "speed": ${DEFAULT_DFSA.speed} },
  "mount": { "path": "/mfs", "map": "(default: the map above)", "options": "hard,timeo=10000" } (mfsd also mounts the
  cluster there, its own node reached in process; default: no mount),
  "discovery": { "group": "239.77.0.1:7118", "intervalMs": ${DEFAULT_DISCOVERY_INTERVAL_MS}, "missed": ${DEFAULT_DISCOVERY_MISSED}, "interface": "IPv4", "address": "IPv4" }
  (announce this node on the LAN and add the nodes heard to the map's; default: off),
  "adminSocket": "(default: <stateDir>/mfsd.sock; root-only: mount.mfs and mfsctl nomfs/mfs talk to mfsd there)",
  "metrics": { "listen": "127.0.0.1:9117" } (Prometheus text metrics at /metrics there; default: off) }`;

export interface CliResult { config: MfsdConfig | null; help: boolean; version: boolean }

/** Parse argv (without node and script) into a full config, reading the config file it names. */
export function loadConfig(argv: string[]): CliResult {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv);
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const v = parsed.values;
  if (v.help) return { config: null, help: true, version: false };
  if (v.version) return { config: null, help: false, version: true };
  const file = readConfigFile(v.config);
  return { config: buildConfig(file, v), help: false, version: false };
}

function parseFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      node: { type: 'string' },
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      export: { type: 'string', multiple: true },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      insecure: { type: 'boolean' },
      'shutdown-grace-ms': { type: 'string' },
      map: { type: 'string' },
      mount: { type: 'string' },
      'mount-options': { type: 'string' },
      'admin-socket': { type: 'string' },
      'metrics-listen': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
}
type Flags = ReturnType<typeof parseFlags>['values'];

/** The file's JSON object; a missing default file is an empty config (flags may say it all). */
function readConfigFile(explicitPath: string | undefined): Record<string, unknown> {
  const path = explicitPath ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && explicitPath === undefined) return {};
    throw new ConfigError(`config ${path}: cannot read (${code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`config ${path}: must be a JSON object`);
  }
  return json as Record<string, unknown>;
}

const FILE_FIELDS = new Set(['node', 'listen', 'stateDir', 'exports', 'tls', 'insecure', 'shutdownGraceMs', 'limits', 'sessions', 'map', 'dfsa', 'mount', 'adminSocket', 'discovery', 'run', 'metrics']);

function buildConfig(file: Record<string, unknown>, v: Flags): MfsdConfig {
  for (const key of Object.keys(file)) {
    if (!FILE_FIELDS.has(key)) throw new ConfigError(`config: unknown field "${key}"`);
  }
  const node = parseNode(v.node ?? file['node']);
  const listen = parseListen(v.listen ?? file['listen'] ?? DEFAULT_LISTEN);
  const stateDir = absolutePath('stateDir', v['state-dir'] ?? file['stateDir'] ?? DEFAULT_STATE_DIR);
  const exports = v.export ? v.export.map((s) => parseExportFlag(s)) : parseExportsField(file['exports']);
  checkExports(exports);
  const tls = parseTls(file['tls'], v);
  const insecure = v.insecure ?? boolField('insecure', file['insecure'] ?? false);
  const grace = v['shutdown-grace-ms'] ?? file['shutdownGraceMs'] ?? DEFAULT_SHUTDOWN_GRACE_MS;
  const shutdownGraceMs = integer('shutdownGraceMs', grace, 0, 3_600_000);
  const limits = knobs('limits', file['limits'], DEFAULT_LIMITS, LIMIT_RANGES);
  const sessions = knobs('sessions', file['sessions'], DEFAULT_SESSIONS, SESSION_RANGES);
  const dfsa = knobs('dfsa', file['dfsa'], DEFAULT_DFSA, DFSA_RANGES);
  const mapRaw = v.map ?? file['map'];
  const mapExplicit = mapRaw !== undefined;
  const map = mapExplicit ? absolutePath('map', mapRaw) : existsSync(DEFAULT_MAP_PATH) ? DEFAULT_MAP_PATH : null;
  const mount = parseMount(file['mount'], v);
  const adminSocket = absolutePath('adminSocket', v['admin-socket'] ?? file['adminSocket'] ?? `${stateDir}/mfsd.sock`);
  const discovery = parseDiscovery(file['discovery']);
  let run: RunSettings;
  try {
    run = parseRunSettings(file['run']);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const metrics = parseMetrics(file['metrics'], v);
  return { node, listen, stateDir, exports, tls, insecure, shutdownGraceMs, limits, sessions, map, mapExplicit, dfsa, ...(mount ? { mount } : {}), adminSocket, ...(discovery ? { discovery } : {}), run, ...(metrics ? { metrics } : {}) };
}

/** `"metrics": { "listen": "HOST:PORT" }` or `--metrics-listen HOST:PORT` (the flag wins); absent: off. */
function parseMetrics(raw: unknown, v: Flags): MetricsConfig | null {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('metrics: must be an object { listen: "HOST:PORT" }');
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key !== 'listen') throw new ConfigError(`metrics: unknown field "${key}" (known: listen)`);
  }
  const listen = v['metrics-listen'] ?? o['listen'];
  if (listen === undefined) {
    if (raw !== undefined) throw new ConfigError('metrics.listen: required ("HOST:PORT", e.g. "127.0.0.1:9117")');
    return null;
  }
  try {
    return { listen: parseListen(listen) };
  } catch (err) {
    throw new ConfigError(`metrics.${(err as Error).message}`);
  }
}

const DISCOVERY_FIELDS = ['group', 'intervalMs', 'missed', 'interface', 'address'];

/** `"discovery": { group, intervalMs?, missed?, interface?, address? }`; absent: off. */
function parseDiscovery(raw: unknown): DiscoveryConfig | null {
  if (raw === undefined) return null;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`discovery: must be an object with any of ${DISCOVERY_FIELDS.join(', ')}`);
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!DISCOVERY_FIELDS.includes(key)) throw new ConfigError(`discovery: unknown field "${key}" (known: ${DISCOVERY_FIELDS.join(', ')})`);
  }
  const g = typeof o['group'] === 'string' ? parseGroup(o['group']) : undefined;
  if (!g) throw new ConfigError(`discovery.group: must be "MULTICAST-IPv4:PORT" (224.0.0.0 to 239.255.255.255), got ${JSON.stringify(o['group'])}`);
  const ipv4 = (field: string): string | undefined => {
    const v = o[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || isIP(v) !== 4) throw new ConfigError(`discovery.${field}: must be an IPv4 address, got ${JSON.stringify(v)}`);
    return v;
  };
  const iface = ipv4('interface');
  const address = ipv4('address');
  return {
    ...g,
    intervalMs: integer('discovery.intervalMs', o['intervalMs'] ?? DEFAULT_DISCOVERY_INTERVAL_MS, 100, 3_600_000),
    missed: integer('discovery.missed', o['missed'] ?? DEFAULT_DISCOVERY_MISSED, 2, 1000),
    ...(iface ? { interface: iface } : {}),
    ...(address ? { address } : {}),
  };
}

const MOUNT_FIELDS = new Set(['path', 'map', 'options']);

/** `"mount": { path, map?, options? }` or `--mount PATH [--mount-options LIST]` (flags win, field by field). */
function parseMount(raw: unknown, v: Flags): MountConfig | null {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('mount: must be an object { path, map, options }');
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!MOUNT_FIELDS.has(key)) throw new ConfigError(`mount: unknown field "${key}" (known: path, map, options)`);
  }
  const path = v.mount ?? o['path'];
  if (path === undefined) {
    if (v['mount-options'] !== undefined) throw new ConfigError('--mount-options: needs --mount PATH (or "mount" in the config)');
    if (raw !== undefined) throw new ConfigError('mount.path: required (the mount point, e.g. "/mfs")');
    return null;
  }
  const options = v['mount-options'] ?? o['options'] ?? '';
  if (typeof options !== 'string') throw new ConfigError(`mount.options: must be a string like "hard,timeo=10000", got ${JSON.stringify(options)}`);
  return {
    path: absolutePath('mount.path', path),
    map: o['map'] === undefined ? null : absolutePath('mount.map', o['map']),
    options,
  };
}

/** `"<section>": { ... }` of integer knobs: any subset; the others keep their defaults. */
function knobs<T extends object>(section: string, raw: unknown, defaults: Readonly<T>, ranges: Readonly<Record<keyof T, readonly [number, number]>>): T {
  if (raw === undefined) return { ...defaults };
  const known = Object.keys(ranges).join(', ');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${section}: must be an object with any of ${known}`);
  const out: Record<string, number> = { ...(defaults as Record<string, number>) };
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const range = (ranges as Record<string, readonly [number, number] | undefined>)[key];
    if (!range) throw new ConfigError(`${section}: unknown field "${key}" (known: ${known})`);
    out[key] = integer(`${section}.${key}`, value, range[0], range[1]);
  }
  return out as T;
}

function integer(field: string, raw: unknown, min: number, max: number): number {
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${field}: must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function parseNode(raw: unknown): number {
  if (raw === undefined) throw new ConfigError('node: required (the node number, 1..65535; --node N or "node" in the config)');
  return integer('node', raw, 1, 65535);
}

/** "host:port", "[v6]:port"; port 0 asks the kernel for a free port (tests). */
export function parseListen(raw: unknown): ListenAddress {
  if (typeof raw !== 'string') throw new ConfigError(`listen: must be "HOST:PORT", got ${JSON.stringify(raw)}`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || port > 65535) throw new ConfigError(`listen: must be "HOST:PORT" with a port 0..65535, got "${raw}"`);
  if (m[1] !== undefined && isIP(host) !== 6) throw new ConfigError(`listen: "${host}" in brackets is not an IPv6 address`);
  return { host, port };
}

export function formatListen(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function absolutePath(field: string, raw: unknown): string {
  if (typeof raw !== 'string' || raw === '' || !isAbsolute(raw)) {
    throw new ConfigError(`${field}: must be an absolute path, got ${JSON.stringify(raw)}`);
  }
  return normalize(raw).replace(/(.)\/$/, '$1');
}

function boolField(field: string, raw: unknown): boolean {
  if (typeof raw !== 'boolean') throw new ConfigError(`${field}: must be true or false, got ${JSON.stringify(raw)}`);
  return raw;
}

/** `--export PATH[:dfsa=N][:ro][:root_squash]` */
export function parseExportFlag(spec: string): ExportSpec {
  const [path, ...opts] = spec.split(':');
  const out: ExportSpec = { path: absolutePath(`--export ${spec}`, path), dfsa: 0, readOnly: false, rootSquash: false };
  for (const opt of opts) {
    const dfsa = /^dfsa=(.*)$/.exec(opt);
    if (dfsa) out.dfsa = integer(`--export ${spec}: dfsa`, dfsa[1], 0, 8);
    else if (opt === 'ro') out.readOnly = true;
    else if (opt === 'rw') out.readOnly = false;
    else if (opt === 'root_squash') out.rootSquash = true;
    else if (opt === 'no_root_squash') out.rootSquash = false;
    else throw new ConfigError(`--export ${spec}: unknown option "${opt}" (dfsa=N, ro, root_squash)`);
  }
  return out;
}

const EXPORT_FIELDS = new Set(['path', 'dfsa', 'readOnly', 'rootSquash']);

function parseExportsField(raw: unknown): ExportSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError('exports: must be an array of { path, dfsa, readOnly, rootSquash }');
  return raw.map((e: unknown, i) => {
    const field = `exports[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new ConfigError(`${field}: must be an object with a "path"`);
    const o = e as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!EXPORT_FIELDS.has(key)) throw new ConfigError(`${field}: unknown field "${key}"`);
    }
    return {
      path: absolutePath(`${field}.path`, o['path']),
      dfsa: integer(`${field}.dfsa`, o['dfsa'] ?? 0, 0, 8),
      readOnly: boolField(`${field}.readOnly`, o['readOnly'] ?? false),
      rootSquash: boolField(`${field}.rootSquash`, o['rootSquash'] ?? false),
    };
  });
}

function checkExports(exports: ExportSpec[]): void {
  if (exports.length === 0) throw new ConfigError('exports: at least one export is required (--export PATH or "exports" in the config)');
  const byDfsa = new Map<number, string>();
  const paths = new Set<string>();
  for (const e of exports) {
    if (paths.has(e.path)) throw new ConfigError(`exports: ${e.path} is exported twice`);
    paths.add(e.path);
    if (e.dfsa === 0) continue;
    const other = byDfsa.get(e.dfsa);
    if (other !== undefined) throw new ConfigError(`exports: dfsa=${e.dfsa} is given to both ${other} and ${e.path}; each DFSA index 1..8 names one export`);
    byDfsa.set(e.dfsa, e.path);
  }
}

function parseTls(raw: unknown, v: Flags): TlsPaths {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('tls: must be an object { ca, cert, key }');
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['ca', 'cert', 'key'].includes(key)) throw new ConfigError(`tls: unknown field "${key}"`);
  }
  return {
    ca: absolutePath('tls.ca', v['tls-ca'] ?? o['ca'] ?? `${DEFAULT_TLS_DIR}/ca.crt`),
    cert: absolutePath('tls.cert', v['tls-cert'] ?? o['cert'] ?? `${DEFAULT_TLS_DIR}/node.crt`),
    key: absolutePath('tls.key', v['tls-key'] ?? o['key'] ?? `${DEFAULT_TLS_DIR}/node.key`),
  };
}
