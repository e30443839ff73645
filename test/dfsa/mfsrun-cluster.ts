// N real mfsd daemons (mutual TLS, test CA) that know each other through one map (plus node N+1,
// which is down), each with its
// own mfsrun socket and its own "mount" folder standing for its /mfs (mntK/J for every node J), so
// a path under node 1's folder must come out under node K's when the job runs on node K.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { freePort } from '../harness/mfs-local.js';

export const MFSRUN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'bin', 'mfsrun.js');

export interface RunCluster {
  root: string;
  ca: TestCa;
  daemons: MfsdHandle[];
  /** Node K's certificate directory (node.crt, node.key, ca.crt; CN nodeK). */
  certs(k: number): string;
  /** Node K's mfsrun socket. */
  socket(k: number): string;
  /** Node K's mount folder (its /mfs). */
  mount(k: number): string;
  cleanup(): Promise<void>;
}

export interface RunClusterOptions {
  /** Each mfsd hosts a real /mfs (FUSE) at its mount folder instead of plain folders standing for it. */
  fuse?: boolean;
}

export async function startRunCluster(nodes: number, o: RunClusterOptions = {}): Promise<RunCluster> {
  const root = mkdtempSync(join(tmpdir(), 'omfs-mfsrun-'));
  const daemons: MfsdHandle[] = [];
  const c: RunCluster = {
    root, ca: undefined as unknown as TestCa, daemons,
    certs: (k) => join(root, 'tls', 'ca', `node${k}`),
    socket: (k) => join(root, `run${k}`, 'mfsrun.sock'),
    mount: (k) => join(root, `mnt${k}`),
    async cleanup() {
      // SIGTERM first: a daemon hosting /mfs unmounts it when it stops.
      for (const d of daemons) await d.stop('SIGTERM').catch(() => undefined);
      for (let k = 1; k <= daemons.length; k++) spawnSync('umount', ['-l', c.mount(k)], { stdio: 'ignore' });
      for (const d of daemons) await d.cleanup().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    // Everyone (nobody included) may reach the sockets and folders, as /run/omfs and /mfs are.
    chmodSync(root, 0o755); // mkdtemp makes it 0700
    c.ca = await makeTestCa(join(root, 'tls'));
    const ports: number[] = [];
    for (let k = 1; k <= nodes; k++) ports.push(await freePort());
    // Node nodes+1 is in the map but never started: a node that is down.
    const downPort = await freePort();
    const map = join(root, 'openmosix.map');
    writeFileSync(map, [...ports.map((p, i) => `${i + 1} 127.0.0.1:${p} 1`), `${nodes + 1} 127.0.0.1:${downPort} 1`].join('\n') + '\n');
    for (let k = 1; k <= nodes; k++) {
      if (o.fuse) mkdirSync(c.mount(k));
      else for (let j = 1; j <= nodes; j++) mkdirSync(join(c.mount(k), String(j)), { recursive: true });
      chmodSync(c.mount(k), 0o755);
      // Certificates named node<K> as on a real cluster: a mount's per-process I/O reports are
      // taken from its node's own certificate only (the scheduler test reports as node 1).
      const certs = await c.ca.issue(`node${k}`);
      const tls = { ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') };
      daemons.push(await startMfsd({
        nodeId: k,
        config: { insecure: false, tls, listen: `127.0.0.1:${ports[k - 1]}`, map, dfsa: { intervalMs: 200 },
          ...(o.fuse ? { mount: { path: c.mount(k) }, run: { socket: c.socket(k) } } : { run: { socket: c.socket(k), mount: c.mount(k) } }),
        },
      }));
    }
  } catch (err) {
    await c.cleanup();
    throw err;
  }
  return c;
}
