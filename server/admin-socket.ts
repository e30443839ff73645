// The local admin channel of mfsd: a unix socket (default <stateDir>/mfsd.sock, config
// "adminSocket") on which mount.mfs hands a mount over to the node's running mfsd (one daemon per
// node) and mfsctl nomfs / mfs / status talk to it. Root-only: the socket is mode 0600 and, by
// default, inside the 0700 state directory; nothing on it is reachable from the network.
// Framing: each message is a 4-byte big-endian length, then that many bytes of JSON (one request,
// one reply per connection; a client may send several in turn).
import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, loadConfig } from './config.js';

export const ADMIN_SOCKET_NAME = 'mfsd.sock';
/** Larger messages are refused: requests and replies are a few lines of JSON. */
const MAX_MESSAGE = 1 << 20;

export type AdminRequest =
  | { op: 'mount'; path: string; options: string; map?: string; node?: number }
  | { op: 'nomfs' }
  | { op: 'mfs' }
  | { op: 'status' };

/** `fallback`: this mfsd cannot take the request (another node asked), a standalone mount may. */
export type AdminReply = { ok: true; [k: string]: unknown } | { ok: false; error: string; fallback?: boolean };

export type AdminHandler = (req: AdminRequest) => Promise<AdminReply>;

export function encodeMessage(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Calls `onMessage` with each complete JSON message read from `sock`; a malformed one ends it. */
function readMessages(sock: Socket, onMessage: (value: unknown) => void, onBad: (why: string) => void): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_MESSAGE) return onBad(`message of ${len} bytes (at most ${MAX_MESSAGE})`);
      if (buf.length < 4 + len) return;
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      let value: unknown;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return onBad(`not JSON: ${(err as Error).message}`);
      }
      onMessage(value);
    }
  });
}

function checkRequest(v: unknown): AdminRequest | string {
  if (typeof v !== 'object' || v === null) return 'a request is a JSON object with "op"';
  const o = v as Record<string, unknown>;
  switch (o['op']) {
    case 'nomfs':
    case 'mfs':
    case 'status':
      return { op: o['op'] };
    case 'mount': {
      if (typeof o['path'] !== 'string' || !o['path'].startsWith('/')) return 'mount: "path" must be an absolute path';
      if (typeof (o['options'] ?? '') !== 'string') return 'mount: "options" must be a string';
      if (o['map'] !== undefined && typeof o['map'] !== 'string') return 'mount: "map" must be a path';
      if (o['node'] !== undefined && !Number.isInteger(o['node'])) return 'mount: "node" must be a node number';
      return {
        op: 'mount', path: o['path'], options: (o['options'] as string | undefined) ?? '',
        ...(o['map'] !== undefined ? { map: o['map'] as string } : {}), ...(o['node'] !== undefined ? { node: o['node'] as number } : {}),
      };
    }
    default:
      return `unknown op ${JSON.stringify(o['op'])} (mount, nomfs, mfs, status)`;
  }
}

/** Another live mfsd answers on the socket: two daemons must not share one. */
export class AdminSocketBusy extends Error {
  constructor(readonly path: string) {
    super(`admin socket ${path}: another mfsd answers on it`);
    this.name = 'AdminSocketBusy';
  }
}

export interface AdminSocket {
  path: string;
  close(): Promise<void>;
}

/**
 * Listens on `path` (mode 0600). A socket file left by a daemon that died is replaced; one on which
 * another daemon answers is an error (two mfsd must not share an admin socket).
 */
export async function listenAdmin(path: string, handle: AdminHandler): Promise<AdminSocket> {
  // sun_path holds 108 bytes with its NUL; a longer path would be bound cut short, elsewhere.
  if (Buffer.byteLength(path) > 107) throw new Error(`the path is ${Buffer.byteLength(path)} bytes, more than a unix socket's 107`);
  if (await answering(path)) throw new AdminSocketBusy(path);
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // not there
  }
  const server: Server = createServer((sock) => {
    sock.on('error', () => sock.destroy());
    readMessages(sock, (value) => {
      const req = checkRequest(value);
      const answer = typeof req === 'string'
        ? Promise.resolve<AdminReply>({ ok: false, error: req })
        : handle(req).catch((err: unknown): AdminReply => ({ ok: false, error: err instanceof Error ? err.message : String(err) }));
      void answer.then((reply) => {
        if (!sock.destroyed) sock.write(encodeMessage(reply));
      });
    }, (why) => {
      sock.end(encodeMessage({ ok: false, error: why }));
    });
  });
  // Created with the process umask: tighten before anyone can have connected (listen resolves after chmod).
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    chmodSync(path, 0o600);
  } catch (err) {
    server.close();
    throw err;
  }
  server.unref();
  return {
    path,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }),
  };
}

/** Why no daemon answered (ENOENT: no socket; ECONNREFUSED: a dead one's file; EACCES: not root). */
export class AdminUnreachable extends Error {
  constructor(readonly path: string, readonly code: string) {
    super(`no mfsd answers on ${path} (${code})`);
    this.name = 'AdminUnreachable';
  }
}

/** One request to the mfsd at `path`, its reply. AdminUnreachable when nobody answers. */
export function askAdmin(path: string, req: AdminRequest, timeoutMs = 60_000): Promise<AdminReply> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`mfsd on ${path} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      connected = true;
      sock.write(encodeMessage(req));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connected ? new Error(`admin socket ${path}: ${err.message}`) : new AdminUnreachable(path, err.code ?? err.message));
    });
    sock.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`mfsd on ${path} closed the connection without an answer`));
    });
    readMessages(sock, (value) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(value as AdminReply);
    }, (why) => {
      clearTimeout(timer);
      sock.destroy();
      reject(new Error(`admin socket ${path}: bad reply: ${why}`));
    });
  });
}

/** Whether an mfsd answers on `path` now (a status request). */
export async function answering(path: string): Promise<boolean> {
  try {
    return (await askAdmin(path, { op: 'status' }, 5_000)).ok;
  } catch {
    return false;
  }
}

/**
 * Where the node's mfsd listens for its admin: $OMFS_MFSD_SOCKET, else what its config says
 * (`configPath`, default /etc/omfs/mfsd.json: adminSocket, else <stateDir>/mfsd.sock), else
 * /var/lib/omfs/mfsd.sock. `configured` says whether anything named it (an env, a config file):
 * then a daemon is expected there.
 */
export function localAdminSocket(configPath?: string): { path: string; configured: boolean } {
  const env = process.env['OMFS_MFSD_SOCKET'];
  if (env) return { path: env, configured: true };
  const file = configPath ?? DEFAULT_CONFIG_PATH;
  let raw: Record<string, unknown> | null = null;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    if (configPath !== undefined) throw new Error(`mfsd config ${configPath}: cannot read it as JSON`);
  }
  if (raw) {
    try {
      const cfg = loadConfig(['--config', file]).config;
      if (cfg) return { path: cfg.adminSocket, configured: true };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
    // A config this version cannot fully read still says where the daemon keeps its state.
    if (typeof raw['adminSocket'] === 'string') return { path: raw['adminSocket'], configured: true };
    if (typeof raw['stateDir'] === 'string') return { path: join(raw['stateDir'], ADMIN_SOCKET_NAME), configured: true };
    return { path: join(DEFAULT_STATE_DIR, ADMIN_SOCKET_NAME), configured: true };
  }
  return { path: join(DEFAULT_STATE_DIR, ADMIN_SOCKET_NAME), configured: false };
}
