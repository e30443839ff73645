// A real FUSE mount whose every operation is answered late (fuse/passthrough/slow-main.ts): a
// directory that behaves like a slow NFS server or a failing disk, for tests of a slow export.
// The teardown always leaves no mount, process or directory behind (SIGTERM, then SIGKILL, then
// `umount -l`, then rm -rf), whether the test passed or not.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMounted, makeTempDir, sleep } from './passthrough-mount.js';

// From the sources (vitest) the built script is under dist/; from dist/test/harness it is beside.
const SLOW_MAIN = [new URL('../../dist/fuse/passthrough/slow-main.js', import.meta.url), new URL('../../fuse/passthrough/slow-main.js', import.meta.url)]
  .map((u) => fileURLToPath(u)).find((p) => p.endsWith('.js') && existsSync(p)) ?? fileURLToPath(new URL('../../dist/fuse/passthrough/slow-main.js', import.meta.url));
const READY = 'slow-passthrough: mounted ';

export interface SlowMount {
  /** The backing directory: files made here directly are seen (slowly) through `mnt`. */
  source: string;
  mnt: string;
  proc: ChildProcess;
  unmount(): Promise<void>;
}

export async function startSlowMount(delayMs: number, readyTimeoutMs = 15_000): Promise<SlowMount> {
  if (!existsSync(SLOW_MAIN)) throw new Error(`${SLOW_MAIN} is missing: run "npm run build" first`);
  const root = await makeTempDir('omfs-slow-');
  const source = join(root, 'src');
  const mnt = join(root, 'mnt');
  mkdirSync(source, { mode: 0o755 });
  mkdirSync(mnt, { mode: 0o755 });
  const proc = spawn(process.execPath, [SLOW_MAIN, '--delay-ms', String(delayMs), source, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const unmount = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
        proc.kill('SIGKILL');
        await exited;
      }
    }
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
    // Never rm through a live mount: that would delete the backing files through it.
    if (isMounted(mnt)) throw new Error(`could not unmount ${mnt}`);
    await rm(root, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`slow mount not ready after ${readyTimeoutMs} ms: ${output}`)), readyTimeoutMs);
      let out = '';
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(READY)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`slow mount exited (${code}) before it was ready: ${output}`));
      });
    });
  } catch (err) {
    await unmount();
    throw err;
  }
  return { source, mnt, proc, unmount };
}
