// sys/process.ts on real processes: a FUSE request's pid is a thread id, and it must map to its
// process and a key that a reused pid cannot collide with.
import { afterEach, describe, expect, it } from 'vitest';
import { execSignature, parseStat, processOf, ProcessLookup, readProcessOf, readStat } from '../../sys/process.js';
import { startChild, startRenamed, startWithWorker, stopAllChildren } from './children.js';

afterEach(stopAllChildren);

describe('processOf', () => {
  it("maps a worker thread's tid to its process: same tgid, key, parent and uid as the main thread", async () => {
    const child = startWithWorker();
    const { pid, workerTid } = JSON.parse(await child.nextLine()) as { pid: number; workerTid: number };
    expect(pid).toBe(child.pid);
    expect(workerTid).not.toBe(pid);
    const viaThread = readProcessOf(workerTid)!;
    const viaMain = readProcessOf(pid)!;
    expect(viaThread).toEqual(viaMain);
    expect(viaThread.tgid).toBe(pid);
    expect(viaThread.ppid).toBe(process.pid);
    expect(viaThread.uid).toBe(process.getuid!());
    expect(viaThread.key).toBe(`${pid}:${readStat(pid)!.startTime}`);
    // The thread's own stat line has its own start time; the key uses the process's.
    expect(processOf(workerTid)!.key).toBe(viaMain.key);
  });

  it('parses stat fields after the last ")" when comm holds spaces and parentheses', async () => {
    for (const comm of ['x) 1 2 ) S', 'a (b) c', ') (']) {
      const child = startRenamed(comm);
      expect(await child.nextLine()).toBe('ready');
      const stat = readStat(child.pid)!;
      expect(stat.comm).toBe(comm);
      expect(stat.pid).toBe(child.pid);
      expect(stat.ppid).toBe(process.pid);
      expect(stat.state).toMatch(/^[RSD]$/);
      expect(readProcessOf(child.pid)!.startTime).toBe(stat.startTime);
      await child.stop();
    }
    // A synthetic line: field 22 is the 20th value after the last ')'.
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    expect(parseStat(`7 (we) ird) ${fields.join(' ')}\n`)).toMatchObject({ pid: 7, comm: 'we) ird', state: '3', ppid: 4, startTime: 22 });
  });

  it('answers undefined for a thread that is gone, and for tid 0 (a request the kernel made itself)', async () => {
    const child = startChild('sleep', ['60']);
    const lookup = new ProcessLookup({ ttlMs: 0 });
    expect(lookup.processOf(child.pid)?.tgid).toBe(child.pid);
    await child.stop();
    expect(lookup.processOf(child.pid)).toBeUndefined();
    expect(lookup.processOf(0)).toBeUndefined();
  });

  it('caches a tid briefly, and forget() drops it at once (an exit event)', () => {
    let now = 1000;
    const lookup = new ProcessLookup({ ttlMs: 1000, now: () => now });
    const first = lookup.processOf(process.pid)!;
    expect(lookup.processOf(process.pid)).toBe(first); // the cached object itself
    now += 1001;
    expect(lookup.processOf(process.pid)).not.toBe(first); // expired: read again
    expect(lookup.processOf(process.pid)).toEqual(first);
    lookup.forget(process.pid);
    expect(lookup.size).toBe(0);
  });

  it('costs (informational): a miss reads two /proc files, a hit is a map lookup', () => {
    const n = 2000;
    let t = performance.now();
    for (let i = 0; i < n; i++) readProcessOf(process.pid);
    const miss = ((performance.now() - t) * 1000) / n;
    const lookup = new ProcessLookup();
    t = performance.now();
    for (let i = 0; i < n; i++) lookup.processOf(process.pid);
    const hit = ((performance.now() - t) * 1000) / n;
    console.log(`processOf: miss ${miss.toFixed(1)} us, hit ${hit.toFixed(2)} us per call`);
    expect(hit).toBeLessThan(miss);
  });

  it('execSignature changes when the process execs another program, not before', async () => {
    const child = startChild('sh', ['-c', 'read x; exec sleep 60']);
    const before = execSignature(child.pid);
    expect(before).toContain('sh');
    child.send('go');
    const deadline = Date.now() + 10_000;
    while (execSignature(child.pid) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(execSignature(child.pid)).toContain('sleep');
  });
});
