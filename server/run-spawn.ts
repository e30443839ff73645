// A job on THIS node: a RunStart checked as hostile input, then spawned as the user it names,
// with no shell. As root the daemon runs `setpriv --reuid U --regid G --groups ... -- env -i -C CWD
// -- VARS... CMD ARGS`: setpriv sets uid, gid and the supplementary groups (Node's spawn can set uid
// and gid but clears the groups), and `env -C` enters the working directory as the user, so a directory
// the user may not enter fails as it would in their shell (exit 125) instead of being entered with
// root's rights. A daemon that is not root runs jobs only for its own uid, directly.
// The job gets its own process group (like a shell's foreground job), so a signal from mfsrun
// reaches the whole pipeline it started, as Ctrl-C in a terminal does.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { Errno } from '../proto/errno.js';
import type { ExitedMsg, RunStartMsg } from '../proto/run.js';
import { startTimeOf } from '../sys/peercred.js';

export const RUN_LIMITS = {
  argc: 4096,
  envc: 4096,
  /** argv and env together, as Linux's ARG_MAX of a default 8 MiB stack allows (2 MiB). */
  argBytes: 2 * 1024 * 1024,
  pathBytes: 4096,
  groups: 65536,
} as const;

export const SETPRIV = '/usr/bin/setpriv';
export const ENV = '/usr/bin/env';

export interface JobCredentials { uid: number; gid: number; groups: number[] }

/** What a checked RunStart asks for, with paths already on this node. */
export interface JobSpec { argv: string[]; cwd: string; env: Record<string, string> }

function utf8(b: Buffer, what: string): string {
  const s = b.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(b)) throw new Errno('EINVAL', `${what} is not valid UTF-8`);
  if (s.includes('\0')) throw new Errno('EINVAL', `${what} holds a NUL byte`);
  return s;
}

/** A path below the mount, as a client sent it: relative, no "..", nothing that climbs out. */
function underMount(mount: string, rel: string, what: string): string {
  if (isAbsolute(rel) || rel.split('/').includes('..')) throw new Errno('EINVAL', `${what}: a path in the mount must be relative and stay in it`);
  return rel === '' ? mount : normalize(join(mount, rel));
}

/** Checks every size and shape of a RunStart and translates its mount-relative paths to `mount`. */
export function jobSpecOf(s: RunStartMsg, mount: string): JobSpec {
  if (s.argv.length === 0) throw new Errno('EINVAL', 'no command');
  if (s.argv.length > RUN_LIMITS.argc) throw new Errno('E2BIG', `more than ${RUN_LIMITS.argc} arguments`);
  if (s.env.length > RUN_LIMITS.envc) throw new Errno('E2BIG', `more than ${RUN_LIMITS.envc} environment variables`);
  const bytes = [...s.argv, ...s.env].reduce((n, b) => n + b.length + 1, 0);
  if (bytes > RUN_LIMITS.argBytes) throw new Errno('E2BIG', `arguments and environment exceed ${RUN_LIMITS.argBytes} bytes`);
  if (s.cwd.length > RUN_LIMITS.pathBytes) throw new Errno('ENAMETOOLONG', 'working directory too long');
  const inMount = new Set(s.mount_args);
  for (const i of inMount) if (!(Number.isInteger(i) && i >= 0 && i < s.argv.length)) throw new Errno('EINVAL', `mount_args names argument ${i}`);
  const argv = s.argv.map((a, i) => {
    const arg = utf8(a, `argument ${i}`);
    return inMount.has(i) ? underMount(mount, arg, `argument ${i}`) : arg;
  });
  const cmd = argv[0]!;
  // `env` would take a first word with '=' for an assignment, not a command.
  if (cmd === '' || cmd.includes('=')) throw new Errno('EINVAL', 'the command name is empty or holds "="');
  const cwdRaw = utf8(s.cwd, 'working directory');
  const cwd = s.cwd_in_mount ? underMount(mount, cwdRaw, 'working directory') : cwdRaw;
  if (!isAbsolute(cwd)) throw new Errno('EINVAL', 'the working directory must be absolute');
  const env: Record<string, string> = {};
  for (const [i, e] of s.env.entries()) {
    const kv = utf8(e, `environment entry ${i}`);
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Errno('EINVAL', `environment entry ${i} is not NAME=value`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { argv, cwd, env };
}

export function checkCredentials(c: JobCredentials): void {
  const ok = (n: number) => Number.isInteger(n) && n >= 0 && n < 0xffffffff;
  if (!ok(c.uid) || !ok(c.gid) || c.groups.length > RUN_LIMITS.groups || !c.groups.every(ok)) throw new Errno('EINVAL', 'bad uid, gid or groups');
}

export interface JobEvents {
  stdout(b: Buffer): void;
  stderr(b: Buffer): void;
  /** Once, after stdout and stderr are drained. */
  exited(e: ExitedMsg): void;
}

/** A job running on this node. */
export interface LocalJob {
  pid: number;
  starttime: string;
  /** False when the job is not reading: wait for whenStdinDrained before more. */
  stdin(b: Buffer): boolean;
  whenStdinDrained(cb: () => void): void;
  endStdin(): void;
  /** Signal the job's process group; false when it is gone. */
  signal(signo: number): boolean;
  /** Stop reading the job's output (its pipes fill, and it blocks writing), and go on. */
  pause(): void;
  resume(): void;
}

const SIGNAL_NAMES = new Map<string, number>(Object.entries(constants.signals));

export function signalNumber(name: NodeJS.Signals | null): number {
  return name ? SIGNAL_NAMES.get(name) ?? 0 : 0;
}

/** What setpriv itself runs with, as root: nothing of the user's (see commandLine). */
const ROOT_STAGE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function commandLine(spec: JobSpec, cred: JobCredentials): { file: string; args: string[]; cwd: string; env: Record<string, string> } {
  const asRoot = process.getuid?.() === 0;
  if (!asRoot) {
    if (cred.uid !== process.getuid?.()) throw new Errno('EPERM', 'this mfsd is not root: it runs jobs only for its own user');
    return { file: spec.argv[0]!, args: spec.argv.slice(1), cwd: spec.cwd, env: spec.env };
  }
  const groups = cred.groups.length ? [`--groups=${cred.groups.join(',')}`] : ['--clear-groups'];
  // setpriv runs as root, so it must not see the user's environment: LD_PRELOAD, GCONV_PATH,
  // LOCPATH and the like would run the user's code as root before the switch. It gets a fixed
  // PATH; `env -i` (already the user) sets the user's variables, given as its arguments, for the
  // command it then executes. Nothing of root's capabilities is inherited (a non-root uid loses
  // them anyway; this covers ambient ones), and env enters the directory as the user.
  const vars = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  return {
    file: SETPRIV,
    args: [`--reuid=${cred.uid}`, `--regid=${cred.gid}`, ...groups, '--inh-caps=-all', '--', ENV, '-i', '-C', spec.cwd, '--', ...vars, ...spec.argv],
    cwd: '/',
    env: ROOT_STAGE_ENV,
  };
}

/** Spawns the job; throws Errno when it cannot start at all. */
export function spawnJob(spec: JobSpec, cred: JobCredentials, ev: JobEvents): LocalJob {
  const { file, args, cwd, env } = commandLine(spec, cred);
  let child: ChildProcess;
  try {
    child = spawn(file, args, { cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Errno('EINVAL', `cannot start ${spec.argv[0]}: ${(err as Error).message}`);
  }
  let done = false;
  const finish = (e: ExitedMsg) => {
    if (done) return;
    done = true;
    ev.exited(e);
  };
  child.stdout!.on('data', (b: Buffer) => ev.stdout(b));
  child.stderr!.on('data', (b: Buffer) => ev.stderr(b));
  // A job that stops reading its input is no error of the daemon's.
  child.stdin!.on('error', () => undefined);
  child.on('error', (err: NodeJS.ErrnoException) => {
    // Only without setpriv (a daemon not running as root) does a missing command land here.
    ev.stderr(Buffer.from(`mfsrun: ${spec.argv[0]}: ${err.code === 'ENOENT' ? 'command not found' : err.message}\n`));
    finish({ code: err.code === 'ENOENT' ? 127 : 126, signal: 0 });
  });
  child.on('close', (code, sig) => {
    const signo = signalNumber(sig);
    finish(signo ? { code: 128 + signo, signal: signo } : { code: code ?? 255, signal: 0 });
  });
  const pid = child.pid ?? 0;
  return {
    pid,
    starttime: pid ? startTimeOf(pid) : '',
    stdin: (b) => (child.stdin!.writable ? child.stdin!.write(b) : true),
    whenStdinDrained: (cb) => {
      // A job that exits without reading never drains: 'close' lets the sender go on (to nothing).
      const go = () => {
        child.stdin!.off('drain', go);
        child.stdin!.off('close', go);
        cb();
      };
      child.stdin!.once('drain', go);
      child.stdin!.once('close', go);
    },
    pause: () => {
      child.stdout!.pause();
      child.stderr!.pause();
    },
    resume: () => {
      child.stdout!.resume();
      child.stderr!.resume();
    },
    endStdin: () => void child.stdin!.end(),
    signal: (signo) => {
      if (!pid || done) return false;
      try {
        process.kill(-pid, signo);
        return true;
      } catch {
        return false;
      }
    },
  };
}
