// Issue 8, point 6: ReadDir streams with backpressure. Paused listings of a 200 000-entry directory
// must hold the daemon's memory bounded and leave it free to answer other calls; a cancelled
// listing lets go of its directory fd. And listing and resuming by cookie keep working, byte names
// included, over many getdents batches.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { startMfsd, type MfsdHandle } from '../harness/mfsd.js';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { FileClient, ROOT_CALLER as root, type DirEntry } from '../../proto/file-client.js';

const ENTRIES = 200_000;
const STREAMS = 20;
const RSS_GROWTH_LIMIT_MB = 300;
const GETATTR_LIMIT_MS = 2000;

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const openFds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('paused listings of a huge directory', () => {
  let d: MfsdHandle | undefined;
  let client: FileClient | undefined;
  const streams: Array<ClientReadableStream<DirEntry>> = [];

  beforeAll(async () => {
    d = await startMfsd();
    const big = join(d.exports[0]!.path, 'big');
    fs.mkdirSync(big);
    for (let i = 0; i < ENTRIES; i++) fs.closeSync(fs.openSync(join(big, `entry-${i}`), 'w'));
  }, 240_000);

  afterAll(async () => {
    for (const s of streams) s.cancel();
    client?.close();
    await d?.cleanup();
  }, 240_000);

  it(`${STREAMS} paused streams: daemon memory stays bounded and GetAttr stays fast`, async () => {
    const pid = d!.proc.pid!;
    client = new FileClient(d!.address, await d!.clientCredentials());
    const top = await client.root(root, d!.exports[0]!.path);
    const big = await client.lookup(root, top.handle, 'big');
    await client.getAttr(root, big.handle); // warm up
    const rssBefore = rssMb(pid);
    const fdsBefore = openFds(pid);

    // Each stream takes a few entries and then stops reading: a client that never drains.
    const started = Array.from({ length: STREAMS }, () => {
      const s = (client!.raw['ReadDir'] as (req: object) => ClientReadableStream<DirEntry>).call(client!.raw, { caller: root, dir: big.handle, cookie: '0' });
      streams.push(s);
      s.on('error', () => {}); // the cancel at the end
      return new Promise<void>((resolve) => {
        let n = 0;
        s.on('data', () => {
          if (++n === 5) {
            s.pause();
            resolve();
          }
        });
      });
    });
    await Promise.all(started);

    // Meanwhile other calls are answered promptly, and the daemon does not swell.
    let slowest = 0;
    let rssPeak = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await client.getAttr(root, big.handle);
      slowest = Math.max(slowest, performance.now() - t0);
      rssPeak = Math.max(rssPeak, rssMb(pid));
      await sleep(250);
    }
    expect(slowest, `slowest GetAttr during paused listings: ${slowest.toFixed(0)} ms`).toBeLessThan(GETATTR_LIMIT_MS);
    expect(rssPeak - rssBefore, `daemon RSS grew from ${rssBefore.toFixed(0)} MB to ${rssPeak.toFixed(0)} MB`).toBeLessThan(RSS_GROWTH_LIMIT_MB);

    // Cancelled listings stop and close their directory fds.
    for (const s of streams) s.cancel();
    let fds = openFds(pid);
    for (let i = 0; i < 100 && fds > fdsBefore + 2; i++) {
      await sleep(100);
      fds = openFds(pid);
    }
    expect(fds, 'daemon fds after the listings were cancelled').toBeLessThanOrEqual(fdsBefore + 2);
    // The daemon is still well.
    expect((await client.getAttr(root, big.handle)).ino).toBe(big.attr.ino);
  }, 120_000);
});

describe('listing and resuming by cookie', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('every name once, as stored bytes, over many batches; resuming after any cookie goes on after that entry', async () => {
    h = await startHarness();
    const top = await h.client.root(root, h.exports[0]!);
    const dir = join(h.exports[0]!, 'd');
    fs.mkdirSync(dir);
    const d = await h.client.lookup(root, top.handle, 'd');
    const byteNames = [Buffer.from([0x66, 0x80, 0xfe]), Buffer.from([0xc3, 0x28]), Buffer.from('caf\u00e9'), Buffer.alloc(255, 0xe9)];
    for (const n of byteNames) await h.client.mkdir(root, d.handle, n);
    // Long names: a 32 KiB getdents buffer holds about a hundred, so this is many batches.
    for (let i = 0; i < 3000; i++) fs.closeSync(fs.openSync(join(dir, `${'x'.repeat(200)}-${i}`), 'w'));

    const all = await h.client.readDir(root, d.handle);
    const key = (b: Buffer): string => b.toString('hex');
    const onDisk = new Set(fs.readdirSync(dir, { encoding: 'buffer' }).map(key));
    expect(all.length).toBe(onDisk.size);
    expect(new Set(all.map((e) => key(e.name)))).toEqual(onDisk);
    for (const n of byteNames) expect(all.some((e) => e.name.equals(n))).toBe(true);
    // Each entry's handle and attributes are its own.
    for (const e of all.filter((x) => byteNames.some((n) => n.equals(x.name)))) {
      expect((await h.client.getAttr(root, e.entry!.handle)).ino).toBe(e.entry!.attr.ino);
    }

    for (const i of [0, 1, 99, 100, 101, 1500, all.length - 2, all.length - 1]) {
      const rest = await h.client.readDir(root, d.handle, all[i]!.cookie);
      expect(rest.map((e) => key(e.name)), `resume after entry ${i}`).toEqual(all.slice(i + 1).map((e) => key(e.name)));
    }
    // An entry removed between two calls is not listed, and does not move the resume point.
    const gone = all.findIndex((e, i) => i >= 2000 && e.name[0] === 0x78); // a plain file
    fs.unlinkSync(join(dir, all[gone]!.name.toString()));
    const rest = await h.client.readDir(root, d.handle, all[1000]!.cookie);
    expect(rest.map((e) => key(e.name))).toEqual(all.slice(1001).filter((_, i) => i !== gone - 1001).map((e) => key(e.name)));
  }, 60_000);
});
