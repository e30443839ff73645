// How the passthrough starts and ends: signals, an admin's umount, umount while busy, a killed daemon
// leaving a dead mount that the next start cleans up, and bad command lines.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import {
  eventually,
  fuseMounts,
  isMounted,
  leftoverPassthroughMounts,
  makeTempDir,
  PASSTHROUGH_CLI,
  passthroughTest,
  startPassthrough,
} from '../harness/passthrough-mount.js';
import { sh } from './tools.js';

const test = passthroughTest();
// These tests kill and remount on purpose: whatever happened, nothing may be left mounted.
afterAll(() => {
  expect(leftoverPassthroughMounts()).toEqual([]);
});

function mountsAt(mnt: string): number {
  return fuseMounts().filter((m) => m.mountPoint === mnt).length;
}

/** A process that keeps the mount busy, either by its cwd or by an open file; killed in `finally`. */
async function busyWith(kind: 'cwd' | 'open-file', mnt: string): Promise<ChildProcess> {
  const script = kind === 'cwd' ? 'cd "$1" && exec sleep 1000' : 'exec 3< "$1/held" && exec sleep 1000';
  const proc = spawn('bash', ['-c', script, 'bash', mnt], { stdio: 'ignore' });
  const target = kind === 'cwd' ? mnt : join(mnt, 'held');
  const link = kind === 'cwd' ? 'cwd' : 'fd/3';
  // Wait until the kernel says the process really holds the mount (and has exec'd sleep).
  const holds = (): boolean => {
    try {
      return readlinkSync(`/proc/${proc.pid}/${link}`) === target && readlinkSync(`/proc/${proc.pid}/exe`).endsWith('sleep');
    } catch {
      return false;
    }
  };
  if (!(await eventually(holds, 10_000))) throw new Error(`${kind} holder never took the mount`);
  return proc;
}

describe('ending a session', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} unmounts and exits 0`, async ({ pt }) => {
      pt.proc.kill(signal);
      expect(await pt.exited).toBe(0);
      expect(isMounted(pt.mnt)).toBe(false);
    });
  }

  test("an admin's umount ends the daemon with exit 0", async ({ pt }) => {
    const r = spawnSync('umount', [pt.mnt], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(await pt.exited).toBe(0);
    expect(isMounted(pt.mnt)).toBe(false);
  });

  for (const kind of ['cwd', 'open-file'] as const) {
    test(`umount while a process holds the mount (${kind}) fails with EBUSY and the mount keeps working`, async ({ pt }) => {
      await writeFile(join(pt.mnt, 'held'), 'still here\n');
      const holder = await busyWith(kind, pt.mnt);
      try {
        const busy = spawnSync('umount', [pt.mnt], { encoding: 'utf8' });
        expect(busy.status).not.toBe(0);
        expect(busy.stderr).toContain('target is busy');
        expect(isMounted(pt.mnt)).toBe(true);
        expect(pt.proc.exitCode).toBe(null);
        expect(await readFile(join(pt.mnt, 'held'), 'utf8')).toBe('still here\n');
        await writeFile(join(pt.mnt, 'after-ebusy'), 'writable\n');
        expect(await readFile(join(pt.source, 'after-ebusy'), 'utf8')).toBe('writable\n');
      } finally {
        holder.kill('SIGKILL');
      }
      await new Promise((r) => (holder.exitCode !== null || holder.signalCode !== null ? r(null) : holder.once('exit', r)));
      const r = spawnSync('umount', [pt.mnt], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(await pt.exited).toBe(0);
    });
  }

  test('a SIGKILLed daemon leaves a dead mount (ENOTCONN) that a fresh start cleans up and mounts over', async ({ pt }) => {
    await writeFile(join(pt.source, 'survivor'), 'backing data\n');
    pt.proc.kill('SIGKILL');
    await pt.exited;
    const dead = await sh('stat "$1"', [pt.mnt]);
    expect(dead.code).not.toBe(0);
    expect(dead.stderr).toContain('Transport endpoint is not connected');
    expect(mountsAt(pt.mnt)).toBe(1);

    const again = await startPassthrough({ source: pt.source, mnt: pt.mnt });
    try {
      expect(mountsAt(pt.mnt)).toBe(1); // the dead mount was removed, not stacked under the new one
      expect(await readFile(join(pt.mnt, 'survivor'), 'utf8')).toBe('backing data\n');
      await writeFile(join(pt.mnt, 'new'), 'after restart\n');
      expect(await readFile(join(pt.source, 'new'), 'utf8')).toBe('after restart\n');
    } finally {
      await again.unmount();
    }
    expect(isMounted(pt.mnt)).toBe(false);
  });
});

describe('command line', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [PASSTHROUGH_CLI, ...args], { encoding: 'utf8', timeout: 15_000 });

  test('a MOUNTPOINT that is already mounted is refused with exit 1; the mount there is untouched', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'first'), 'first mount\n');
    const r = run([pt.source, pt.mnt]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`omfs-passthrough: MOUNTPOINT ${pt.mnt} is already a mount point (fuse.omfs-passthrough ${pt.source}); unmount it first\n`);
    expect(r.stdout).toBe('');
    expect(mountsAt(pt.mnt)).toBe(1);
    expect(pt.proc.exitCode).toBe(null);
    expect(await readFile(join(pt.mnt, 'first'), 'utf8')).toBe('first mount\n');
  });

  test('without root it says that it needs root, exit 1, nothing mounted', async () => {
    const dir = await makeTempDir('omfs-pt-args-');
    try {
      for (const d of ['src', 'mnt']) await mkdir(join(dir, d), { mode: 0o755 });
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, PASSTHROUGH_CLI, join(dir, 'src'), join(dir, 'mnt')],
        { encoding: 'utf8', timeout: 15_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('omfs-passthrough needs root (CAP_SYS_ADMIN) to open /dev/fuse and mount');
      expect(isMounted(join(dir, 'mnt'))).toBe(false);
    } finally {
      if (isMounted(join(dir, 'mnt'))) spawnSync('umount', ['-l', join(dir, 'mnt')]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['no arguments', []],
    ['one argument', ['/tmp']],
    ['three arguments', ['/tmp', '/tmp', '/tmp']],
    ['an unknown option', ['--no-such-option', '/tmp', '/mnt']],
    ['a non-numeric timeout', ['--timeout', 'soon', '/tmp', '/mnt']],
    ['a negative busy-poll time', ['--busy-poll=-5', '/tmp', '/mnt']],
    ['a busy-poll time with no value', ['/tmp', '/mnt', '--busy-poll']],
  ])('%s: exit 2 with a message on stderr, nothing mounted', (_name, args) => {
    const r = run(args);
    expect(r.status).toBe(2);
    expect(r.stderr.length).toBeGreaterThan(0);
    expect(r.stdout).not.toContain('mounted');
    // Only these paths: other processes on the machine may mount and unmount meanwhile.
    expect(args.filter((a) => a.startsWith('/') && isMounted(a))).toEqual([]);
  });

  test('a missing SOURCE fails with a message naming it, nothing mounted', async () => {
    const dir = await makeTempDir('omfs-pt-args-');
    try {
      const missing = join(dir, 'does-not-exist');
      await mkdir(join(dir, 'mnt'));
      const r = run([missing, join(dir, 'mnt')]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(missing);
      expect(isMounted(join(dir, 'mnt'))).toBe(false);
    } finally {
      if (isMounted(join(dir, 'mnt'))) spawnSync('umount', ['-l', join(dir, 'mnt')]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
