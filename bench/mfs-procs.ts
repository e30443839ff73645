// The long-running processes and mounts of bench/mfs-vs-sshfs.ts (mfsd, mfs-mount, sshd, sshfs),
// and the one place that undoes them. Every daemon runs detached in its own process group, so a
// Ctrl-C in the terminal reaches the bench alone, which then stops things in order; its output goes
// to a log file, never a pipe (a daemon writing into a pipe nobody reads would block). Whatever way
// the bench exits, `cleanupNow` (the exit hook) detaches what is still mounted and kills what still
// runs, and the scratch dir goes only once nothing is mounted in it (rm -rf through a live mount
// would delete the nodes' files through it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Daemon {
  what: string;
  proc: ChildProcess;
  logFile: string;
  /** Resolves with a description of how it ended (exit code or signal). */
  exited: Promise<string>;
}

const daemons = new Set<Daemon>();
const mounts = new Set<string>();
const scratchDirs = new Set<string>();
/** Directories made for the run outside the scratch dir (sshd's /run/sshd), removed at the end. */
const madeDirs = new Set<string>();

export const trackMount = (mnt: string): void => void mounts.add(mnt);
export const trackScratch = (dir: string): void => void scratchDirs.add(dir);
export const trackMadeDir = (dir: string): void => void madeDirs.add(dir);

/** The mount at exactly `mnt`, from /proc/self/mountinfo: its fs type and device minor. */
export function mountInfo(mnt: string): { fsType: string; minor: number } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== mnt) continue;
    const sep = f.indexOf('-');
    return { fsType: f[sep + 1] ?? '', minor: Number((f[2] ?? '0:0').split(':')[1] ?? 0) };
  }
  return undefined;
}

/** Tail of a log file, indented, for error messages. */
export function logTail(file: string, lines = 15): string {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '  (no log)';
  }
  return text.trim().split('\n').slice(-lines).map((l) => `  ${l}`).join('\n');
}

/**
 * Starts `cmd args` detached with its output in `logFile`, and waits until `ready()` says so (polled).
 * Throws with the log's tail if it exits first or is not ready within `timeoutMs` (then it is killed).
 */
export async function startDaemon(
  what: string, cmd: string, args: string[], logFile: string, ready: () => boolean, timeoutMs = 30_000,
): Promise<Daemon> {
  const fd = openSync(logFile, 'w');
  const proc = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let ended: string | undefined;
  const exited = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => resolve((ended = signal ? `killed by ${signal}` : `exited ${code}`)));
    proc.once('error', (err) => resolve((ended = err.message)));
  });
  const d: Daemon = { what, proc, logFile, exited };
  daemons.add(d);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ended === undefined && ready()) return d;
    if (ended !== undefined) {
      daemons.delete(d);
      throw new Error(`${what} ${ended} before it was ready; ${logFile}:\n${logTail(logFile)}`);
    }
    if (Date.now() > deadline) {
      await stopDaemon(d, 0);
      throw new Error(`${what} not ready after ${timeoutMs} ms (killed); ${logFile}:\n${logTail(logFile)}`);
    }
    await sleep(50);
  }
}

/** A ready() for startDaemon: some line of the log starts with `prefix` (or contains it, with `anywhere`). */
export const logSays = (logFile: string, text: string, anywhere = false) => (): boolean => {
  try {
    const lines = readFileSync(logFile, 'utf8').split('\n');
    return lines.some((l) => (anywhere ? l.includes(text) : l.startsWith(text)));
  } catch {
    return false;
  }
};

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
export async function stopDaemon(d: Daemon, graceMs = 10_000): Promise<void> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const gone = await Promise.race([d.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!gone) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
  }
  daemons.delete(d);
}

/** Unmounts `mnt` (plain umount, then lazy); true if nothing is mounted there any more. */
export function unmount(mnt: string): boolean {
  if (mountInfo(mnt)) spawnSync('umount', [mnt], { stdio: 'ignore' });
  if (mountInfo(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
  const gone = !mountInfo(mnt);
  if (gone) mounts.delete(mnt);
  return gone;
}

/**
 * Aborts the FUSE connection of `mnt` (every pending and later request fails with ENOTCONN), through
 * fusectl, mounted at its usual place if nothing did: a hung phase then fails instead of hanging.
 */
export function abortFuse(mnt: string): boolean {
  const info = mountInfo(mnt);
  if (!info) return false;
  const dir = '/sys/fs/fuse/connections';
  if (!mountInfo(dir)) spawnSync('mount', ['-t', 'fusectl', 'fusectl', dir], { stdio: 'ignore' });
  const file = `${dir}/${info.minor}/abort`;
  if (!existsSync(file)) return false;
  try {
    writeFileSync(file, '1');
    return true;
  } catch {
    return false;
  }
}

/**
 * Synchronous last resort (the exit hook, and after a failure): detach every mount, kill every
 * daemon, remove the scratch dirs in which nothing is mounted any more, and the dirs made outside.
 */
export function cleanupNow(): void {
  for (const mnt of mounts) unmount(mnt);
  for (const d of daemons) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
  daemons.clear();
  const stillMounted = [...mounts].filter((m) => mountInfo(m));
  for (const dir of scratchDirs) {
    if (stillMounted.some((m) => m.startsWith(dir + '/'))) {
      process.stderr.write(`left ${dir} in place: ${stillMounted.join(', ')} still mounted\n`);
      continue;
    }
    rmSync(dir, { recursive: true, force: true });
  }
  scratchDirs.clear();
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
  madeDirs.clear();
}

/** A TCP port free on 127.0.0.1 right now (the kernel's choice). */
export function freePort(): Promise<number> {
  return new Promise((ok, ko) => {
    const s = createServer();
    s.once('error', ko);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? ok(addr.port) : ko(new Error('no free port'))));
    });
  });
}

/** Runs a command to completion; throws with its stderr on failure. Its stdout. */
export function runOrThrow(cmd: string, args: string[], what = `${cmd} ${args.join(' ')}`): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: exit ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`);
  return r.stdout;
}
