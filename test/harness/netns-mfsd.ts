// A real mfsd inside a network namespace (test/harness/netns.ts), hosting its /mfs mount in
// process (config "mount"): the daemon of one machine of a LAN. Its certificate is named node<N>
// and carries the node's addresses (`mfsctl ca issue --host`), as on a real cluster. The mount is
// in the daemon's own mount namespace (ip netns exec makes one): reach it with execIn(pid, ...).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MFSCTL_JS, MFSD_JS, runNode, type TestCa } from './mfsd.js';
import { MFS_MOUNT_JS } from './mfs-mount.js';
import type { NetNode } from './netns.js';

export interface NsDaemon {
  nodeId: number;
  net: NetNode;
  pid: number;
  proc: ChildProcess;
  /** The export, a directory of the host's file system (the namespaces share it). */
  exportDir: string;
  /** The mount point (in the daemon's mount namespace). */
  mnt: string;
  log(): string;
  /** SIGTERM (or `signal`), and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface NsDaemonOptions {
  ca: TestCa;
  nodeId: number;
  net: NetNode;
  /** A directory of its own for this daemon (export, state, mount point, config, log). */
  root: string;
  /** The map file (null: none). */
  mapFile: string | null;
  /** Addresses its certificate names besides 127.0.0.1 (default: the node's eth0 address). */
  hosts?: string[];
  /** Extra config fields (e.g. discovery). */
  config?: Record<string, unknown>;
  port?: number;
  /** The mount's options. */
  mountOptions?: string;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export async function startNsDaemon(o: NsDaemonOptions): Promise<NsDaemon> {
  const certs = join(o.root, 'tls');
  const hosts = o.hosts ?? [o.net.address];
  const issued = await runNode(MFSCTL_JS, ['ca', 'issue', `node${o.nodeId}`, '--dir', o.ca.dir, '--out', certs, ...hosts.flatMap((h) => ['--host', h])]);
  if (issued.code !== 0) throw new Error(`mfsctl ca issue node${o.nodeId}: ${issued.stderr}`);
  const exportDir = join(o.root, 'export');
  const mnt = join(o.root, 'mfs');
  mkdirSync(exportDir, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  const config = {
    node: o.nodeId, listen: `0.0.0.0:${o.port ?? 7117}`, stateDir: join(o.root, 'state'),
    exports: [{ path: exportDir, dfsa: 1 }],
    tls: { ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') },
    ...(o.mapFile ? { map: o.mapFile } : {}),
    mount: { path: mnt, options: o.mountOptions ?? 'soft,timeo=5000' },
    ...o.config,
  };
  const configPath = join(o.root, 'mfsd.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  // stderr to a file: nobody reads a pipe while a test blocks in synchronous calls.
  const logFile = join(o.root, 'mfsd.log');
  const logFd = openSync(logFile, 'w');
  const proc = spawn('ip', ['netns', 'exec', o.net.ns, process.execPath, MFSD_JS, '--config', configPath], { stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  live.add(proc);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => {
    live.delete(proc);
    resolve(code);
  }));
  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mfsd node ${o.nodeId} in ${o.net.ns} not ready; log:\n${log()}`));
    }, 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^mfsd: node \d+ listening on /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`mfsd node ${o.nodeId} in ${o.net.ns} exited (${code}) before it was ready; log:\n${log()}`));
    });
  });
  proc.stdout?.resume();
  return {
    nodeId: o.nodeId, net: o.net, pid: proc.pid!, proc, exportDir, mnt, log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface NsMount {
  pid: number;
  mnt: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * A standalone mfs-mount (no daemon) in the node's namespace, as node `nodeId` (certificate
 * node<N>), with extra -o options (e.g. discovery=GROUP:PORT).
 */
export async function startNsMount(o: { ca: TestCa; nodeId: number; net: NetNode; root: string; mapFile: string; options: string }): Promise<NsMount> {
  const certs = join(o.root, 'tls');
  const issued = await runNode(MFSCTL_JS, ['ca', 'issue', `node${o.nodeId}`, '--dir', o.ca.dir, '--out', certs, '--host', o.net.address]);
  if (issued.code !== 0) throw new Error(`mfsctl ca issue node${o.nodeId}: ${issued.stderr}`);
  const mnt = join(o.root, 'mfs');
  mkdirSync(mnt, { recursive: true });
  const logFile = join(o.root, 'mfs-mount.log');
  const logFd = openSync(logFile, 'w');
  const proc = spawn('ip', ['netns', 'exec', o.net.ns, process.execPath, MFS_MOUNT_JS, '--map', o.mapFile, '--node', String(o.nodeId),
    '--tls-ca', join(certs, 'ca.crt'), '--tls-cert', join(certs, 'node.crt'), '--tls-key', join(certs, 'node.key'), '-o', o.options, mnt,
  ], { stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  live.add(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => {
    live.delete(proc);
    resolve();
  }));
  const output = (): string => {
    try {
      return out + readFileSync(logFile, 'utf8');
    } catch {
      return out;
    }
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mfs-mount in ${o.net.ns} not ready; output:\n${output()}`));
    }, 30_000);
    proc.stdout?.on('data', () => {
      if (/^mfs-mount: mounted /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`mfs-mount in ${o.net.ns} exited before it was ready; output:\n${output()}`));
    });
  });
  return {
    pid: proc.pid!, mnt, output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
