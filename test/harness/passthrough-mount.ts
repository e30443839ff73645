// A real mount of bin/omfs-passthrough for tests and benchmarks: temp SOURCE and MOUNTPOINT, the
// compiled CLI spawned in the foreground, and a teardown that always leaves no mount, process or dir
// behind (SIGTERM, then SIGKILL, then `umount -l`, then rm -rf).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as baseTest } from 'vitest';

// OMFS_PASSTHROUGH_CLI lets the same suite run against another implementation of the CLI contract.
export const PASSTHROUGH_CLI =
  process.env.OMFS_PASSTHROUGH_CLI ?? fileURLToPath(new URL('../../dist/bin/omfs-passthrough.js', import.meta.url));
const READY_PREFIX = 'omfs-passthrough: mounted ';
const OUTPUT_KEEP_CHARS = 64 * 1024;

export interface StartOptions {
  /** Extra CLI options such as --keep-cache or --direct-io. */
  args?: string[];
  /** Reuse existing directories (e.g. to remount over a dead mount); otherwise temp dirs are made. */
  source?: string;
  mnt?: string;
  readyTimeoutMs?: number;
}

export interface PassthroughMount {
  source: string;
  mnt: string;
  proc: ChildProcess;
  /** The child's stdout+stderr so far (tail), for failure messages. */
  output(): string;
  /** Resolves with the exit code (null if killed by a signal) once the daemon has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, wait, SIGKILL if needed, lazy-unmount leftovers, remove the temp dirs we made. */
  unmount(): Promise<void>;
}

export interface FuseMountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Every FUSE mount of this mount namespace, from /proc/self/mountinfo. */
export function fuseMounts(): FuseMountInfo[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  const mounts: FuseMountInfo[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // Fields: id parent maj:min root mountpoint options [optional...] - fstype source superopts
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fsType, source] = right.split(' ');
    if (!fsType?.startsWith('fuse')) continue;
    mounts.push({ mountPoint: unescape(left.split(' ')[4] ?? ''), fsType, source: unescape(source ?? '') });
  }
  return mounts;
}

const TEMP_PREFIX = 'omfs-pt-';

/** Mountpoints this process (one vitest worker, so one test file) has mounted the passthrough on. */
const startedHere = new Set<string>();

/** FUSE mounts still present on a mountpoint this process used: any entry after a teardown is a leak. */
export function leftoverPassthroughMounts(): FuseMountInfo[] {
  return fuseMounts().filter((m) => startedHere.has(m.mountPoint));
}

export function isMounted(mnt: string): boolean {
  const target = resolve(mnt);
  return fuseMounts().some((m) => m.mountPoint === target);
}

/** A temp dir that other users can traverse (mkdtemp makes 0700; the non-root tests need 0755). */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

export async function startPassthrough(options: StartOptions = {}): Promise<PassthroughMount> {
  if (!existsSync(PASSTHROUGH_CLI)) {
    throw new Error(`${PASSTHROUGH_CLI} is missing: build first (npx tsc -p tsconfig.json; node bin/copy-assets.mjs)`);
  }
  let ownedRoot: string | undefined;
  let source = options.source;
  let mnt = options.mnt;
  if (source === undefined || mnt === undefined) {
    ownedRoot = await makeTempDir(TEMP_PREFIX);
    source ??= join(ownedRoot, 'src');
    mnt ??= join(ownedRoot, 'mnt');
    for (const dir of [source, mnt]) {
      await mkdir(dir, { recursive: true });
      await chmod(dir, 0o755);
    }
  }
  startedHere.add(resolve(mnt));
  const proc = spawn(process.execPath, [PASSTHROUGH_CLI, ...(options.args ?? []), source, mnt], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
  };
  const exited = new Promise<number | null>((resolveExit) => {
    proc.once('exit', (code) => resolveExit(code));
  });
  proc.stderr?.on('data', keep);

  const mount: PassthroughMount = {
    source,
    mnt,
    proc,
    output: () => output,
    exited,
    unmount: () => teardown(proc, exited, mnt, ownedRoot),
  };

  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  try {
    await new Promise<void>((resolveReady, rejectReady) => {
      let stdoutText = '';
      const timer = setTimeout(
        () => rejectReady(new Error(`passthrough not ready after ${readyTimeoutMs} ms; output:\n${output}`)),
        readyTimeoutMs,
      );
      proc.stdout?.on('data', (chunk: Buffer) => {
        keep(chunk);
        stdoutText += chunk.toString('utf8');
        if (stdoutText.split('\n').some((l) => l.startsWith(READY_PREFIX))) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      // 'close' (not 'exit') fires after stdout is drained, so a ready line is never missed.
      proc.once('close', (code) => {
        clearTimeout(timer);
        rejectReady(new Error(`passthrough exited (${code}) before it was ready; output:\n${output}`));
      });
    });
    if (!isMounted(mnt)) throw new Error(`ready line printed but ${mnt} is not in mountinfo; output:\n${output}`);
  } catch (err) {
    await mount.unmount();
    throw err;
  }
  return mount;
}

async function teardown(proc: ChildProcess, exited: Promise<number | null>, mnt: string, ownedRoot?: string): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGTERM');
    const gone = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!gone) {
      proc.kill('SIGKILL');
      await exited;
    }
  }
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
  // Never rm through a live mount: that would delete the backing files through it.
  if (isMounted(mnt)) throw new Error(`teardown could not unmount ${mnt}`);
  if (ownedRoot !== undefined) await rm(ownedRoot, { recursive: true, force: true });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `probe` until it returns true or the deadline passes; returns the last verdict. */
export async function eventually(probe: () => Promise<boolean> | boolean, deadlineMs = 5_000, stepMs = 50): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}

/**
 * A vitest `test` with a `pt` fixture: a fresh passthrough mount per test, unmounted and removed after
 * the test whether it passed or not.
 */
export function passthroughTest(options: StartOptions = {}) {
  return baseTest.extend<{ pt: PassthroughMount }>({
    // eslint-disable-next-line no-empty-pattern -- vitest requires object destructuring here
    pt: async ({}, use) => {
      const mount = await startPassthrough(options);
      try {
        await use(mount);
      } finally {
        await mount.unmount();
      }
    },
  });
}

/** Read a file's text, or undefined if it cannot be read (used when polling). */
export async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}
