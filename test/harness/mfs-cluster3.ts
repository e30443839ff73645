// N real nodes on this machine, each a real mfsd (mutual TLS, one export) and a real /mfs mount
// (the compiled mfs-mount) whose map names every daemon: node K's view is mount(K), node K's
// export file x is exportOf(K)/x = mount(J)/K/x for every J. Unlike omfs-cluster, the test keeps
// the handles, so it can SIGKILL one daemon and start it again on the same config, state dir and
// port (what a crash and a systemd restart do), and remount a node with other -o options.
// cleanup() leaves no mount, process or temp dir behind, also when the test failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, MFSD_JS, startMfsd, type MfsdHandle, type TestCa } from './mfsd.js';
import { startMfsMount, type MfsMount } from './mfs-mount.js';

export interface Cluster {
  ca: TestCa;
  /** daemons[K-1] is node K's mfsd. */
  daemons: MfsdHandle[];
  /** Node K's /mfs mount point. */
  mount(k: number): string;
  /** The directory node K exports (its /mfs/K). */
  exportOf(k: number): string;
  /** SIGKILL node K's mfsd and wait until it is gone. */
  kill9(k: number): Promise<void>;
  /** Start node K's mfsd again after kill9: same config, state dir and port. */
  restartAfterKill(k: number): Promise<void>;
  /** Unmount node K's /mfs and mount it again with these -o options. */
  remount(k: number, options: string): Promise<void>;
  cleanup(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  /** mfs-mount's -o list for node K's mount (default: none, i.e. hard). */
  mountOptions?: (k: number) => string | undefined;
}

// Daemons this file started again after a kill: the harness's own exit hook only knows the first.
const respawned = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of respawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** Starts `node dist/bin/mfsd.js --config FILE` and waits for its ready line. */
function spawnMfsd(configPath: string, timeoutMs = 30_000): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [MFSD_JS, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  respawned.add(proc);
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mfsd not ready after ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mfsd exited (${code}) before it was ready; stderr: ${err}`));
    });
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^mfsd: node \d+ listening on /m.test(out)) {
        clearTimeout(timer);
        proc.stdout?.resume();
        resolve(proc);
      }
    });
  });
}

const exited = (p: ChildProcess): Promise<void> =>
  p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const tmp = mkdtempSync(join(tmpdir(), 'omfs-cluster3-'));
  const daemons: MfsdHandle[] = [];
  const mounts: (MfsMount | undefined)[] = [];
  const ca = await makeTestCa(tmp);
  const mountNode = async (k: number, options: string | undefined): Promise<MfsMount> =>
    startMfsMount({ ca, node: k, daemons, args: options ? ['-o', options] : [] });
  const c: Cluster = {
    ca, daemons,
    mount: (k) => mounts[k - 1]!.mnt,
    exportOf: (k) => daemons[k - 1]!.exports[0]!.path,
    async kill9(k) {
      const d = daemons[k - 1]!;
      const gone = exited(d.proc);
      d.proc.kill('SIGKILL');
      await gone;
    },
    async restartAfterKill(k) {
      const d = daemons[k - 1]!;
      // The first start listened on port 0; the same port keeps the map (and the mounts) right.
      const config = JSON.parse(readFileSync(d.configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(d.configPath, JSON.stringify({ ...config, listen: `127.0.0.1:${d.port}` }, null, 2));
      // d.cleanup() kills d.proc: it must be the live one.
      d.proc = await spawnMfsd(d.configPath);
    },
    async remount(k, options) {
      await mounts[k - 1]?.unmount();
      mounts[k - 1] = undefined;
      mounts[k - 1] = await mountNode(k, options);
    },
    async cleanup() {
      const errors: unknown[] = [];
      for (const m of mounts) await m?.unmount().catch((e: unknown) => errors.push(e));
      for (const d of daemons) await d.cleanup().catch((e: unknown) => errors.push(e));
      rmSync(tmp, { recursive: true, force: true });
      if (errors.length) throw errors[0];
    },
  };
  try {
    for (let k = 1; k <= o.nodes; k++) daemons.push(await startMfsd({ ca, nodeId: k }));
    for (let k = 1; k <= o.nodes; k++) mounts.push(await mountNode(k, o.mountOptions?.(k)));
  } catch (err) {
    await c.cleanup().catch(() => undefined);
    throw err;
  }
  return c;
}
