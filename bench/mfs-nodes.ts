// The omfs side of bench/mfs-vs-sshfs.ts: a CA made with mfsctl, two mfsd (nodes 1 and 2, mutual
// TLS, one export each, each export the node's root, as omfs-cluster sets them up) and the cluster
// mounted as node 1 with mfs-mount and the map of both, so that MOUNT/2 is node 2's export, reached
// over its session on loopback.
import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  freePort, logSays, runOrThrow, sleep, startDaemon, stopDaemon, trackMount, unmount, type Daemon,
} from './mfs-procs.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const MFSD_JS = here('../bin/mfsd.js');
const MFSCTL_JS = here('../bin/mfsctl.js');
const MFS_MOUNT_JS = here('../bin/mfs-mount.js');
const NODES = [1, 2] as const;

export interface MfsCluster {
  /** Where the cluster is mounted as node 1. */
  mnt: string;
  /** Node K's export directory on the local disk. */
  exportOf(k: number): string;
  mount: Daemon;
  /** Node K's mfsd. */
  mfsdOf(k: number): Daemon | undefined;
  stop(): Promise<void>;
}

export async function startMfsCluster(dir: string): Promise<MfsCluster> {
  const ca = join(dir, 'ca');
  runOrThrow(process.execPath, [MFSCTL_JS, 'ca', 'init', '--dir', ca], 'mfsctl ca init');
  const nodeDir = (k: number): string => join(dir, `node${k}`);
  const tlsOf = (k: number, f: string): string => join(nodeDir(k), 'tls', f);
  const mapLines: string[] = [];
  for (const k of NODES) {
    for (const sub of ['export', 'state']) mkdirSync(join(nodeDir(k), sub), { recursive: true });
    runOrThrow(process.execPath, [MFSCTL_JS, 'ca', 'issue', `node${k}`, '--dir', ca, '--out', join(nodeDir(k), 'tls'), '--force'], `mfsctl ca issue node${k}`);
    const port = await freePort();
    mapLines.push(`${k} 127.0.0.1:${port} 1`);
    writeFileSync(join(nodeDir(k), 'mfsd.json'), JSON.stringify({
      node: k, listen: `127.0.0.1:${port}`, stateDir: join(nodeDir(k), 'state'),
      exports: [{ path: join(nodeDir(k), 'export'), dfsa: 1 }],
      tls: { ca: tlsOf(k, 'ca.crt'), cert: tlsOf(k, 'node.crt'), key: tlsOf(k, 'node.key') },
    }, null, 2) + '\n');
  }
  const map = join(dir, 'openmosix.map');
  writeFileSync(map, `# omfs bench: two nodes on this machine\n${mapLines.join('\n')}\n`);

  const mfsds: Daemon[] = [];
  const mnt = join(dir, 'mfs');
  let mount: Daemon | undefined;
  const stop = async (): Promise<void> => {
    // The mount first: it holds sessions to the daemons. SIGTERM unmounts; a busy mount is detached.
    if (mount) await stopDaemon(mount, 10_000);
    unmount(mnt);
    // mfsd drains in-flight calls for up to its shutdown grace (10 s) before it exits.
    for (const d of mfsds) await stopDaemon(d, 15_000);
  };
  try {
    for (const k of NODES) {
      const log = join(nodeDir(k), 'mfsd.log');
      mfsds.push(await startDaemon(`mfsd node ${k}`, process.execPath, [MFSD_JS, '--config', join(nodeDir(k), 'mfsd.json')], log, logSays(log, 'mfsd: node ')));
    }
    mkdirSync(mnt);
    trackMount(mnt);
    const log = join(dir, 'mfs-mount.log');
    mount = await startDaemon('mfs-mount', process.execPath, [
      MFS_MOUNT_JS, '--map', map, '--node', '1', '--tls-ca', tlsOf(1, 'ca.crt'), '--tls-cert', tlsOf(1, 'node.crt'),
      '--tls-key', tlsOf(1, 'node.key'), mnt,
    ], log, logSays(log, 'mfs-mount: mounted '));
    // The session to node 2 opens on first use: open it now, outside every figure.
    await waitListing(join(mnt, '2'), 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { mnt, exportOf: (k) => join(nodeDir(k), 'export'), mount, mfsdOf: (k) => mfsds[NODES.indexOf(k as 1 | 2)], stop };
}

async function waitListing(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      await readdir(path);
      return;
    } catch (err) {
      last = (err as Error).message;
      await sleep(200);
    }
  }
  throw new Error(`${path} does not list after ${timeoutMs} ms: ${last}`);
}
