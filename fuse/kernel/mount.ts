// Mounting through `mount -i -t fuse`: we open /dev/fuse ourselves and hand the fd to mount(8) as
// its fd 3, so no setuid helper and no libfuse are involved.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';

export interface MountOptions {
  source: string;
  mountPoint: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  /** Shown as the filesystem subtype ("fuse.<subtype>") in mountinfo. */
  subtype?: string;
}

export function openFuseDevice(): number {
  return openSync('/dev/fuse', 'r+');
}

/** A FUSE mount whose daemon died answers ENOTCONN; lazily unmount it so we can mount again. */
export function cleanStaleMount(mountPoint: string): boolean {
  try {
    statSync(mountPoint);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTCONN') return false;
    spawnSync('umount', ['-l', mountPoint], { stdio: 'ignore' });
    return true;
  }
}

/** The mount whose mount point is `path` (an absolute path without symlinks), from /proc/self/mountinfo. */
export function mountAt(path: string): { fsType: string; source: string; device: string } | undefined {
  // mountinfo escapes space, tab, newline and backslash as \ooo.
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  let found: { fsType: string; source: string; device: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // Fields: id parent maj:min root mountpoint options [optional...] - fstype source superopts
    const sep = line.indexOf(' - ');
    if (sep < 0 || unescape(line.slice(0, sep).split(' ')[4] ?? '') !== path) continue;
    const [fsType = '', source = ''] = line.slice(sep + 3).split(' ');
    found = { fsType, source: unescape(source), device: line.split(' ')[2] ?? '' }; // the last one is on top
  }
  return found;
}

/** Run mount(8) with `fd` as the FUSE connection. Rejects with mount's own message on failure. */
export function mountFuse(fd: number, o: MountOptions): Promise<void> {
  const opts = ['fd=3', 'rootmode=40000', 'user_id=0', 'group_id=0'];
  if (o.allowOther) opts.push('allow_other');
  if (o.defaultPermissions) opts.push('default_permissions');
  const args = ['-i', '-t', o.subtype ? `fuse.${o.subtype}` : 'fuse', '-o', opts.join(','), o.source, o.mountPoint];
  return new Promise((resolve, reject) => {
    const child = spawn('mount', args, { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`mount failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

function runStatus(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.on('error', () => resolve(null));
    child.on('exit', (code) => resolve(code));
  });
}

/**
 * umount, falling back to a lazy umount when busy. Asynchronous on purpose: umount(8) stats the
 * mountpoint, and that GETATTR must be answered by this very process while it waits.
 */
export async function unmountFuse(mountPoint: string): Promise<boolean> {
  if ((await runStatus('umount', [mountPoint])) === 0) return true;
  return (await runStatus('umount', ['-l', mountPoint])) === 0;
}

export function closeFuseDevice(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * Sets the readahead of a mounted FUSE filesystem's backing device (its bdi). The kernel starts a
 * FUSE mount at min(its default 128 KiB, the max_readahead we answered at INIT), so sequential
 * reads arrive as 128 KiB READs; at 1 MiB there are 8x fewer round trips (seq read through
 * omfs-passthrough 0.8-1.1 GB/s -> 1.8-2.2 GB/s on this VM). Best effort: returns false if the
 * knob is not there or not writable.
 */
export function setMountReadahead(mountPoint: string, bytes: number): boolean {
  // The device comes from mountinfo: a stat of our own mount point from this thread would wait for
  // a GETATTR that only this thread can answer.
  const device = mountAt(mountPoint)?.device;
  if (!device) return false;
  try {
    writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, String(Math.floor(bytes / 1024)));
    return true;
  } catch {
    return false;
  }
}
