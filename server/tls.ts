// Cluster TLS: one CA per cluster, one key + certificate per node, used both as server and as
// client certificate (mutual auth). Node 20 cannot create X.509 certificates, so the CA work
// runs the `openssl` CLI. Keys are EC P-256: small, fast handshakes, supported by grpc-js.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { TlsPaths } from './config.js';
import { mkdirp } from './mkdirp.js';

/** A TLS problem the admin must fix; the message names the file or step. */
export class TlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsError';
  }
}

export interface TlsMaterial { ca: Buffer; cert: Buffer; key: Buffer }

/** Read the three PEM files, naming the one that cannot be read. */
export async function readTlsMaterial(paths: TlsPaths): Promise<TlsMaterial> {
  const read = async (what: string, path: string): Promise<Buffer> => {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      throw new TlsError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!data.includes('-----BEGIN')) throw new TlsError(`${what} ${path} is not a PEM file`);
    return data;
  };
  return { ca: await read('CA certificate', paths.ca), cert: await read('certificate', paths.cert), key: await read('key', paths.key) };
}

/** Server side: TLS required, and the peer must present a certificate from the cluster CA. */
export function serverCredentials(m: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(m.ca, [{ cert_chain: m.cert, private_key: m.key }], true);
}

/** Client side: trust only the cluster CA, present this node's certificate. */
export function clientCredentials(m: TlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(m.ca, m.key, m.cert);
}

function openssl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new TlsError(`cannot run openssl: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new TlsError(`openssl ${args[0]} failed: ${err.trim().split('\n')[0] ?? `exit ${code}`}`));
    });
    // A command that reads no input may exit before we write it: the pipe then breaks (EPIPE),
    // which is no failure of ours; openssl's exit status says whether it worked.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

async function newKey(): Promise<string> {
  return openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
}

async function writeNew(path: string, data: string, mode: number, force: boolean): Promise<void> {
  try {
    await writeFile(path, data, { mode, flag: force ? 'w' : 'wx' });
    await chmod(path, mode); // an overwritten file keeps its old mode otherwise
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new TlsError(`${path} already exists (use --force to replace it)`);
    throw new TlsError(`cannot write ${path}: ${code ?? String(err)}`);
  }
}

async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdirp(dir, 0o755);
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new TlsError(`directory ${dir} is not writable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export interface CaInitOptions { dir: string; force?: boolean; days?: number }

/** Make the cluster CA: `<dir>/ca.key` (0600) and the self-signed `<dir>/ca.crt`. */
export async function caInit(o: CaInitOptions): Promise<{ caCert: string; caKey: string }> {
  await ensureDir(o.dir);
  const caKey = join(o.dir, 'ca.key');
  const caCert = join(o.dir, 'ca.crt');
  const key = await newKey();
  await writeNew(caKey, key, 0o600, o.force ?? false);
  const cert = await openssl([
    'req', '-x509', '-new', '-key', caKey, '-days', String(o.days ?? 3650), '-subj', '/O=omfs/CN=omfs cluster CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await writeNew(caCert, cert, 0o644, o.force ?? false);
  return { caCert, caKey };
}

export interface CaIssueOptions { dir: string; node: string; hosts?: string[]; outDir?: string; force?: boolean; days?: number }

/**
 * Issue a node's key and certificate signed by the CA in `dir`, written as node.key (0600) and
 * node.crt in `outDir` (default `dir`), with ca.crt beside them so the directory is complete.
 * SANs: the node name, localhost, 127.0.0.1, ::1 and the given hosts (IP or DNS name).
 */
export async function caIssue(o: CaIssueOptions): Promise<{ cert: string; key: string }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(o.node)) throw new TlsError(`bad node name "${o.node}" (letters, digits, dots, dashes)`);
  const caKey = join(o.dir, 'ca.key');
  const caCert = join(o.dir, 'ca.crt');
  for (const f of [caKey, caCert]) {
    try {
      await access(f, constants.R_OK);
    } catch {
      throw new TlsError(`no cluster CA at ${o.dir} (${f} missing; run "mfsctl ca init --dir ${o.dir}" first)`);
    }
  }
  const out = o.outDir ?? o.dir;
  await ensureDir(out);
  const sans = [`DNS:${o.node}`, 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1'];
  for (const h of o.hosts ?? []) {
    if (isIP(h)) sans.push(`IP:${h}`);
    else if (/^[A-Za-z0-9*][A-Za-z0-9.-]*$/.test(h)) sans.push(`DNS:${h}`);
    else throw new TlsError(`bad --host "${h}" (an IP address or a DNS name)`);
  }
  const keyPath = join(out, 'node.key');
  const certPath = join(out, 'node.crt');
  await writeNew(keyPath, await newKey(), 0o600, o.force ?? false);
  const csr = await openssl(['req', '-new', '-key', keyPath, '-subj', `/O=omfs/CN=${o.node}`]);
  const extFile = join(out, `.omfs-ext-${randomBytes(6).toString('hex')}.cnf`);
  await writeFile(extFile, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    `subjectAltName=${[...new Set(sans)].join(',')}`,
  ].join('\n') + '\n');
  try {
    const cert = await openssl([
      'x509', '-req', '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', String(o.days ?? 825), '-extfile', extFile,
    ], csr);
    await writeNew(certPath, cert, 0o644, o.force ?? false);
  } finally {
    await rm(extFile, { force: true });
  }
  if (out !== o.dir) await writeNew(join(out, 'ca.crt'), await readFile(caCert, 'utf8'), 0o644, o.force ?? false);
  return { cert: certPath, key: keyPath };
}
