// N real mfsd daemons (mutual TLS, test CA) that know each other through one map, each with its
// own mfsrun socket and its own "mount" folder standing for its /mfs (mntK/J for every node J), so
// a path under node 1's folder must come out under node K's when the job runs on node K.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';

export const MFSRUN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'bin', 'mfsrun.js');

export interface RunCluster {
  root: string;
  ca: TestCa;
  daemons: MfsdHandle[];
  /** Node K's mfsrun socket. */
  socket(k: number): string;
  /** Node K's mount folder (its /mfs). */
  mount(k: number): string;
  cleanup(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startRunCluster(nodes: number): Promise<RunCluster> {
  const root = mkdtempSync(join(tmpdir(), 'omfs-mfsrun-'));
  const daemons: MfsdHandle[] = [];
  const c: RunCluster = {
    root, ca: undefined as unknown as TestCa, daemons,
    socket: (k) => join(root, `run${k}`, 'mfsrun.sock'),
    mount: (k) => join(root, `mnt${k}`),
    async cleanup() {
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
    const map = join(root, 'openmosix.map');
    writeFileSync(map, ports.map((p, i) => `${i + 1} 127.0.0.1:${p} 1`).join('\n') + '\n');
    for (let k = 1; k <= nodes; k++) {
      for (let j = 1; j <= nodes; j++) mkdirSync(join(c.mount(k), String(j)), { recursive: true });
      chmodSync(c.mount(k), 0o755);
      daemons.push(await startMfsd({
        ca: c.ca, nodeId: k,
        config: { listen: `127.0.0.1:${ports[k - 1]}`, map, run: { socket: c.socket(k), mount: c.mount(k) }, dfsa: { intervalMs: 200 } },
      }));
    }
  } catch (err) {
    await c.cleanup();
    throw err;
  }
  return c;
}
