// Starting the cluster's long-running processes (mfsd, mfs-mount) the way admin commands need
// them: detached in their own session (a terminal's Ctrl-C or hangup does not reach them), output
// in a log file (never a pipe: a pipe whose reader exits turns the next write into EPIPE), and
// ready only once they say so. Then stopping them by pid, checked against /proc so a recycled pid
// is never killed.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { mountAt } from '../kernel/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class StartError extends Error {}

/**
 * Runs `node script args` detached with stdout and stderr in `logFile` (truncated), and waits
 * until a line of the log starts with `readyPrefix`. Its pid; a StartError with the log's tail if
 * it exits first or is not ready within `timeoutMs` (then it has been killed). `onSpawn` gets the pid
 * at once.
 */
export async function startDetached(
  script: string, args: string[], logFile: string, readyPrefix: string, timeoutMs: number, onSpawn: (pid: number) => void = () => {},
): Promise<number> {
  const fd = openSync(logFile, 'w', 0o640);
  const child = spawn(process.execPath, [script, ...args], { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = signal ?? `code ${code}`));
  child.once('error', (err) => (exit = err.message));
  const pid = child.pid;
  // Recorded before waiting: a caller killed meanwhile must still leave the pid for its cleanup.
  if (pid !== undefined) onSpawn(pid);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = readLog(logFile);
    if (pid !== undefined && log.split('\n').some((l) => l.startsWith(readyPrefix))) {
      child.unref();
      return pid;
    }
    if (exit !== undefined) throw new StartError(`${script} exited (${exit}) before it was ready; ${logFile}:\n${tail(log)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new StartError(`${script} not ready after ${timeoutMs} ms (killed); ${logFile}:\n${tail(log)}`);
    }
    await sleep(50);
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const tail = (log: string): string => log.split('\n').slice(-20).map((l) => `  ${l}`).join('\n');

/** Whether `dir` lists within `timeoutMs` (a hung mount does not hang the caller past it). */
export async function answers(dir: string, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
  const listed = readdir(dir).then(() => true, () => false);
  const ok = await Promise.race([listed, late]);
  clearTimeout(timer);
  return ok;
}

/** Waits until `dir` lists, retrying for up to `timeoutMs`. */
export async function waitAnswers(dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await answers(dir, Math.max(100, deadline - Date.now()))) return true;
    await sleep(100);
  }
  return false;
}

/** Whether pid `pid` is alive and its command line contains `marker` (our script's path). */
export function isOurs(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(marker));
  } catch {
    return false;
  }
}

/** A zombie or gone process has stopped (a zombie's /proc entry outlives it until reaped). */
function stopped(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. True if it stopped (or was not ours to stop). */
export async function stopProcess(pid: number, marker: string, graceMs: number): Promise<boolean> {
  if (!isOurs(pid, marker)) return true;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (stopped(pid)) return true;
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return true;
  }
  for (let i = 0; i < 40; i++) {
    if (stopped(pid)) return true;
    await sleep(50);
  }
  return false;
}

/** Unmounts `path` if something is mounted there: umount, then umount -l if it is busy. */
export function unmountIfMounted(path: string): boolean {
  if (!mountAt(path)) return true;
  spawnSync('umount', [path], { stdio: 'ignore' });
  if (mountAt(path)) spawnSync('umount', ['-l', path], { stdio: 'ignore' });
  return !mountAt(path);
}

/** Pids of live processes whose command line has `marker` (what `down` may have missed). */
export function processesWith(marker: string): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => pid !== process.pid && !stopped(pid) && isOurs(pid, marker));
}
