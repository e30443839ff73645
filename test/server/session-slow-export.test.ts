// Issue 9, "A slow disk stalls only itself": a real mfsd with two exports, one a plain directory and
// one on a FUSE mount whose every operation sleeps 100 ms (test/harness/slow-mount.ts). While
// several sessions keep the slow export busy, lookups, getattrs and reads on the healthy export
// answer in normal time; the slow export's calls still succeed, slowly, with the right errnos and
// as the right user (credentials and umask are set on the export's own threads). When the slow
// file system stops answering altogether (its server SIGSTOPped), the healthy export still answers
// and the daemon still stops on SIGTERM (a thread stuck in a syscall is never joined).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';
import { startSlowMount, type SlowMount } from '../harness/slow-mount.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Session } from '../../proto/session-client.js';

const DELAY_MS = 100;
const SIZE = 64 * 1024;
const user = { uid: 1000, gid: 1000, groups: [], pid: process.pid };
const { O_RDONLY, O_RDWR } = fs.constants;

let tmp: string;
let ca: TestCa;
let slow: SlowMount | undefined;
let d: MfsdHandle | undefined;
const sessions: Session[] = [];
let fastDir: string;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

function populate(dir: string): void {
  fs.writeFileSync(join(dir, 'data'), Buffer.alloc(SIZE, 7));
  fs.mkdirSync(join(dir, 'sub'));
  fs.writeFileSync(join(dir, 'sub', 'x'), 'x');
  fs.mkdirSync(join(dir, 'open'), { mode: 0o777 });
  fs.chmodSync(join(dir, 'open'), 0o777);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(join(tmpdir(), 'omfs-slow-export-'));
  fs.chmodSync(tmp, 0o755);
  ca = await makeTestCa(tmp);
  slow = await startSlowMount(DELAY_MS);
  populate(slow.source);
  fastDir = join(tmp, 'fast');
  fs.mkdirSync(fastDir, { mode: 0o755 });
  populate(fastDir);
  const exports = [
    { path: fastDir, dfsa: 1, readOnly: false, rootSquash: false },
    { path: slow.mnt, dfsa: 2, readOnly: false, rootSquash: false },
  ];
  d = await startMfsd({ ca, nodeId: 1, shutdownGraceMs: 2_000, config: { exports } });
  for (let n = 2; n <= 5; n++) sessions.push(await openSession(d.address, await nodeCredentials(ca, n), n));
}, 120_000);

afterAll(async () => {
  for (const s of sessions) s.close();
  await d?.cleanup();
  await slow?.unmount();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a slow export stalls only itself', () => {
  it('lookup, getattr and read on the healthy export stay fast while three sessions hammer the export whose calls take 100 ms', async () => {
    const [probe, ...hammers] = sessions as [Session, ...Session[]];
    const fastTop = await probe.root(root, fastDir);
    const slowTop = await probe.root(root, slow!.mnt);

    // The setup: a call on the slow export does wait for the file system's 100 ms.
    const slowData = await probe.lookup(root, slowTop.handle, 'data');
    const slowGetattr = await timed(() => probe.getAttr(root, slowData.handle));
    expect(slowGetattr.ms).toBeGreaterThanOrEqual(DELAY_MS);

    let stop = false;
    const slowCalls: number[] = [];
    const slowErrors: unknown[] = [];
    const hammer = async (s: Session): Promise<void> => {
      while (!stop) {
        try {
          const t = await timed(async () => {
            const e = await s.lookup(root, slowTop.handle, 'data');
            await s.getAttr(root, e.handle);
            return s.read(root, e.handle, 0, 0, SIZE);
          });
          expect(t.value.length).toBe(SIZE);
          slowCalls.push(t.ms);
        } catch (err) {
          slowErrors.push(err);
        }
      }
    };
    // Four loops per session: a dozen slow operations in flight at every moment.
    const hammering = hammers.flatMap((s) => [hammer(s), hammer(s), hammer(s), hammer(s)]);

    const fastMs: { lookup: number[]; getattr: number[]; read: number[] } = { lookup: [], getattr: [], read: [] };
    try {
      for (let round = 0; round < 30; round++) {
        const e = await timed(() => probe.lookup(root, fastTop.handle, 'data'));
        fastMs.lookup.push(e.ms);
        const a = await timed(() => probe.getAttr(root, e.value.handle));
        expect(Number(a.value.size)).toBe(SIZE);
        fastMs.getattr.push(a.ms);
        const r = await timed(() => probe.read(root, e.value.handle, 0, 0, SIZE));
        expect(r.value.equals(Buffer.alloc(SIZE, 7))).toBe(true);
        fastMs.read.push(r.ms);
      }
    } finally {
      stop = true;
      await Promise.all(hammering);
    }
    const summary = Object.fromEntries(Object.entries(fastMs).map(([k, v]) => [k, `median ${median(v).toFixed(2)} ms, max ${Math.max(...v).toFixed(1)} ms`]));
    console.log(`healthy export while the slow one was hammered: ${JSON.stringify(summary)}; slow operations: ${slowCalls.length}, median ${median(slowCalls).toFixed(0)} ms`);

    // The slow export was busy all along and its calls succeeded, each taking at least the delay.
    expect(slowErrors).toEqual([]);
    expect(slowCalls.length).toBeGreaterThan(0);
    expect(Math.min(...slowCalls)).toBeGreaterThanOrEqual(DELAY_MS);
    // The healthy export answered well under the slow export's delay.
    for (const v of Object.values(fastMs)) expect(median(v)).toBeLessThan(DELAY_MS / 2);
  }, 120_000);

  it('calls on the slow export succeed slowly, as the caller, with the errnos of the bare file system', async () => {
    const s = sessions[0]!;
    const top = await s.root(root, slow!.mnt);
    const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: { code?: string }) => e.code ?? String(e));

    expect(await code(s.lookup(root, top.handle, 'missing'))).toBe('ENOENT');
    expect(await code(s.mkdir(root, top.handle, 'sub'))).toBe('EEXIST');
    expect(await code(s.rmdir(root, top.handle, 'sub'))).toBe('ENOTEMPTY');
    // A user may not create in a root-owned 0755 directory: the kernel's check, under the user's fsuid.
    expect(await code(s.mkdir(user, top.handle, 'mine'))).toBe('EACCES');
    const data = await s.lookup(root, top.handle, 'data');
    expect(await code(s.open(user, data.handle, O_RDWR))).toBe('EACCES');

    // Supplementary groups are set on the export's thread too: group 1234 may read a 0640 file, others not.
    fs.writeFileSync(join(slow!.source, 'grouped'), 'g');
    fs.chownSync(join(slow!.source, 'grouped'), 0, 1234);
    fs.chmodSync(join(slow!.source, 'grouped'), 0o640);
    const grouped = await s.lookup(root, top.handle, 'grouped');
    expect(await code(s.read(user, grouped.handle, 0, 0, 10))).toBe('EACCES');
    expect((await s.read({ ...user, groups: [1234] }, grouped.handle, 0, 0, 10)).toString()).toBe('g');

    // In a 0777 directory the user's mkdir gets the user as owner and the request's umask.
    const open = await s.lookup(root, top.handle, 'open');
    const made = await s.mkdir(user, open.handle, 'd', 0o777, 0o027);
    expect(made.attr.uid).toBe(1000);
    expect(made.attr.mode & 0o777).toBe(0o750);
    const st = fs.statSync(join(slow!.source, 'open', 'd'));
    expect([st.uid, st.mode & 0o777]).toEqual([1000, 0o750]);

    // Create, write, read back, unlink: data goes through the export's own threads.
    const { entry, fh } = await s.create(user, open.handle, 'f', O_RDWR, 0o600, 0);
    expect(await s.write(user, entry.handle, fh, 0, Buffer.from('hello slow'))).toBe(10);
    expect((await s.read(user, entry.handle, fh, 0, 100)).toString()).toBe('hello slow');
    await s.release(user, fh, entry.handle);
    const ro = await s.open(user, entry.handle, O_RDONLY);
    expect((await s.read(user, entry.handle, ro, 6, 100)).toString()).toBe('slow');
    await s.release(user, ro, entry.handle);
    expect(fs.readFileSync(join(slow!.source, 'open', 'f'), 'utf8')).toBe('hello slow');
    await s.unlink(user, open.handle, 'f');
    expect(await code(s.lookup(root, open.handle, 'f'))).toBe('ENOENT');
    const names = (await s.readDir(root, open.handle)).map((e) => e.name.toString()).sort();
    expect(names).toEqual(['d']);
  }, 120_000);

  it('a hung export (its FUSE server stopped): the healthy export still answers, and mfsd still stops on SIGTERM', async () => {
    const s = sessions[1]!;
    const fastTop = await s.root(root, fastDir);
    const slowTop = await s.root(root, slow!.mnt);
    slow!.proc.kill('SIGSTOP');
    try {
      // These never get an answer from the file system: they hold the export's threads.
      const hung = Array.from({ length: 6 }, (_, i) => s.lookup(root, slowTop.handle, i % 2 ? 'data' : 'sub').then(() => 'answered', () => 'failed'));
      const ms: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t = await timed(() => s.lookup(root, fastTop.handle, 'data'));
        ms.push(t.ms);
      }
      expect(median(ms)).toBeLessThan(DELAY_MS / 2);
      const settled = await Promise.race([Promise.all(hung), new Promise((r) => setTimeout(() => r('pending'), 300))]);
      expect(settled).toBe('pending');
      // A graceful stop: the grace runs out on the hung calls, then the daemon exits all the same.
      const exited = d!.stop('SIGTERM');
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))]);
      expect(code).toBe(0);
    } finally {
      slow!.proc.kill('SIGCONT');
    }
  }, 120_000);
});
