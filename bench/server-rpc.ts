// mfsd RPC benchmark: a real daemon (separate process, loopback) against node:fs on the same
// files, in one run. Rows: getattr and lookup calls/s, 1 MiB-block sequential write and read
// MB/s. Run: `node dist/bench/server-rpc.js [--mib 256] [--calls 20000] [--no-tls]`.
//
// Under mutual TLS it also measures the session path (proto/session-client.ts: every call a frame
// on one bidirectional stream) beside its floor: the same number of bare messages, of about the
// same sizes and with as many in flight, on one bidirectional stream with Buffer codecs and the same
// grpc-js (bench/stream-floor.ts, its own process as mfsd is). Targets (issue 9): getattr and
// lookup >= 0.5x the floor's small messages/s, 1 MiB read and write >= 0.6x its 1 MiB messages.
// And the latency of a getattr sent while 4 one-MiB reads are in flight on the same session, and the
// invalidation round trip with 0, 1, 2 and 8 caching sessions (bench/invalidation-latency.ts).
//
// Concurrency is what a kernel client keeps outstanding: metadata calls come from many processes
// at once (16 outstanding), sequential I/O from readahead / writeback (4 blocks of 1 MiB in
// flight). The baseline uses the same concurrency on the libuv pool. Neither side fsyncs: both
// measure the page cache, so the ratio is the cost of the RPC path itself.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open, lstat, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { FileClient, ROOT_CALLER, type Entry } from '../proto/file-client.js';
import { clientCredentials, readTlsMaterial } from '../server/tls.js';
import { loadNodeServiceConstructor } from '../proto/node.js';
import { Session, type Entry as SessionEntry } from '../proto/session-client.js';
import { invalidationLatency, printLatency } from './invalidation-latency.js';
import { FloorClient } from './stream-floor.js';

const META_CONCURRENCY = 16;
const IO_CONCURRENCY = 4;
const BLOCK = 1 << 20;
const FILES = 1000;

const here = dirname(fileURLToPath(import.meta.url));
const MFSD = join(here, '..', 'bin', 'mfsd.js');
const MFSCTL = join(here, '..', 'bin', 'mfsctl.js');

/** Run `count` async jobs with `concurrency` outstanding; returns seconds taken. */
async function timed(count: number, concurrency: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await job(next++);
  }));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface Daemon { proc: ChildProcess; address: string }

function startMfsd(root: string, tlsDir: string | null): Promise<Daemon> {
  const args = [MFSD, '--node', '1', '--listen', '127.0.0.1:0', '--state-dir', join(root, tlsDir ? 'state-tls' : 'state'),
    '--export', `${join(root, 'exp')}:dfsa=1`];
  if (tlsDir) args.push('--tls-ca', join(tlsDir, 'ca.crt'), '--tls-cert', join(tlsDir, 'node.crt'), '--tls-key', join(tlsDir, 'node.key'));
  else args.push('--insecure');
  return spawnUntilReady('mfsd', args, /listening on (127\.0\.0\.1:\d+)/, (m) => m);
}

/** Starts a node script and resolves once its stdout matches `ready` (its address from the match). */
function spawnUntilReady(what: string, args: string[], ready: RegExp, address: (match: string) => string): Promise<Daemon> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m?.[1]) resolve({ proc, address: address(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${err}`)));
  });
}

function stopMfsd(d: Daemon): Promise<void> {
  return new Promise((resolve) => {
    d.proc.once('exit', () => resolve());
    d.proc.kill('SIGTERM');
  });
}

interface Row { name: string; omfs: number; baseline: number }

/** Calls/s of NodeService.Health, an RPC that does no file work: the floor set by gRPC itself. */
async function nullRpcRate(address: string, creds: grpc.ChannelCredentials, calls: number): Promise<number> {
  const Ctor = loadNodeServiceConstructor();
  const n = new Ctor(address, creds);
  const health = n['Health'] as (req: object, cb: (e: grpc.ServiceError | null) => void) => void;
  const call = (): Promise<void> => new Promise((res, rej) => health.call(n, {}, (e) => (e ? rej(e) : res())));
  try {
    await timed(META_CONCURRENCY * 4, META_CONCURRENCY, call);
    return calls / (await timed(calls, META_CONCURRENCY, call));
  } finally {
    n.close();
  }
}

async function runSuite(c: FileClient, exp: string, mib: number, calls: number): Promise<Row[]> {
  const root = await c.root(ROOT_CALLER, exp);
  const names = Array.from({ length: FILES }, (_, i) => `f${i}`);
  const handles: Entry[] = [];
  for (const n of names) handles.push(await c.lookup(ROOT_CALLER, root.handle, n));
  const paths = names.map((n) => join(exp, n));
  const pick = <T>(a: T[], i: number): T => a[i % a.length] as T;

  // Warm both sides once so neither pays first-touch costs in the measured run.
  await timed(FILES, META_CONCURRENCY, (i) => c.getAttr(ROOT_CALLER, pick(handles, i).handle));
  await timed(FILES, META_CONCURRENCY, (i) => stat(pick(paths, i)));

  const rows: Row[] = [];
  const getattr = await timed(calls, META_CONCURRENCY, (i) => c.getAttr(ROOT_CALLER, pick(handles, i).handle));
  const statT = await timed(calls, META_CONCURRENCY, (i) => stat(pick(paths, i)));
  rows.push({ name: 'getattr (calls/s)', omfs: calls / getattr, baseline: calls / statT });
  const lookup = await timed(calls, META_CONCURRENCY, (i) => c.lookup(ROOT_CALLER, root.handle, pick(names, i)));
  const lstatT = await timed(calls, META_CONCURRENCY, (i) => lstat(pick(paths, i)));
  rows.push({ name: 'lookup (calls/s)', omfs: calls / lookup, baseline: calls / lstatT });

  const block = Buffer.alloc(BLOCK, 0x5a);
  const created = await c.create(ROOT_CALLER, root.handle, 'big-omfs', 0o2 /* O_RDWR */ | 0o1000 /* O_TRUNC */);
  const h = created.entry.handle;
  const w = await timed(mib, IO_CONCURRENCY, (i) => c.write(ROOT_CALLER, h, created.fh, i * BLOCK, block));
  const local = await open(join(exp, 'big-local'), 'w+');
  const wl = await timed(mib, IO_CONCURRENCY, (i) => local.write(block, 0, BLOCK, i * BLOCK));
  rows.push({ name: 'seq write 1 MiB (MB/s)', omfs: mib / w, baseline: mib / wl });

  const r = await timed(mib, IO_CONCURRENCY, async (i) => {
    const got = await c.read(ROOT_CALLER, h, created.fh, i * BLOCK, BLOCK);
    if (got.length !== BLOCK) throw new Error(`short read at block ${i}: ${got.length}`);
  });
  const bufs = Array.from({ length: IO_CONCURRENCY }, () => Buffer.allocUnsafe(BLOCK));
  const rl = await timed(mib, IO_CONCURRENCY, async (i) => {
    const { bytesRead } = await local.read(pick(bufs, i), 0, BLOCK, i * BLOCK);
    if (bytesRead !== BLOCK) throw new Error(`short local read at block ${i}`);
  });
  rows.push({ name: 'seq read 1 MiB (MB/s)', omfs: mib / r, baseline: mib / rl });
  await local.close();
  await c.release(ROOT_CALLER, created.fh, h);
  return rows;
}

/** The same rows as runSuite, on a session. */
async function runSessionSuite(s: Session, exp: string, mib: number, calls: number): Promise<Map<string, number>> {
  const root = await s.root(ROOT_CALLER, exp);
  const names = Array.from({ length: FILES }, (_, i) => `f${i}`);
  const handles = new Array<SessionEntry>(FILES);
  await timed(FILES, META_CONCURRENCY, async (i) => (handles[i] = await s.lookup(ROOT_CALLER, root.handle, names[i]!)));
  const pick = <T>(a: T[], i: number): T => a[i % a.length] as T;
  await timed(FILES, META_CONCURRENCY, (i) => s.getAttr(ROOT_CALLER, pick(handles, i).handle));
  const out = new Map<string, number>();
  out.set('getattr', calls / (await timed(calls, META_CONCURRENCY, (i) => s.getAttr(ROOT_CALLER, pick(handles, i).handle))));
  out.set('lookup', calls / (await timed(calls, META_CONCURRENCY, (i) => s.lookup(ROOT_CALLER, root.handle, pick(names, i)))));
  const block = Buffer.alloc(BLOCK, 0x5a);
  const created = await s.create(ROOT_CALLER, root.handle, 'big-session', 0o2 /* O_RDWR */ | 0o1000 /* O_TRUNC */);
  const h = created.entry.handle;
  out.set('write', mib / (await timed(mib, IO_CONCURRENCY, (i) => s.writeChunk(ROOT_CALLER, h, created.fh, i * BLOCK, block))));
  out.set('read', mib / (await timed(mib, IO_CONCURRENCY, async (i) => {
    const got = await s.readChunk(ROOT_CALLER, h, created.fh, i * BLOCK, BLOCK);
    if (got.length !== BLOCK) throw new Error(`short session read at block ${i}: ${got.length}`);
  })));
  // getattr latency while IO_CONCURRENCY one-MiB reads are kept in flight on the same session.
  let reading = true;
  const readers = Array.from({ length: IO_CONCURRENCY }, async (_, k) => {
    for (let i = k; reading; i += IO_CONCURRENCY) await s.readChunk(ROOT_CALLER, h, created.fh, (i % mib) * BLOCK, BLOCK);
  });
  const lat: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await s.getAttr(ROOT_CALLER, pick(handles, i).handle);
    lat.push(performance.now() - t0);
  }
  reading = false;
  await Promise.all(readers);
  lat.sort((a, b) => a - b);
  out.set('getattr-under-read-median-ms', lat[Math.floor(lat.length / 2)]!);
  out.set('getattr-under-read-p99-ms', lat[Math.floor(lat.length * 0.99)]!);
  await s.release(ROOT_CALLER, created.fh, h);
  return out;
}

/** Bare messages on one stream: small (64 B out, 128 B back), 1 MiB back, 1 MiB out. */
async function runFloor(f: FloorClient, mib: number, calls: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await timed(1000, META_CONCURRENCY, () => f.call(64, 128));
  out.set('small', calls / (await timed(calls, META_CONCURRENCY, () => f.call(64, 128))));
  out.set('1MiB-back', mib / (await timed(mib, IO_CONCURRENCY, () => f.call(64, BLOCK))));
  out.set('1MiB-out', mib / (await timed(mib, IO_CONCURRENCY, () => f.call(BLOCK, 64))));
  return out;
}

function startFloor(certDir: string): Promise<Daemon> {
  return spawnUntilReady('stream floor', [join(here, 'stream-floor.js'), '--serve', certDir], /floor listening on (\d+)/, (port) => `localhost:${port}`);
}

function printSessionRows(session: Map<string, number>, unary: Row[], floor: Map<string, number>): void {
  const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const unaryOf = (prefix: string): number => unary.find((r) => r.name.startsWith(prefix))?.omfs ?? NaN;
  const rows: Array<[string, number, number, number, number]> = [
    ['getattr (calls/s)', session.get('getattr')!, unaryOf('getattr'), floor.get('small')!, 0.5],
    ['lookup (calls/s)', session.get('lookup')!, unaryOf('lookup'), floor.get('small')!, 0.5],
    ['seq read 1 MiB (MB/s)', session.get('read')!, unaryOf('seq read'), floor.get('1MiB-back')!, 0.6],
    ['seq write 1 MiB (MB/s)', session.get('write')!, unaryOf('seq write'), floor.get('1MiB-out')!, 0.6],
  ];
  process.stdout.write(`\nsession (reads and writes on its bulk stream) vs one bare bidirectional stream (floor), mutual TLS\n${'name'.padEnd(26)}${'session'.padStart(10)}${'unary'.padStart(10)}` +
    `${'floor'.padStart(10)}${'sess/floor'.padStart(12)}${'unary/floor'.padStart(13)}${'target'.padStart(8)}\n`);
  for (const [name, sv, uv, fv, target] of rows) {
    process.stdout.write(`${name.padEnd(26)}${fmt(sv).padStart(10)}${fmt(uv).padStart(10)}${fmt(fv).padStart(10)}` +
      `${(sv / fv).toFixed(3).padStart(12)}${(uv / fv).toFixed(3).padStart(13)}${`>=${target}`.padStart(8)}\n`);
  }
  process.stdout.write(`getattr while ${IO_CONCURRENCY} x 1 MiB reads are in flight on the same session: median ` +
    `${session.get('getattr-under-read-median-ms')!.toFixed(2)} ms, p99 ${session.get('getattr-under-read-p99-ms')!.toFixed(2)} ms\n`);
}

function printRows(title: string, rows: Row[]): void {
  const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  process.stdout.write(`\n${title}\n${'name'.padEnd(26)}${'omfs'.padStart(12)}${'baseline'.padStart(12)}${'ratio'.padStart(8)}\n`);
  for (const row of rows) {
    const base = Number.isNaN(row.baseline) ? '-' : fmt(row.baseline);
    const ratio = Number.isNaN(row.baseline) ? '-' : (row.omfs / row.baseline).toFixed(3);
    process.stdout.write(`${row.name.padEnd(26)}${fmt(row.omfs).padStart(12)}${base.padStart(12)}${ratio.padStart(8)}\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string' }, calls: { type: 'string' }, 'no-tls': { type: 'boolean' } } });
  const mib = Number(values.mib ?? 256);
  const calls = Number(values.calls ?? 20_000);
  const root = mkdtempSync(join(tmpdir(), 'omfs-bench-'));
  const daemons: Daemon[] = [];
  try {
    const exp = join(root, 'exp');
    mkdirSync(exp);
    for (let i = 0; i < FILES; i++) writeFileSync(join(exp, `f${i}`), 'x');
    process.stdout.write(`mfsd RPC benchmark over loopback vs node:fs on the same files: ${calls} metadata calls over ${FILES} files ` +
      `(${META_CONCURRENCY} outstanding), ${mib} MiB sequential in 1 MiB blocks (${IO_CONCURRENCY} outstanding), page cache, no fsync. ratio = omfs / baseline\n`);

    const plain = await startMfsd(root, null);
    daemons.push(plain);
    const c = new FileClient(plain.address, grpc.credentials.createInsecure());
    const plainRows = await runSuite(c, exp, mib, calls);
    plainRows.push({ name: 'null RPC: Health (calls/s)', omfs: await nullRpcRate(plain.address, grpc.credentials.createInsecure(), calls), baseline: NaN });
    printRows('insecure (plaintext gRPC)', plainRows);
    c.close();
    await stopMfsd(plain);

    if (!values['no-tls']) {
      const ca = join(root, 'ca');
      execFileSync(process.execPath, [MFSCTL, 'ca', 'init', '--dir', ca]);
      execFileSync(process.execPath, [MFSCTL, 'ca', 'issue', 'bench', '--dir', ca]);
      const tls = await startMfsd(root, ca);
      daemons.push(tls);
      const creds = clientCredentials(await readTlsMaterial({ ca: join(ca, 'ca.crt'), cert: join(ca, 'node.crt'), key: join(ca, 'node.key') }));
      // Dial by name: grpc-js hands the target host to TLS as the server name, and Node warns
      // (DEP0123) when that is an IP address. The certificate names localhost as well.
      const dial = tls.address.replace(/^127\.0\.0\.1:/, 'localhost:');
      const ct = new FileClient(dial, creds);
      const tlsRows = await runSuite(ct, exp, mib, calls);
      tlsRows.push({ name: 'null RPC: Health (calls/s)', omfs: await nullRpcRate(dial, creds, calls), baseline: NaN });
      printRows('mutual TLS (EC P-256)', tlsRows);
      ct.close();

      // The session path, as node 2 (its certificate must name node2), and its floor.
      execFileSync(process.execPath, [MFSCTL, 'ca', 'issue', 'node2', '--dir', ca, '--out', join(ca, 'node2')]);
      const nodeCreds = clientCredentials(await readTlsMaterial({ ca: join(ca, 'ca.crt'), cert: join(ca, 'node2', 'node.crt'), key: join(ca, 'node2', 'node.key') }));
      const session = await Session.open(dial, nodeCreds, { node: 2 });
      const sessionRows = await runSessionSuite(session, exp, mib, calls);
      const credsFor = async (node: number): Promise<grpc.ChannelCredentials> => {
        const out = join(ca, `node${node}`);
        if (!existsSync(out)) execFileSync(process.execPath, [MFSCTL, 'ca', 'issue', `node${node}`, '--dir', ca, '--out', out]);
        return clientCredentials(await readTlsMaterial({ ca: join(ca, 'ca.crt'), cert: join(out, 'node.crt'), key: join(out, 'node.key') }));
      };
      const top = await session.root(ROOT_CALLER, exp);
      const target = await session.lookup(ROOT_CALLER, top.handle, 'f0');
      const latency = await invalidationLatency(dial, session, credsFor, target.handle, Math.min(2000, Math.max(200, calls / 10)));
      session.close();
      await stopMfsd(tls);
      const floorDaemon = await startFloor(ca);
      daemons.push(floorDaemon);
      const floor = await FloorClient.open(floorDaemon.address, ca);
      const floorRows = await runFloor(floor, mib, calls);
      floor.close();
      await stopMfsd(floorDaemon);
      printSessionRows(sessionRows, tlsRows, floorRows);
      printLatency(latency);
    }
  } finally {
    for (const d of daemons) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`server-rpc: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
