// What mfsctl's calibrate and mon share: the local mfsd as its config describes it (address,
// certificate, state directory), dialling it or another node with that certificate, unary calls
// with a deadline, and text columns. Same rules as mfsctl.ts's getload/status: --listen, --dir,
// --insecure override the config (default /etc/omfs/mfsd.json).
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULT_LISTEN, DEFAULT_STATE_DIR, DEFAULT_TLS_DIR, formatListen, loadConfig, type MfsdConfig } from '../server/config.js';
import { readTlsMaterial, type TlsMaterial } from '../server/tls.js';
import { splitHostPort, whyUnreachable } from '../proto/reach.js';

/** Bad command line: exit 2 with the message and the usage. */
export class UsageError extends Error {}

export interface LocalOptions { config?: string | undefined; listen?: string | undefined; dir?: string | undefined; insecure?: boolean | undefined; 'state-dir'?: string | undefined }

/** The local daemon: where it listens, the certificate mfsctl shows (null: insecure), its state directory. */
export interface Local {
  address: string;
  tls: (TlsMaterial & { dir: string }) | null;
  stateDir: string;
  config: MfsdConfig | null;
}

const dirOf = (file: string): string => file.replace(/\/[^/]*$/, '') || '/';

export async function localDaemon(v: LocalOptions): Promise<Local> {
  if (v.dir !== undefined && v.insecure) throw new UsageError('--dir and --insecure exclude each other');
  const path = v.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  let cfg: MfsdConfig | null = null;
  if (path !== undefined) {
    try {
      cfg = loadConfig(['--config', path]).config;
    } catch (err) {
      if (err instanceof ConfigError) throw new Error(`mfsd config ${path}: ${err.message}`);
      throw err;
    }
  }
  let address = v.listen;
  if (address === undefined) {
    const listen = cfg?.listen ?? { host: '127.0.0.1', port: Number(DEFAULT_LISTEN.split(':')[1]) };
    if (listen.port === 0) throw new UsageError(`the config ${path} listens on port 0 (chosen at start): say --listen HOST:PORT`);
    // A wildcard listener is dialled on loopback.
    const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
    address = formatListen({ host, port: listen.port });
  }
  if (!splitHostPort(address)) throw new UsageError(`"${address}" is not HOST:PORT (or [IPv6]:PORT)`);
  const stateDir = v['state-dir'] ?? cfg?.stateDir ?? DEFAULT_STATE_DIR;
  if (v.insecure || (v.dir === undefined && cfg?.insecure)) return { address, tls: null, stateDir, config: cfg };
  const files = v.dir === undefined && cfg ? { ...cfg.tls, dir: dirOf(cfg.tls.cert) }
    : { ca: join(v.dir ?? DEFAULT_TLS_DIR, 'ca.crt'), cert: join(v.dir ?? DEFAULT_TLS_DIR, 'node.crt'), key: join(v.dir ?? DEFAULT_TLS_DIR, 'node.key'), dir: v.dir ?? DEFAULT_TLS_DIR };
  return { address, tls: { ...(await readTlsMaterial(files)), dir: files.dir }, stateDir, config: cfg };
}

/**
 * A client of `Ctor` at `address` with the local daemon's certificate, after one dial of our own
 * that says at once what is wrong (nothing listening, TLS against plaintext, another CA): grpc-js
 * only says "failed to connect" once the whole deadline has passed.
 */
export async function dial(address: string, tls: Local['tls'], Ctor: grpc.ServiceClientConstructor, options: grpc.ClientOptions = {}, check = true): Promise<grpc.Client> {
  const why = check ? await whyUnreachable(address, tls, 5000) : null;
  if (why) throw new Error(why);
  const { host } = splitHostPort(address)!;
  // grpc-js gives TLS the target host as server name; for an IP address Node warns (DEP0123).
  // Send a name instead and check the certificate against the IP itself.
  const byIp = tls !== null && isIP(host) !== 0;
  const creds = tls
    ? grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, byIp ? { checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) } : {})
    : grpc.credentials.createInsecure();
  return new Ctor(address, creds, { ...(byIp ? { 'grpc.ssl_target_name_override': 'omfs-node' } : {}), ...options });
}

/** A unary call with a deadline; rejects with an Error carrying grpc's details (the status code in `code`). */
export function unary<T>(client: grpc.Client, method: string, req: object, deadlineMs = 5000): Promise<T> {
  const fn = (client as unknown as Record<string, unknown>)[method] as
    (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void;
  return new Promise((resolve, reject) => {
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, v) => (e ? reject(Object.assign(new Error(e.details), { code: e.code })) : resolve(v)));
  });
}

/** Rows as left-aligned columns two spaces apart. */
export function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** A node number 1..65535, or a UsageError naming the command. */
export function nodeNumber(word: string, command: string): number {
  const n = /^\d+$/.test(word) ? Number(word) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new UsageError(`${command}: "${word}" is not a node number (1..65535)`);
  return n;
}
