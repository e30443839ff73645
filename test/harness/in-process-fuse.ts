// A FileSystem of a test mounted in the test's own process with our FUSE layer, over a temp dir.
// Callers must reach it from child processes: a synchronous call from this thread into the mount
// would wait on the thread that must answer it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FileSystem, mountFuse, openFuseDevice, Session, type SessionOptions, unmountFuse } from '../../fuse/kernel/index.js';

export interface InProcessMount {
  mnt: string;
  session: Session;
  mounted(): boolean;
  /** Unmounts (lazily if it must), closes the device and removes the dir; safe after a failed test. */
  unmount(): Promise<void>;
}

export async function mountInProcess(fs: FileSystem, prefix: string, options: SessionOptions = {}): Promise<InProcessMount> {
  const mnt = await mkdtemp(join(tmpdir(), prefix));
  const fd = openFuseDevice();
  const session = new Session(fd, fs, options);
  const mounted = (): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
  await mountFuse(fd, { source: 'omfs-test', mountPoint: mnt, allowOther: true, defaultPermissions: false });
  session.start();
  await session.initialized;
  return {
    mnt,
    session,
    mounted,
    async unmount() {
      if (mounted()) await unmountFuse(mnt);
      if (mounted()) spawnSync('umount', ['-l', mnt]);
      await Promise.race([session.closed, new Promise((r) => setTimeout(r, 3000))]);
      await session.device.close(); // closes fd
      if (!mounted()) await rm(mnt, { recursive: true, force: true });
    },
  };
}
