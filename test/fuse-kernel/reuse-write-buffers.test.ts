// SessionOptions.reuseWriteBuffers on a real mount (the passthrough, served in this process): a large
// WRITE's read buffer is read into again once its handler has fulfilled, never before. Each write
// here is answered a turn of the event loop late (the handler still holds its payload while the
// next request could be read), the file is written by a child process (cp) so this process stays
// free to serve it, and what lands in the source is byte for byte what was written, while the
// WRITEs shared a few buffers between them.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mountFuse, openFuseDevice, Session, unmountFuse, type FileSystem } from '../../fuse/kernel/index.js';
import { PassthroughFs } from '../../fuse/passthrough/passthrough.js';

const MIB = 1 << 20;
let root: string;
let session: Session | undefined;
let mounted = false;
const seenMemory = new Set<ArrayBufferLike>();
let writes = 0;

const isMounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'omfs-reuse-'));
  mkdirSync(join(root, 'src'));
  mkdirSync(join(root, 'mnt'));
  const inner = new PassthroughFs(join(root, 'src'), { timeout: 0, keepCache: false, directIo: false });
  const fd = openFuseDevice();
  inner.useDevice(fd);
  // Every WRITE answered after a turn of the event loop, with a check that its payload is intact then.
  const fs = new Proxy(inner, {
    get(target, key, receiver) {
      if (key !== 'write') return Reflect.get(target, key, receiver) as unknown;
      return async (ctx: Parameters<NonNullable<FileSystem['write']>>[0], r: Parameters<NonNullable<FileSystem['write']>>[1]) => {
        writes++;
        seenMemory.add(r.data.buffer);
        const copy = Buffer.from(r.data);
        await new Promise((done) => setImmediate(done));
        if (!copy.equals(r.data)) throw Object.assign(new Error('payload changed while its WRITE was pending'), { code: 'EIO' });
        return target.write(ctx, r);
      };
    },
  }) as FileSystem;
  session = new Session(fd, fs, { reuseWriteBuffers: true });
  await mountFuse(fd, { source: join(root, 'src'), mountPoint: join(root, 'mnt'), allowOther: true, defaultPermissions: true, subtype: 'omfs-reuse-test' });
  session.start();
  await session.initialized;
  mounted = true;
}, 30_000);

afterAll(async () => {
  const mnt = join(root, 'mnt');
  if (mounted) await unmountFuse(mnt);
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
  await session?.device.close();
  if (!isMounted(mnt)) rmSync(root, { recursive: true, force: true });
}, 30_000);

it('large WRITEs reuse a few read buffers, and every byte written arrives', async () => {
  const data = randomBytes(48 * MIB + 12345);
  const from = join(root, 'data.bin');
  writeFileSync(from, data);
  const code = await new Promise<number | null>((resolve) => {
    const cp = spawn('dd', [`if=${from}`, `of=${join(root, 'mnt', 'copy.bin')}`, 'bs=1M', 'status=none'], { stdio: 'inherit' });
    cp.once('exit', resolve);
  });
  expect(code).toBe(0);
  expect(readFileSync(join(root, 'src', 'copy.bin')).equals(data)).toBe(true);
  expect(writes).toBeGreaterThanOrEqual(48);
  // Without reuse every 1 MiB WRITE would have had a buffer of its own.
  expect(seenMemory.size).toBeLessThan(writes / 4);
}, 60_000);
