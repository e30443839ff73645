#!/usr/bin/env node
// mfsrun [-h | -N NODE | -NODE | -j LIST] [-F] [-l|-L] [--restartable] [--from N] CMD ARGS...
// openMosix's mosrun for omfs: runs CMD on a node through that node's mfsd, as the user who typed
// it, with standard input, output and error streamed, signals (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT)
// forwarded and the exit status returned (128+n for death by signal n, like a shell). It talks only
// to the LOCAL mfsd, over its unix socket; that mfsd places the job and reaches the target's mfsd
// with its own certificate.
//   -h         run on the home node (this one)      -N NODE, -NODE  run on NODE
//   -j LIST    a random node of LIST (1,3,5-7)      -F              if the target is down, run here
//   -L         lock: the scheduler never moves it (the default with -h, -N and -j)
//   -l         unlock: the scheduler may move it (the default when the advisor places it)
//   --restartable  it may be moved while it runs, by RESTARTING it (SIGTERM, then the same command
//              again on the new node): `mfsctl migrate PID NODE|home|balance` or the scheduler
//   --from N   this is node N of a local omfs-cluster (also OMFS_NODE=N): its socket and mount
//   --socket PATH, --mount DIR, --cluster DIR: the mfsd socket, this node's /mfs, the omfs-cluster dir
// Without -h/-N/-j the advisor places it, weighing the nodes of its working directory and of the
// paths in its arguments under /mfs/<K>/, and earlier runs of the same command.
// Exit: the command's status; 255 when it could not be run (node down without -F, refused, ...),
// 2 for bad usage.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Placement, emptyStart, type RunOutputMsg, type RunStartMsg, type RunWeightMsg } from '../proto/run.js';
import { DEFAULT_CLUSTER_DIR, connectRun, findRunSocket, type RunConnection } from '../server/run-client.js';

const USAGE = 'usage: mfsrun [-h | -N NODE | -j LIST] [-F] [-l|-L] [--restartable] [--from N] [--socket PATH] [--mount DIR] CMD [ARGS...]';
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
const SIGNO: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

class UsageError extends Error {}

interface Options {
  placement: number;
  nodes: number[];
  fallback: boolean;
  locked: boolean | undefined;
  restartable: boolean;
  from: number | undefined;
  socket: string | undefined;
  mount: string | undefined;
  clusterDir: string;
  argv: string[];
}

function nodeNumber(s: string | undefined, what: string): number {
  if (s === undefined || !/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw new UsageError(`${what}: a node number 1..65535, got ${JSON.stringify(s)}`);
  return Number(s);
}

/** "1,3,5-7" */
function nodeList(s: string | undefined): number[] {
  if (!s) throw new UsageError('-j: a list of nodes like 1,3,5-7');
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`-j: "${part}" is not a node or a range A-B`);
    const a = nodeNumber(m[1], '-j');
    const b = m[2] === undefined ? a : nodeNumber(m[2], '-j');
    if (b < a || b - a > 65535) throw new UsageError(`-j: bad range ${part}`);
    for (let n = a; n <= b; n++) out.push(n);
  }
  return out;
}

export function parseMfsrunArgs(args: string[], env: NodeJS.ProcessEnv): Options {
  const o: Options = {
    placement: Placement.ADVISOR, nodes: [], fallback: false, locked: undefined, restartable: false,
    from: env['OMFS_NODE'] ? nodeNumber(env['OMFS_NODE'], 'OMFS_NODE') : undefined,
    socket: env['OMFS_RUN_SOCKET'] || undefined, mount: env['OMFS_MOUNT'] || undefined, clusterDir: DEFAULT_CLUSTER_DIR, argv: [],
  };
  let i = 0;
  const value = (flag: string): string => {
    const v = args[++i];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a === '-h') o.placement = Placement.HOME;
    else if (a === '-N') {
      o.placement = Placement.NODE;
      o.nodes = [nodeNumber(value('-N'), '-N')];
    } else if (/^-\d+$/.test(a)) {
      o.placement = Placement.NODE;
      o.nodes = [nodeNumber(a.slice(1), a)];
    } else if (a === '-j') {
      o.placement = Placement.LIST;
      o.nodes = nodeList(value('-j'));
    } else if (a.startsWith('-j')) {
      o.placement = Placement.LIST;
      o.nodes = nodeList(a.slice(2));
    } else if (a === '-F') o.fallback = true;
    else if (a === '-L') o.locked = true;
    else if (a === '-l') o.locked = false;
    else if (a === '--restartable') o.restartable = true;
    else if (a === '--from') o.from = nodeNumber(value('--from'), '--from');
    else if (a === '--socket') o.socket = value('--socket');
    else if (a === '--mount') o.mount = value('--mount');
    else if (a === '--cluster') o.clusterDir = value('--cluster');
    else if (a === '--help') throw new UsageError('');
    else throw new UsageError(`unknown option ${a}`);
  }
  o.argv = args.slice(i);
  if (o.argv.length === 0) throw new UsageError('no command');
  return o;
}

/** This node's /mfs: --mount, else node --from's folder of a local omfs-cluster, else /mfs. */
function callerMount(o: Options): string {
  if (o.mount) return resolve(o.mount);
  if (o.from !== undefined) {
    const node = join(o.clusterDir, `node${o.from}`);
    try {
      const m = readFileSync(join(node, 'mountpoint'), 'utf8').trim();
      if (isAbsolute(m)) return m;
    } catch {
      // no mountpoint file
    }
    if (existsSync(join(node, 'mfs'))) return join(node, 'mfs');
  }
  return '/mfs';
}

/** The path relative to the mount when it is in it (no "..": it climbs out), else undefined. */
function inMount(mount: string, path: string): string | undefined {
  const rel = relative(mount, path);
  if (rel === '') return '';
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel;
}

/** The node a mount-relative path names ("3/x" -> 3, "here/x" -> 0 = this node), undefined for none. */
function nodeOf(rel: string): number | undefined {
  const first = rel.split('/')[0] ?? '';
  if (/^\d+$/.test(first)) return Number(first);
  return first === 'here' || first === 'home' ? 0 : undefined;
}

export function buildStart(o: Options, cwd: string, env: NodeJS.ProcessEnv): RunStartMsg {
  const mount = callerMount(o);
  const s = emptyStart();
  const weights = new Map<number, RunWeightMsg>();
  const weigh = (rel: string, abs: string | undefined) => {
    const node = nodeOf(rel);
    if (node === undefined) return;
    let kb = 0;
    try {
      if (abs) {
        const st = statSync(abs);
        if (st.isFile()) kb = st.size / 1024;
      }
    } catch {
      // a path that does not exist yet (an output file) still names its node
    }
    const w = weights.get(node) ?? { node, calls: 0, read_kb: 0 };
    weights.set(node, { node, calls: w.calls + 1, read_kb: w.read_kb + kb });
  };
  const cwdRel = inMount(mount, cwd);
  s.cwd = Buffer.from(cwdRel ?? cwd);
  s.cwd_in_mount = cwdRel !== undefined;
  if (cwdRel !== undefined) weigh(cwdRel, undefined);
  s.argv = o.argv.map((a, i) => {
    if (i > 0 && isAbsolute(a)) {
      const rel = inMount(mount, a);
      if (rel !== undefined) {
        s.mount_args.push(i);
        weigh(rel, a);
        return Buffer.from(rel);
      }
    } else if (i > 0 && cwdRel !== undefined && !a.startsWith('-') && existsSync(resolve(cwd, a))) {
      // A relative path stays relative to the (translated) directory; it still weighs its node.
      const rel = inMount(mount, resolve(cwd, a));
      if (rel !== undefined) weigh(rel, resolve(cwd, a));
    }
    return Buffer.from(a);
  });
  s.env = Object.entries(env).map(([k, v]) => Buffer.from(`${k}=${v ?? ''}`));
  s.placement = o.placement;
  s.nodes = o.nodes;
  s.fallback = o.fallback;
  // mosrun: locked by default when told where to run, unlocked when the system chooses.
  s.locked = o.locked ?? o.placement !== Placement.ADVISOR;
  s.restartable = o.restartable;
  s.weights = [...weights.values()];
  return s;
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseMfsrunArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`mfsrun: ${err.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    return err.message ? 2 : 0;
  }
  const socket = findRunSocket(o.socket, o.from, o.clusterDir);
  const start = buildStart(o, process.cwd(), process.env);
  return new Promise<number>((done, fail) => {
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      // Output written before the exit status must reach its reader first.
      process.stdout.write('', () => process.stderr.write('', () => done(code)));
    };
    let conn: RunConnection | undefined;
    // mfsd's output is read only as fast as our own output is taken (a slow pipe holds the job).
    const flow = (ok: boolean, out: NodeJS.WriteStream) => {
      if (ok || !conn) return;
      conn.pause();
      out.once('drain', () => conn?.resume());
    };
    // A reader that went away (mfsrun ... | head): the job gets SIGPIPE, as it would writing to
    // that pipe itself, and mfsrun ends as a process killed by it does (128+13), silently.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') return;
      conn?.send({ what: 'signal', signal: 13 });
      process.exit(141);
    });
    const onMessage = (m: RunOutputMsg) => {
      if (m.what === 'stdout') flow(process.stdout.write(m.stdout), process.stdout);
      else if (m.what === 'stderr') flow(process.stderr.write(m.stderr), process.stderr);
      else if (m.what === 'notice') process.stderr.write(`mfsrun: ${m.notice}\n`);
      else if (m.what === 'exited') finish(m.exited.code);
      else if (m.what === 'failed') {
        process.stderr.write(`mfsrun: ${o.argv[0]}: ${m.failed.message}\n`);
        finish(255);
      } else if (m.what === 'started' && process.env['MFSRUN_VERBOSE']) {
        process.stderr.write(`mfsrun: running on node ${m.started.node} (pid ${m.started.pid}, job ${m.started.job})\n`);
      }
    };
    connectRun(socket, {
      message: onMessage,
      closed: (err) => {
        if (finished) return;
        process.stderr.write(`mfsrun: lost mfsd${err ? ` (${err.message})` : ''}; the command's status is unknown\n`);
        finish(255);
      },
    }).then((c) => {
      conn = c;
      c.send({ what: 'start', start });
      for (const sig of FORWARDED) process.on(sig, () => c.send({ what: 'signal', signal: SIGNO[sig]! }));
      // Input is read only as fast as the job takes it (through mfsd, which reads us as fast).
      process.stdin.on('data', (b: Buffer) => {
        if (c.send({ what: 'stdin', stdin: b })) return;
        process.stdin.pause();
        c.whenDrained(() => process.stdin.resume());
      });
      process.stdin.on('end', () => c.send({ what: 'stdin_eof', stdin_eof: true }));
      process.stdin.on('error', () => c.send({ what: 'stdin_eof', stdin_eof: true }));
    }, fail);
  });
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`mfsrun: ${err.message}\n`);
  process.exit(255);
});
