// A REAL mfsd for tests: `node dist/bin/mfsd.js --config <temp>` on 127.0.0.1 with a kernel-chosen
// port, temp exports and state dir, optionally TLS with a test CA made by the real mfsctl.
// Callers must `await h.cleanup()` in afterAll/afterEach; as a last resort every daemon still
// alive when the test process exits is SIGKILLed.
import * as grpc from '@grpc/grpc-js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExportSpec } from '../../server/file-service.js';
import { clientCredentials, readTlsMaterial } from '../../server/tls.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MFSD_JS = join(repo, 'dist', 'bin', 'mfsd.js');
export const MFSCTL_JS = join(repo, 'dist', 'bin', 'mfsctl.js');

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function needBuild(file: string): void {
  if (!existsSync(file)) throw new Error(`${file} missing: run "npm run build" first`);
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run a dist/bin script to completion (for commands that must exit), killed after `timeoutMs`. */
export function runNode(script: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  needBuild(script);
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [script, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      live.delete(child);
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: child.exitCode ?? (typeof e?.code === 'number' ? e.code : null), signal: child.signalCode ?? e?.signal ?? null, stdout, stderr });
    });
    live.add(child);
  });
}

/** A cluster CA and certificates, made with the real `mfsctl`. */
export interface TestCa {
  /** Directory with ca.crt and ca.key. */
  dir: string;
  /** Issue a certificate for `name` into `<dir>/<name>/` (node.key, node.crt, ca.crt). */
  issue(name: string): Promise<string>;
  /** gRPC client credentials from a directory made by issue(). */
  credentials(certDir: string): Promise<grpc.ChannelCredentials>;
}

export async function makeTestCa(root: string): Promise<TestCa> {
  const dir = join(root, 'ca');
  const init = await runNode(MFSCTL_JS, ['ca', 'init', '--dir', dir]);
  if (init.code !== 0) throw new Error(`mfsctl ca init failed: ${init.stderr}`);
  return {
    dir,
    async issue(name: string): Promise<string> {
      const out = join(dir, name);
      const r = await runNode(MFSCTL_JS, ['ca', 'issue', name, '--dir', dir, '--out', out]);
      if (r.code !== 0) throw new Error(`mfsctl ca issue ${name} failed: ${r.stderr}`);
      return out;
    },
    async credentials(certDir: string): Promise<grpc.ChannelCredentials> {
      return clientCredentials(await readTlsMaterial({ ca: join(certDir, 'ca.crt'), cert: join(certDir, 'node.crt'), key: join(certDir, 'node.key') }));
    },
  };
}

export interface MfsdOptions {
  nodeId?: number;
  /** Export directories to create under the temp root (default one, "a", dfsa 1). */
  exports?: Array<Partial<ExportSpec> & { name: string }>;
  /** Serve TLS with certificates from this CA (default: --insecure). */
  ca?: TestCa;
  shutdownGraceMs?: number;
  /** Extra fields merged into the JSON config. */
  config?: Record<string, unknown>;
}

export interface MfsdHandle {
  root: string;
  address: string;
  port: number;
  nodeId: number;
  stateDir: string;
  configPath: string;
  exports: ExportSpec[];
  proc: ChildProcess;
  readyLine: string;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  /** Credentials a proper cluster client uses (TLS client cert from the same CA, or insecure). */
  clientCredentials(): Promise<grpc.ChannelCredentials>;
  /** Signal the daemon and wait for it to exit; resolves with its exit code (null if killed). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Stop (SIGTERM) and start again with the same config, state dir and port. */
  restart(): Promise<void>;
  /** Kill if still running, remove the temp root. Safe to call twice. */
  cleanup(): Promise<void>;
}

interface Spawned { proc: ChildProcess; readyLine: string; port: number; stderr: () => string }

function spawnMfsd(configPath: string, timeoutMs = 30_000): Promise<Spawned> {
  needBuild(MFSD_JS);
  const proc = spawn(process.execPath, [MFSD_JS, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let err = '';
  let out = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mfsd not ready after ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /^mfsd: node \d+ listening on (?:\[[^\]]+\]|[^:\s]+):(\d+) .*$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      proc.stdout?.off('data', onData);
      proc.stdout?.resume();
      proc.off('exit', onEarlyExit);
      resolve({ proc, readyLine: m[0], port: Number(m[1]), stderr: () => err });
    };
    const onEarlyExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`mfsd exited (${code}) before it was ready; stderr: ${err}`));
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', onEarlyExit);
  });
}

function waitExit(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

export async function startMfsd(opts: MfsdOptions = {}): Promise<MfsdHandle> {
  const root = mkdtempSync(join(tmpdir(), 'omfs-mfsd-'));
  try {
    const nodeId = opts.nodeId ?? 1;
    const stateDir = join(root, 'state');
    const exports: ExportSpec[] = (opts.exports ?? [{ name: 'a' }]).map((e, i) => {
      const path = join(root, e.name);
      mkdirSync(path, { recursive: true });
      return { path, dfsa: e.dfsa ?? i + 1, readOnly: e.readOnly ?? false, rootSquash: e.rootSquash ?? false };
    });
    const certDir = opts.ca ? await opts.ca.issue(`node${nodeId}-${root.slice(-6)}`) : null;
    const config: Record<string, unknown> = {
      node: nodeId, listen: '127.0.0.1:0', stateDir, exports, insecure: !opts.ca,
      ...(certDir ? { tls: { ca: join(certDir, 'ca.crt'), cert: join(certDir, 'node.crt'), key: join(certDir, 'node.key') } } : {}),
      ...(opts.shutdownGraceMs !== undefined ? { shutdownGraceMs: opts.shutdownGraceMs } : {}),
      ...opts.config,
    };
    const configPath = join(root, 'mfsd.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    let s = await spawnMfsd(configPath);
    const h: MfsdHandle = {
      root, nodeId, stateDir, configPath, exports,
      address: `127.0.0.1:${s.port}`, port: s.port, proc: s.proc, readyLine: s.readyLine,
      stderr: () => s.stderr(),
      clientCredentials: async () => (opts.ca && certDir ? opts.ca.credentials(certDir) : grpc.credentials.createInsecure()),
      async stop(signal: NodeJS.Signals = 'SIGTERM') {
        const exited = waitExit(h.proc);
        h.proc.kill(signal);
        return exited;
      },
      async restart() {
        const code = await h.stop('SIGTERM');
        if (code !== 0) throw new Error(`mfsd exited ${code} on SIGTERM; stderr: ${s.stderr()}`);
        // Same port, so clients keep their address across the restart.
        writeFileSync(configPath, JSON.stringify({ ...config, listen: `127.0.0.1:${h.port}` }, null, 2));
        s = await spawnMfsd(configPath);
        Object.assign(h, { proc: s.proc, readyLine: s.readyLine });
      },
      async cleanup() {
        if (h.proc.exitCode === null && h.proc.signalCode === null) {
          const exited = waitExit(h.proc);
          h.proc.kill('SIGKILL');
          await exited;
        }
        rmSync(root, { recursive: true, force: true });
      },
    };
    return h;
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** A promise-returning unary call on any grpc-js generic client. */
export function unary<T>(client: grpc.Client, method: string, req: object, deadlineMs = 10_000): Promise<T> {
  const fn = (client as unknown as Record<string, unknown>)[method] as
    | ((r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void)
    | undefined;
  if (!fn) return Promise.reject(new Error(`no method ${method}`));
  return new Promise((resolve, reject) => {
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, v) => (e ? reject(e) : resolve(v)));
  });
}
