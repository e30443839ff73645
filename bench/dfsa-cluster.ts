// Three (or N) omfs machines in network namespaces on a shaped 1 Gbit LAN, for DFSA's end-to-end
// test (test/dfsa/e2e-netns.test.ts) and its benchmark (bench/dfsa-placement.ts). Self-contained
// (bench/ may not import test/): namespaces, tc, a CA made with the real mfsctl, real mfsd daemons.
//
// The LAN: a bridge in a "hub" namespace and one veth per node (eth0 in node K, pK in the hub), so
// nothing touches the host's network. Shaping (tc tbf, rate 1gbit) is on BOTH ends of every veth:
// eth0's egress is what node K sends, pK's egress what the bridge delivers to it. That is a
// full-duplex 1 Gbit switch port per machine, the link the issue names: a file of node 3 read on
// node 1 crosses node 3's uplink and node 1's downlink, each at most 1 Gbit/s. Without it a veth
// moves data at memory speed and the remote read would cost little more than the local one.
// burst 512 KiB: at least rate/HZ (the token bucket refills once per tick) and more than one GSO
// super-packet (64 KiB), or tbf would drop it; latency 20 ms bounds the queue it may build.
//
// Every daemon hosts its /mfs at the SAME path (`mnt`), each in its own mount namespace (ip netns
// exec makes one, a slave of the host's: nothing shows on the host or on the other nodes), as
// /mfs is the same path on every machine of a real cluster: a command and its output do not
// change with the node it runs on. "Run on node K" = nsenter into node K's mfsd's network and
// mount namespaces. Pids are shared (no pid namespace): a job's pid is valid on the host too.
//
// Cleanup: destroy() stops the daemons (SIGTERM, they unmount) and deletes the namespaces; an
// exit hook kills and deletes whatever is left if the process ends first.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdviceMsg } from '../proto/advisor.js';
import { processKey, readStat } from '../sys/process.js';

// The repository: this file runs from bench/ (vitest, on the sources) or from dist/bench/ (the benchmark).
const here = dirname(fileURLToPath(import.meta.url));
const repo = existsSync(join(here, '..', 'package.json')) ? join(here, '..') : join(here, '..', '..');
const dist = (...p: string[]): string => join(repo, 'dist', ...p);
export const MFSD_JS = dist('bin', 'mfsd.js');
export const MFSCTL_JS = dist('bin', 'mfsctl.js');
export const MFSRUN_JS = dist('bin', 'mfsrun.js');
const ADVISE_JS = dist('bench', 'dfsa-advise.js');
const PORT = 7117;

export interface ExecResult { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

export interface DfsaNode {
  id: number;
  ns: string;
  address: string;
  /** The mfsd's pid (its namespaces are the node's). */
  pid: number;
  proc: ChildProcess;
  root: string;
  exportDir: string;
  certs: string;
  /** mfsrun's unix socket of this node. */
  socket: string;
  log(): string;
}

export interface DfsaCluster {
  root: string;
  /** Every node's /mfs (the same path on each, see the header). */
  mnt: string;
  nodes: DfsaNode[];
  node(k: number): DfsaNode;
  /** The `nsenter` argv prefix that runs a command in node K. */
  enter(k: number): string[];
  /** Starts `cmd args` in node K; the child's pid is the command's own (nsenter execs it). */
  spawnOn(k: number, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs to completion in node K (asynchronously: the test's timers go on), killed after timeoutMs. */
  run(k: number, cmd: string, args: string[], o?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  /** Advise (over node K's Advisor gRPC service) for the process "PID:STARTTIME". */
  advise(k: number, process: string): Promise<AdviceMsg>;
  /** Writes `mib` MiB of pseudo-random data to node K's export as `name`; its sha256 (hex). */
  writeFile(k: number, name: string, mib: number): string;
  destroy(): Promise<void>;
}

export interface DfsaClusterOptions {
  nodes?: number;
  /** tc rate; null: no shaping. */
  rate?: string | null;
  /** 10.<net>.0.K */
  net?: number;
  /** Load dissemination interval of every mfsd. */
  intervalMs?: number;
}

const liveNs = new Set<string>();
const liveProcs = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const p of liveProcs) p.kill('SIGKILL');
    for (const ns of liveNs) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr ?? '').trim() || `exit ${r.status}`}`);
  return r.stdout;
}

/** Why this machine cannot run the cluster (root, ip netns, tc tbf, a build), or undefined when it can. */
export function dfsaClusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const f of [MFSD_JS, MFSCTL_JS, MFSRUN_JS, ADVISE_JS]) if (!existsSync(f)) return `${f} missing: run "npm run build"`;
  const probe = `omfs-probe-${randomBytes(3).toString('hex')}`;
  if (spawnSync('ip', ['netns', 'add', probe], { stdio: 'ignore' }).status !== 0) return 'ip netns add failed';
  try {
    const tbf = spawnSync('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1gbit', 'burst', '512kb', 'latency', '20ms'], { encoding: 'utf8' });
    if (tbf.status !== 0) return `tc tbf unavailable: ${tbf.stderr.trim()}`;
  } finally {
    spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  }
  return undefined;
}

function shape(ns: string, dev: string, rate: string): void {
  sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '512kb', 'latency', '20ms']);
}

function execAsync(argv: string[], o: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
    liveProcs.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      liveProcs.delete(child);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

async function startDaemon(k: number, ns: string, configPath: string, logFile: string): Promise<ChildProcess> {
  const logFd = openSync(logFile, 'w');
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, MFSD_JS, '--config', configPath], { stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  liveProcs.add(proc);
  proc.once('exit', () => liveProcs.delete(proc));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`mfsd node ${k}: ${why}; log:\n${readFileSync(logFile, 'utf8')}`));
    };
    const timer = setTimeout(() => fail('not ready after 30 s'), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^mfsd: node \d+ listening on /m.test(out)) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        proc.once('exit', () => liveProcs.delete(proc));
        resolve();
      }
    });
    proc.once('exit', (code) => fail(`exited (${code}) before it was ready`));
  });
  proc.stdout!.resume();
  return proc;
}

export async function startDfsaCluster(o: DfsaClusterOptions = {}): Promise<DfsaCluster> {
  hookExit();
  const count = o.nodes ?? 3;
  const net = o.net ?? 78;
  const rate = o.rate === undefined ? '1gbit' : o.rate;
  const tag = randomBytes(3).toString('hex');
  const hub = `omfs-${tag}-hub`;
  const root = mkdtempSync(join(tmpdir(), 'omfs-dfsa-'));
  chmodSync(root, 0o755);
  const mnt = join(root, 'mfs');
  mkdirSync(mnt);
  const nodes: DfsaNode[] = [];
  const namespaces: string[] = [];
  const addNs = (name: string) => {
    sh('ip', ['netns', 'add', name]);
    liveNs.add(name);
    namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  };
  const enter = (k: number): string[] => ['nsenter', '-t', String(nodes[k - 1]!.pid), '-m', '-n', '--'];
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    // SIGTERM: a daemon hosting /mfs unmounts it as it stops; SIGKILL for one that does not stop.
    await Promise.all(nodes.map((n) => new Promise<void>((resolve) => {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) return resolve();
      const timer = setTimeout(() => n.proc.kill('SIGKILL'), 10_000);
      n.proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      n.proc.kill('SIGTERM');
    })));
    for (const ns of namespaces) {
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      liveNs.delete(ns);
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    addNs(hub);
    sh('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);
    const ca = join(root, 'ca');
    sh(process.execPath, [MFSCTL_JS, 'ca', 'init', '--dir', ca]);
    const mapFile = join(root, 'openmosix.map');
    writeFileSync(mapFile, `1 10.${net}.0.1 ${count}\n`);
    for (let k = 1; k <= count; k++) {
      const ns = `omfs-${tag}-n${k}`;
      const address = `10.${net}.0.${k}`;
      addNs(ns);
      sh('ip', ['-n', hub, 'link', 'add', `p${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      sh('ip', ['-n', hub, 'link', 'set', `p${k}`, 'master', 'br0', 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      if (rate) {
        shape(ns, 'eth0', rate);
        shape(hub, `p${k}`, rate);
      }
      const nodeRoot = join(root, `node${k}`);
      const certs = join(nodeRoot, 'tls');
      const exportDir = join(nodeRoot, 'export');
      mkdirSync(exportDir, { recursive: true });
      sh(process.execPath, [MFSCTL_JS, 'ca', 'issue', `node${k}`, '--dir', ca, '--out', certs, '--host', address]);
      const socket = join(nodeRoot, 'mfsrun.sock');
      const config = {
        node: k, listen: `0.0.0.0:${PORT}`, stateDir: join(nodeRoot, 'state'), map: mapFile,
        exports: [{ path: exportDir, dfsa: 1 }],
        tls: { ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') },
        mount: { path: mnt, options: 'soft,timeo=30000' },
        run: { socket },
        dfsa: { intervalMs: o.intervalMs ?? 500 },
      };
      const configPath = join(nodeRoot, 'mfsd.json');
      writeFileSync(configPath, JSON.stringify(config, null, 2));
      const logFile = join(nodeRoot, 'mfsd.log');
      const proc = await startDaemon(k, ns, configPath, logFile);
      nodes.push({
        id: k, ns, address, pid: proc.pid!, proc, root: nodeRoot, exportDir, certs, socket,
        log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
      });
    }
    // Every node's mount shows every node before anything runs on it.
    for (const n of nodes) {
      const until = Date.now() + 30_000;
      for (;;) {
        const ls = await execAsync([...enter(n.id), 'ls', mnt], { timeoutMs: 10_000 });
        const listed = ls.stdout.split('\n').filter((l) => /^\d+$/.test(l));
        if (listed.length === count) break;
        if (Date.now() > until) throw new Error(`node ${n.id}'s ${mnt} lists ${JSON.stringify(listed)}: ${ls.stderr}\n${n.log()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  const node = (k: number): DfsaNode => {
    const n = nodes[k - 1];
    if (!n) throw new Error(`no node ${k}`);
    return n;
  };
  return {
    root, mnt, nodes, node, enter,
    spawnOn(k, cmd, args, opts = {}) {
      const child = spawn(enter(k)[0]!, [...enter(k).slice(1), cmd, ...args], opts);
      liveProcs.add(child);
      child.once('exit', () => liveProcs.delete(child));
      return child;
    },
    run: (k, cmd, args, opts) => execAsync([...enter(k), cmd, ...args], opts),
    async advise(k, process) {
      const n = node(k);
      const r = await execAsync(['ip', 'netns', 'exec', n.ns, globalThis.process.execPath, ADVISE_JS, `127.0.0.1:${PORT}`, n.certs, process], { timeoutMs: 20_000 });
      if (r.status !== 0) {
        // dfsa-advise's last line is "ERRNO: message" (anything before it: warnings of node's).
        const last = r.stderr.trim().split('\n').at(-1) ?? '';
        throw Object.assign(new Error(`Advise ${process} on node ${k}: ${r.stderr.trim()}`), { code: /^(E[A-Z0-9]+):/.exec(last)?.[1] ?? 'EIO' });
      }
      return JSON.parse(r.stdout) as AdviceMsg;
    },
    writeFile(k, name, mib) {
      const hash = createHash('sha256');
      const fd = openSync(join(node(k).exportDir, name), 'w');
      try {
        // Incompressible, and no two MiB alike (a block-deduplicating layer gains nothing).
        const block = randomBytes(1 << 20);
        for (let i = 0; i < mib; i++) {
          block.writeUInt32LE(i, 0);
          hash.update(block);
          writeSync(fd, block);
        }
      } finally {
        closeSync(fd);
      }
      return hash.digest('hex');
    },
    destroy,
  };
}

/** Writes dirty pages back and empties the page cache (one kernel: every namespace's). */
export function dropCaches(): void {
  spawnSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/** "PID:STARTTIME", as the mount and the advisor name a process (pids are the host's). */
export function keyOf(pid: number): string {
  const st = readStat(pid);
  if (!st) throw new Error(`process ${pid} is gone`);
  return processKey(pid, st.startTime);
}
