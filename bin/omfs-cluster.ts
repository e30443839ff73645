#!/usr/bin/env node
// omfs-cluster up --nodes N [--dir DIR] [--root] | down [--dir DIR] | status [--dir DIR]
//
// A whole omfs cluster on this machine, for trying omfs, tests and benchmarks. `up` makes a CA and
// node<K> certificates (once, kept in DIR), writes DIR/openmosix.map with a free port per node,
// starts node K's mfsd (mutual TLS, export DIR/nodeK/export as the node's root, state
// DIR/nodeK/state) and mounts the cluster at DIR/nodeK/mfs as node K (with --root, node 1 mounts
// /mfs), all detached with logs and pid files in DIR/nodeK/; it returns once every mount answers.
// A failed `up` undoes what it did. `down` unmounts and stops everything its pid files name, also
// after a crash or a half-done `up`. Exit 0 on success, 1 on failure, 2 on a bad command line.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isOurs, startDetached, StartError, stopProcess, unmountIfMounted, waitAnswers } from '../fuse/mfs/detached.js';

export const DEFAULT_DIR = '/var/lib/omfs-cluster';
const USAGE = `usage: omfs-cluster up --nodes N [--dir DIR] [--root]
       omfs-cluster down [--dir DIR]
       omfs-cluster status [--dir DIR]
DIR defaults to ${DEFAULT_DIR}. Node K: DIR/nodeK/{export,mfs,state,tls,mfsd.json,*.log,*.pid};
the map is DIR/openmosix.map, the CA DIR/ca. --root: node 1's mount is /mfs.`;
const MAX_NODES = 64;
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const MFSD_JS = here('./mfsd.js');
const MFSCTL_JS = here('./mfsctl.js');
const MFS_MOUNT_JS = here('./mfs-mount.js');
const READY_MS = 30_000;

const say = (line: string): void => void process.stdout.write(`omfs-cluster: ${line}\n`);
class UsageError extends Error {}
class Failure extends Error {}

interface Paths { dir: string; node: (k: number) => NodePaths; map: string; ca: string }
interface NodePaths { dir: string; export: string; state: string; tls: string; config: string; mfsdLog: string; mfsdPid: string; mountLog: string; mountPid: string; mountPointFile: string }

function paths(dir: string): Paths {
  return {
    dir,
    map: join(dir, 'openmosix.map'),
    ca: join(dir, 'ca'),
    node: (k) => {
      const d = join(dir, `node${k}`);
      return {
        dir: d, export: join(d, 'export'), state: join(d, 'state'), tls: join(d, 'tls'), config: join(d, 'mfsd.json'),
        mfsdLog: join(d, 'mfsd.log'), mfsdPid: join(d, 'mfsd.pid'), mountLog: join(d, 'mfs-mount.log'), mountPid: join(d, 'mfs-mount.pid'),
        // Where node K's mount is (DIR/nodeK/mfs, or /mfs with --root): down needs it after a crash.
        mountPointFile: join(d, 'mountpoint'),
      };
    },
  };
}

/** Node numbers that have a folder in DIR (what `down` must look at). */
function nodesIn(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((n) => /^node([1-9]\d*)$/.exec(n)?.[1]).filter((k): k is string => k !== undefined).map(Number).sort((a, b) => a - b);
}

function readPid(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function mountPointOf(n: NodePaths): string {
  try {
    return readFileSync(n.mountPointFile, 'utf8').trim() || join(n.dir, 'mfs');
  } catch {
    return join(n.dir, 'mfs');
  }
}

/** A port free on 127.0.0.1 right now (the kernel's choice). */
function freePort(): Promise<number> {
  return new Promise((ok, ko) => {
    const s = createServer();
    s.once('error', ko);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? ok(addr.port) : ko(new Error('no port'))));
    });
  });
}

function mfsctl(args: string[]): void {
  try {
    execFileSync(process.execPath, [MFSCTL_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Failure(`mfsctl ${args.join(' ')} failed: ${e.stderr?.toString().trim() ?? String(err)}`);
  }
}

/** What is still running or mounted for node K (from its pid files and mount point). */
function liveParts(n: NodePaths): string[] {
  const live: string[] = [];
  const mfsd = readPid(n.mfsdPid);
  if (mfsd !== undefined && isOurs(mfsd, MFSD_JS)) live.push(`mfsd pid ${mfsd}`);
  const mount = readPid(n.mountPid);
  if (mount !== undefined && isOurs(mount, MFS_MOUNT_JS)) live.push(`mfs-mount pid ${mount} on ${mountPointOf(n)}`);
  return live;
}

async function up(p: Paths, count: number, root: boolean): Promise<void> {
  const running = nodesIn(p.dir).flatMap((k) => liveParts(p.node(k)).map((what) => `node ${k}: ${what}`));
  if (running.length > 0) {
    say(`a cluster is already running in ${p.dir} (run "omfs-cluster down --dir ${p.dir}" first):`);
    for (const r of running) say(`  ${r}`);
    return;
  }
  // Leftovers of a crash (dead mounts, stale pid files) go first.
  await down(p, true);
  mkdirSync(p.dir, { recursive: true, mode: 0o755 });
  try {
    await start(p, count, root);
  } catch (err) {
    say('up failed: undoing what it did');
    await down(p, true);
    throw err;
  }
}

async function start(p: Paths, count: number, root: boolean): Promise<void> {
  const nodes = Array.from({ length: count }, (_, i) => i + 1);
  if (!existsSync(join(p.ca, 'ca.crt'))) {
    rmSync(p.ca, { recursive: true, force: true }); // an interrupted init: start over
    mfsctl(['ca', 'init', '--dir', p.ca]);
  }
  const ports = new Map<number, number>();
  for (const k of nodes) {
    const n = p.node(k);
    for (const d of [n.dir, n.export, n.state]) mkdirSync(d, { recursive: true });
    if (!existsSync(join(n.tls, 'node.crt'))) mfsctl(['ca', 'issue', `node${k}`, '--dir', p.ca, '--out', n.tls, '--force']);
    let port = await freePort();
    while ([...ports.values()].includes(port)) port = await freePort();
    ports.set(k, port);
    const config = {
      node: k, listen: `127.0.0.1:${port}`, stateDir: n.state,
      // The daemons know each other (load dissemination, mfsrun -N) and where node K's view is.
      map: p.map, run: { mount: root && k === 1 ? '/mfs' : join(n.dir, 'mfs') },
      // One export, the node's root: DIR/nodeJ/mfs/K/x is DIR/nodeK/export/x.
      exports: [{ path: n.export, dfsa: 1 }],
      tls: { ca: join(n.tls, 'ca.crt'), cert: join(n.tls, 'node.crt'), key: join(n.tls, 'node.key') },
    };
    writeFileSync(n.config, JSON.stringify(config, null, 2) + '\n');
  }
  writeFileSync(p.map, `# omfs-cluster: ${count} node(s) on this machine, one mfsd port each\n${nodes.map((k) => `${k} 127.0.0.1:${ports.get(k)} 1`).join('\n')}\n`);

  for (const k of nodes) {
    const n = p.node(k);
    await startDetached(MFSD_JS, ['--config', n.config], n.mfsdLog, 'mfsd: node ', READY_MS, (pid) => writeFileSync(n.mfsdPid, `${pid}\n`));
  }
  for (const k of nodes) {
    const n = p.node(k);
    const mnt = root && k === 1 ? '/mfs' : join(n.dir, 'mfs');
    mkdirSync(mnt, { recursive: true });
    writeFileSync(n.mountPointFile, `${mnt}\n`);
    const tls = (f: string): string => join(n.tls, f);
    await startDetached(MFS_MOUNT_JS, [
      '--map', p.map, '--node', String(k), '--tls-ca', tls('ca.crt'), '--tls-cert', tls('node.crt'), '--tls-key', tls('node.key'), mnt,
    ], n.mountLog, 'mfs-mount: mounted ', READY_MS, (pid) => writeFileSync(n.mountPid, `${pid}\n`));
  }
  // Every mount answers for every node: each one's session to each node opens now.
  for (const k of nodes) {
    const mnt = mountPointOf(p.node(k));
    for (const j of nodes) {
      if (!(await waitAnswers(join(mnt, String(j)), READY_MS))) throw new Failure(`${mnt}/${j} does not answer; logs ${p.node(k).mountLog}, ${p.node(j).mfsdLog}`);
    }
  }
  printWhere(p, nodes, ports);
}

/** How this command was run, to say how to run it again: `node /path/dist/bin/omfs-cluster.js` or its bin name. */
const invocation = (): string => (process.argv[1]?.endsWith('.js') ? `node ${process.argv[1]}` : 'omfs-cluster');

function printWhere(p: Paths, nodes: number[], ports: Map<number, number>): void {
  const lines = [
    `up: ${nodes.length} node(s), mutual TLS, in ${p.dir}`,
    `  map        ${p.map}`,
    `  CA         ${p.ca} (a local CA: keep it here)`,
  ];
  for (const k of nodes) {
    const n = p.node(k);
    lines.push(`  node ${k}     mfsd 127.0.0.1:${ports.get(k)} pid ${readPid(n.mfsdPid)}, export ${n.export}, log ${n.mfsdLog}`);
    lines.push(`             /mfs of node ${k} at ${mountPointOf(n)} (pid ${readPid(n.mountPid)}, log ${n.mountLog})`);
  }
  const last = nodes[nodes.length - 1]!;
  lines.push(`try: echo hi > ${mountPointOf(p.node(1))}/${last}/hi && cat ${p.node(last).export}/hi`);
  lines.push(`stop: ${invocation()} down --dir ${p.dir}`);
  for (const l of lines) say(l);
}

/** Unmount and stop whatever the pid files and mount points of DIR name. `quiet`: no "nothing to do". */
async function down(p: Paths, quiet: boolean): Promise<void> {
  const problems: string[] = [];
  let did = false;
  const nodes = nodesIn(p.dir);
  // Mounts first (their processes hold sessions to the daemons), then the daemons.
  for (const k of nodes) {
    const n = p.node(k);
    const mnt = mountPointOf(n);
    const pid = readPid(n.mountPid);
    if (pid !== undefined && isOurs(pid, MFS_MOUNT_JS)) {
      did = true;
      // SIGTERM unmounts; if the mount is busy it stays mounted and the process waits: umount -l.
      if (!(await stopProcess(pid, MFS_MOUNT_JS, 10_000))) problems.push(`mfs-mount pid ${pid} of node ${k} did not stop`);
    }
    if (!unmountIfMounted(mnt)) problems.push(`${mnt} is still mounted`);
    else if (existsSync(n.mountPointFile)) did = true;
    rmSync(n.mountPid, { force: true });
    rmSync(n.mountPointFile, { force: true });
  }
  for (const k of nodes) {
    const n = p.node(k);
    const pid = readPid(n.mfsdPid);
    if (pid !== undefined && isOurs(pid, MFSD_JS)) {
      did = true;
      // mfsd drains in-flight calls for up to its shutdown grace (10 s) before it exits.
      if (!(await stopProcess(pid, MFSD_JS, 15_000))) problems.push(`mfsd pid ${pid} of node ${k} did not stop`);
    }
    rmSync(n.mfsdPid, { force: true });
  }
  if (problems.length > 0) throw new Failure(`down: ${problems.join('; ')}`);
  if (did || !quiet) say(did ? `down: unmounted and stopped everything of ${p.dir}; nothing is mounted or running now` : `down: nothing was running in ${p.dir}`);
}

function status(p: Paths): void {
  const nodes = nodesIn(p.dir);
  if (nodes.length === 0) return say(`no cluster in ${p.dir}`);
  for (const k of nodes) {
    const live = liveParts(p.node(k));
    say(`node ${k}: ${live.length > 0 ? live.join(', ') : 'stopped'}`);
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === '-h' || command === '--help') return void process.stdout.write(`${USAGE}\n`);
  let values: { nodes?: string; dir?: string; root?: boolean };
  try {
    ({ values } = parseArgs({ args: rest, strict: true, allowPositionals: false, options: { nodes: { type: 'string' }, dir: { type: 'string' }, root: { type: 'boolean' } } }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const p = paths(resolve(values.dir ?? DEFAULT_DIR));
  if (command === 'up') {
    const n = values.nodes === undefined ? NaN : /^\d+$/.test(values.nodes) ? Number(values.nodes) : NaN;
    if (!(n >= 1 && n <= MAX_NODES)) throw new UsageError(`up needs --nodes N, 1..${MAX_NODES}`);
    if (process.getuid?.() !== 0) throw new Failure('must run as root (mfsd serves every uid; FUSE mounts for all users need root)');
    return up(p, n, values.root === true);
  }
  if (values.nodes !== undefined || values.root !== undefined) throw new UsageError(`--nodes and --root are for up`);
  if (command === 'down') return down(p, false);
  if (command === 'status') return status(p);
  throw new UsageError(command === undefined ? 'a command is needed' : `unknown command "${command}"`);
}

main().then(() => process.exit(0), (err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`omfs-cluster: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  // Ours and the system's (EEXIST on a path, EACCES) say it all in their message; a bug needs the stack.
  const expected = err instanceof Failure || err instanceof StartError || typeof (err as { code?: unknown }).code === 'string';
  const message = err instanceof Error ? (expected ? err.message : (err.stack ?? err.message)) : String(err);
  process.stderr.write(`omfs-cluster: ${message}\n`);
  process.exit(1);
});
