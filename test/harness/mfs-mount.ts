// A real /mfs mount for tests: the compiled bin/mfs-mount spawned in the foreground on a temp
// MOUNTPOINT, with a map file naming the given real mfsd daemons and a client certificate named
// node<N> from the test CA. unmount() always leaves no mount, process or temp dir behind
// (SIGTERM, then SIGKILL, then `umount -l`, then rm -rf), also when the test failed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MfsdHandle, TestCa } from './mfsd.js';
import { isMounted, makeTempDir, sleep } from './passthrough-mount.js';

// OMFS_MFS_MOUNT_JS lets the same suites run against another build of the command.
export const MFS_MOUNT_JS = process.env.OMFS_MFS_MOUNT_JS ?? fileURLToPath(new URL('../../dist/bin/mfs-mount.js', import.meta.url));
const READY_PREFIX = 'mfs-mount: mounted ';
const OUTPUT_KEEP_CHARS = 64 * 1024;

export interface MfsMount {
  mnt: string;
  /** The map file the mount read. */
  mapFile: string;
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  unmount(): Promise<void>;
}

export interface MfsMountOptions {
  ca: TestCa;
  /** This mount's node number (its certificate names node<N>). */
  node: number;
  /** The daemons of the map, each under its own nodeId. */
  daemons: MfsdHandle[];
  /** More map lines (e.g. a node whose daemon is not running). */
  extraMapLines?: string[];
  /** Extra command-line arguments, e.g. ['-o', 'soft,timeo=2000']. */
  args?: string[];
  readyTimeoutMs?: number;
}

const certDirs = new Map<string, Promise<string>>();

// Mounts not torn down yet. A test that fails before its own teardown must not leave a mount or
// an mfs-mount process behind: when the test process exits, every one still here is killed and
// lazily unmounted (synchronously: an exit handler cannot wait).
const live = new Map<ChildProcess, string>();
process.on('exit', () => {
  for (const [proc, mnt] of live) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
  }
});

/** A certificate directory (ca.crt, node.crt, node.key) named node<N>, issued once per CA and node. */
function certDir(ca: TestCa, node: number): Promise<string> {
  const key = `${ca.dir}:${node}`;
  let dir = certDirs.get(key);
  if (!dir) certDirs.set(key, (dir = ca.issue(`node${node}`)));
  return dir;
}

export async function startMfsMount(o: MfsMountOptions): Promise<MfsMount> {
  if (!existsSync(MFS_MOUNT_JS)) throw new Error(`${MFS_MOUNT_JS} is missing: run "npm run build" first`);
  const root = await makeTempDir('omfs-mfs-');
  const mnt = join(root, 'mfs');
  await mkdir(mnt);
  const mapFile = join(root, 'mfs.map');
  writeFileSync(mapFile, [...o.daemons.map((d) => `${d.nodeId} 127.0.0.1:${d.port} 1`), ...(o.extraMapLines ?? [])].join('\n') + '\n');
  const certs = await certDir(o.ca, o.node);
  // stderr goes to a file, not a pipe: a test doing synchronous I/O on the mount does not read a
  // pipe meanwhile, and a mount writing --debug lines into a full pipe would block (and hang the test).
  const logFile = join(root, 'mfs-mount.log');
  const logFd = openSync(logFile, 'w');
  const proc = spawn(process.execPath, [
    MFS_MOUNT_JS, '--map', mapFile, '--node', String(o.node),
    '--tls-ca', join(certs, 'ca.crt'), '--tls-cert', join(certs, 'node.crt'), '--tls-key', join(certs, 'node.key'),
    ...(o.args ?? []), mnt,
  ], { stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  live.set(proc, mnt);
  let stdout = '';
  const keep = (chunk: Buffer): void => {
    stdout = (stdout + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
  };
  const output = (): string => {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8').slice(-OUTPUT_KEEP_CHARS);
    } catch {
      // removed by the teardown
    }
    return stdout + log;
  };
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const m: MfsMount = { mnt, mapFile, proc, output, exited, unmount: () => teardown(proc, exited, mnt, root) };
  const readyMs = o.readyTimeoutMs ?? 20_000;
  try {
    await new Promise<void>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`mfs-mount not ready after ${readyMs} ms; output:\n${output()}`)), readyMs);
      proc.stdout?.on('data', (chunk: Buffer) => {
        keep(chunk);
        text += chunk.toString('utf8');
        if (text.split('\n').some((l) => l.startsWith(READY_PREFIX))) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`mfs-mount exited (${code}) before it was ready; output:\n${output()}`));
      });
    });
    if (!isMounted(mnt)) throw new Error(`ready line printed but ${mnt} is not mounted; output:\n${output()}`);
  } catch (err) {
    await m.unmount();
    throw err;
  }
  return m;
}

async function teardown(proc: ChildProcess, exited: Promise<number | null>, mnt: string, root: string): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGTERM');
    const gone = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!gone) {
      proc.kill('SIGKILL');
      await exited;
    }
  }
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
  // Never rm through a live mount: that would delete the nodes' files through it.
  if (isMounted(mnt)) throw new Error(`teardown could not unmount ${mnt}`);
  live.delete(proc);
  await rm(root, { recursive: true, force: true });
}

/**
 * What `ls MOUNTPOINT` shows besides the node numbers: openMosix's special directories and the
 * control directory (fuse/mfs/special-nodes.ts).
 */
export const SPECIAL_ENTRIES = ['.control', 'here', 'home', 'lastexec', 'magic', 'selected'] as const;

/** The node numbers the root of an /mfs mount lists, in its order (the special entries left out). */
export function listedNodes(mnt: string): string[] {
  return readdirSync(mnt).filter((name) => /^[1-9]\d*$/.test(name));
}
