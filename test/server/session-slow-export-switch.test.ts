// Where an export's syscalls run (server/export-io.ts), shown on a real FUSE mount whose every call
// takes 100 ms: a file system that can hang is off-thread from the start, a "local" export moves
// off-thread at its third call slower than slowCallMs within a second and comes back inline after a quiet period,
// the event loop stays free while a slow call is out, and a pool whose threads are all stuck
// fails further calls at once with EAGAIN instead of queueing without bound.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sys from '../../sys/index.js';
import { DEFAULT_EXPORT_IO, ExportIo } from '../../server/export-io.js';
import { startSlowMount, type SlowMount } from '../harness/slow-mount.js';

const DELAY_MS = 100;
const NOFOLLOW = sys.AT_SYMLINK_NOFOLLOW;
let slow: SlowMount | undefined;
let local: string;
let slowFd = -1;
let localFd = -1;
const pools: ExportIo[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: { code?: string }) => e.code ?? String(e));

/** How late a zero-delay timer fires: what every other request on the event loop would wait. */
async function loopLagMs(): Promise<number> {
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 0));
  return performance.now() - t0;
}

beforeAll(async () => {
  slow = await startSlowMount(DELAY_MS);
  fs.writeFileSync(join(slow.source, 'f'), 'slow');
  local = fs.mkdtempSync(join(tmpdir(), 'omfs-export-io-'));
  fs.writeFileSync(join(local, 'f'), 'local');
  slowFd = sys.openat(sys.AT_FDCWD, slow.mnt, sys.O_DIRECTORY);
  localFd = sys.openat(sys.AT_FDCWD, local, sys.O_DIRECTORY);
}, 60_000);

afterAll(async () => {
  for (const io of pools) io.shutdown();
  for (const fd of [slowFd, localFd]) if (fd >= 0) fs.closeSync(fd);
  await slow?.unmount();
  fs.rmSync(local, { recursive: true, force: true });
});

describe('where an export\'s syscalls run', () => {
  it('a FUSE export is off-thread from the start, a local one inline', () => {
    const onFuse = ExportIo.forRoot(slow!.mnt, slowFd);
    const onDisk = ExportIo.forRoot(local, localFd);
    pools.push(onFuse, onDisk);
    expect([onFuse.fsName, onFuse.offThread]).toEqual(['fuse', true]);
    expect([onDisk.fsName, onDisk.offThread]).toEqual([null, false]);
  });

  it('the event loop stays free while an off-thread call waits on the slow file system', async () => {
    const io = ExportIo.forRoot(slow!.mnt, slowFd);
    pools.push(io);
    const call = io.call(null, 'statat', slowFd, 'f', NOFOLLOW);
    const lags: number[] = [];
    for (let i = 0; i < 5; i++) lags.push(await loopLagMs());
    const st = await call;
    expect(st.size).toBe(4);
    expect(Math.max(...lags)).toBeLessThan(DELAY_MS / 2);
  });

  it('a local export moves off-thread after a few slow calls, keeps working there, and comes back inline after a quiet period', async () => {
    const said: string[] = [];
    // A statx on the mount may take two of its round trips (lookup, getattr): no move at once here.
    const io = new ExportIo(slow!.mnt, null, { ...DEFAULT_EXPORT_IO, slowCallMs: 20, stallMs: 10_000, strikeWindowMs: 10_000, quietMs: 500 }, (l) => said.push(l));
    pools.push(io);
    expect(io.offThread).toBe(false);
    // These run inline (each holds the loop for the file system's 100 ms) and are seen as slow; one
    // or two could be GC pauses, the third within the window moves the export.
    for (let i = 0; i < 2; i++) {
      expect((await io.call(null, 'statat', slowFd, 'f', NOFOLLOW)).size).toBe(4);
      expect(io.offThread).toBe(false);
    }
    expect((await io.call(null, 'statat', slowFd, 'f', NOFOLLOW)).size).toBe(4);
    expect(io.offThread).toBe(true);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/statat took .* ms \(3 slow calls within .* ms\): its calls now run on threads of their own/);
    // Off-thread now: the next slow call leaves the loop free, with the same result and errnos.
    const call = io.call(null, 'statat', slowFd, 'f', NOFOLLOW);
    expect(await loopLagMs()).toBeLessThan(DELAY_MS / 2);
    expect((await call).size).toBe(4);
    expect(await code(io.call(null, 'statat', slowFd, 'missing', NOFOLLOW))).toBe('ENOENT');
    // Fast calls only, for longer than quietMs: the export gets its inline path back.
    expect((await io.call(null, 'statat', localFd, 'f', NOFOLLOW)).size).toBe(5);
    await sleep(600);
    expect((await io.call(null, 'statat', localFd, 'f', NOFOLLOW)).size).toBe(5);
    expect(io.offThread).toBe(false);
    expect(said[1]).toMatch(/its calls run inline again/);
  }, 30_000);

  it('one inline call longer than stallMs moves a local export at once', async () => {
    const said: string[] = [];
    const io = new ExportIo(slow!.mnt, null, { ...DEFAULT_EXPORT_IO, slowCallMs: 20, stallMs: 50 }, (l) => said.push(l));
    pools.push(io);
    expect((await io.call(null, 'statat', slowFd, 'f', NOFOLLOW)).size).toBe(4);
    expect(io.offThread).toBe(true);
    expect(said).toHaveLength(1);
  }, 30_000);

  it('when all of an export\'s threads are stuck and its queue is full, further calls fail at once with EAGAIN', async () => {
    const io = new ExportIo(slow!.mnt, 'fuse', { ...DEFAULT_EXPORT_IO, threads: 1, maxQueued: 2 });
    pools.push(io);
    // One running and two waiting fill it; three more are refused before any of the first finishes.
    const calls = Array.from({ length: 6 }, () => io.call(null, 'statat', slowFd, 'f', NOFOLLOW));
    const settledEarly: string[] = [];
    calls.forEach((c) => c.then(() => settledEarly.push('OK'), (e: { code?: string }) => settledEarly.push(e.code ?? '?')));
    await sleep(0);
    await sleep(0);
    expect(settledEarly).toEqual(['EAGAIN', 'EAGAIN', 'EAGAIN']);
    const refused = await calls[5]!.catch((e: Error) => e);
    expect(String(refused)).toContain(slow!.mnt);
    expect(await Promise.all(calls.map(code))).toEqual(['OK', 'OK', 'OK', 'EAGAIN', 'EAGAIN', 'EAGAIN']);
  }, 30_000);
});
