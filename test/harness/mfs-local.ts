// A real mfsd that hosts the /mfs mount itself (config `mount`): the compiled bin/mfsd started by
// startMfsd with a map naming it and the given other daemons, and a mount point of its own in a
// temp dir outside the daemon's (never under an export: the daemon refuses that). cleanup() always
// leaves no mount, process or temp dir behind (SIGTERM, then SIGKILL, then `umount -l`, then rm),
// also when the test failed.
import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadNodeServiceConstructor, type Health } from '../../proto/node.js';
import { startMfsd, unary, type MfsdHandle, type TestCa } from './mfsd.js';
import { isMounted, makeTempDir } from './passthrough-mount.js';

export interface HostingMfsd {
  daemon: MfsdHandle;
  /** The mount point mfsd mounted the cluster on. */
  mnt: string;
  /** Where this node's export shows: /mfs/<node>. */
  own: string;
  /** SIGTERM and wait: the exit code. */
  stop(): Promise<number | null>;
  cleanup(): Promise<void>;
}

export interface HostingOptions {
  ca: TestCa;
  nodeId: number;
  /** The other nodes of the map. */
  others: MfsdHandle[];
  /** mount.options (mfs-mount's -o list). */
  options?: string;
}

/** A port free right now (a map line needs it before its daemon starts). */
export function freePort(): Promise<number> {
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

export async function startHostingMfsd(o: HostingOptions): Promise<HostingMfsd> {
  const root = await makeTempDir('omfs-mfs-local-');
  const mnt = join(root, 'mfs');
  await mkdir(mnt);
  const port = await freePort();
  const mapFile = join(root, 'mfs.map');
  writeFileSync(mapFile, [`${o.nodeId} 127.0.0.1:${port} 1`, ...o.others.map((d) => `${d.nodeId} 127.0.0.1:${d.port} 1`)].join('\n') + '\n');
  const removeRoot = async (): Promise<void> => {
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
    // Never rm through a live mount: that would delete the nodes' files through it.
    if (isMounted(mnt)) throw new Error(`cleanup could not unmount ${mnt}`);
    await rm(root, { recursive: true, force: true });
  };
  let daemon: MfsdHandle;
  try {
    // The daemon dials the other nodes with its own certificate, which must name node<N> (the
    // sessions' Hello is checked against it): startMfsd's own names are made unique per daemon.
    const certs = await o.ca.issue(`node${o.nodeId}`);
    daemon = await startMfsd({
      ca: o.ca, nodeId: o.nodeId,
      config: {
        listen: `127.0.0.1:${port}`, map: mapFile, mount: { path: mnt, options: o.options ?? 'cache=3600' },
        tls: { ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') },
      },
    });
  } catch (err) {
    await removeRoot();
    throw err;
  }
  const h: HostingMfsd = {
    daemon, mnt, own: join(mnt, String(o.nodeId)),
    stop: () => daemon.stop('SIGTERM'),
    async cleanup() {
      if (daemon.proc.exitCode === null && daemon.proc.signalCode === null) {
        const code = await Promise.race([daemon.stop('SIGTERM'), new Promise<'slow'>((r) => setTimeout(() => r('slow'), 10_000))]);
        if (code === 'slow') daemon.proc.kill('SIGKILL');
      }
      await daemon.cleanup();
      await removeRoot();
    },
  };
  return h;
}

/** The daemon's Health (its `sessions`: sessions with a live stream). */
export async function healthOf(d: MfsdHandle): Promise<Health> {
  const Ctor = loadNodeServiceConstructor();
  const client = new Ctor(d.address, await d.clientCredentials(), { 'grpc.use_local_subchannel_pool': 1 });
  try {
    return await unary<Health>(client as unknown as grpc.Client, 'Health', {});
  } finally {
    client.close();
  }
}
