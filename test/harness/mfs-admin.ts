// The admin commands for tests: omfs-cluster (built), mount(8) with the mount.mfs helper, and
// process/mount checks that say what is left behind.
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type RunResult } from './mfsd.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OMFS_CLUSTER_JS = join(repo, 'dist', 'bin', 'omfs-cluster.js');
export const MOUNT_MFS_JS = join(repo, 'dist', 'bin', 'mount-mfs.js');
export const MOUNT_HELPER_SCRIPT = join(repo, 'bin', 'mount.mfs');
export const SBIN_HELPER = '/sbin/mount.mfs';

/** omfs-cluster with these arguments, to its end (up may take a while: certificates, 3 daemons). */
export function omfsCluster(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return runNode(OMFS_CLUSTER_JS, args, timeoutMs);
}

/** Runs a command to its end (mount, umount), with its output. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * mount(8) finds helpers only in /sbin: points /sbin/mount.mfs at this checkout's bin/mount.mfs (what
 * omfs-setup.sh installs) for the tests, and returns the undo, which puts back what was there
 * before (nothing, another checkout's link, or a file). A machine where setup ran from another
 * checkout (CI clones the repo elsewhere) must still test this checkout's build.
 */
export function ensureMountHelper(): () => void {
  let before: { link: string } | { file: Buffer; mode: number } | null = null;
  try {
    const st = lstatSync(SBIN_HELPER);
    before = st.isSymbolicLink() ? { link: readlinkSync(SBIN_HELPER) } : { file: readFileSync(SBIN_HELPER), mode: st.mode & 0o7777 };
  } catch {
    before = null; // not there
  }
  if (before && 'link' in before && before.link === MOUNT_HELPER_SCRIPT) return () => {};
  rmSync(SBIN_HELPER, { force: true });
  symlinkSync(MOUNT_HELPER_SCRIPT, SBIN_HELPER);
  return () => {
    rmSync(SBIN_HELPER, { force: true });
    if (before === null) return;
    if ('link' in before) symlinkSync(before.link, SBIN_HELPER);
    else writeFileSync(SBIN_HELPER, before.file, { mode: before.mode });
  };
}

/** Whether `pid` is a live process (a zombie counts as dead). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Live processes whose command line contains `text` (e.g. a mount point or a cluster dir). */
export function processesMentioning(text: string): Array<{ pid: number; cmdline: string }> {
  const out: Array<{ pid: number; cmdline: string }> = [];
  for (const d of readdirSafe('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (cmdline.includes(text) && alive(Number(d))) out.push({ pid: Number(d), cmdline });
  }
  return out;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Mount points in /proc/self/mountinfo at or under `prefix`. */
export function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === prefix || m.startsWith(prefix + '/'));
}

/** Polls `check` until it is true or `ms` passed; its last answer. */
export async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}
