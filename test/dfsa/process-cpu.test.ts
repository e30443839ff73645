// What the advisor is told of a tracked process besides its I/O (server/process-cpu.ts): the share
// of a CPU it used since it was last asked about, and its anonymous pages, read from /proc; nothing
// for a process that is gone or a key whose start time is another process's.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ProcessCpu } from '../../server/process-cpu.js';
import { readStat } from '../../sys/process.js';

const keyOf = (pid: number): string => `${pid}:${readStat(pid)!.startTime}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('ProcessCpu', () => {
  it('a busy process uses about one CPU, a sleeping one about none; both have anonymous pages', async () => {
    const busy = spawn(process.execPath, ['-e', 'const a = Buffer.alloc(32 << 20, 1); for (;;) a[0]++']);
    const idle = spawn('sleep', ['30']);
    try {
      await sleep(300);
      const cpu = new ProcessCpu();
      const kb = keyOf(busy.pid!);
      const ki = keyOf(idle.pid!);
      cpu.sample(kb);
      cpu.sample(ki);
      await sleep(1000);
      const b = cpu.sample(kb)!;
      const i = cpu.sample(ki)!;
      // One busy thread on a shared 2-core machine: well above an idle process, at most about one CPU.
      expect(b.cpu).toBeGreaterThan(0.3);
      expect(b.cpu).toBeLessThan(1.5);
      expect(i.cpu).toBeLessThan(0.05);
      expect(b.dirtyPages).toBeGreaterThan(8192); // the 32 MiB it wrote
      expect(i.dirtyPages).toBeGreaterThanOrEqual(0);
    } finally {
      busy.kill('SIGKILL');
      idle.kill('SIGKILL');
    }
  });

  it('nothing for a process that is gone or a key naming another start time', async () => {
    const p = spawn('sleep', ['30']);
    await sleep(100);
    const key = keyOf(p.pid!);
    const exited = new Promise((r) => p.on('exit', r));
    p.kill('SIGKILL');
    await exited;
    await sleep(50);
    const cpu = new ProcessCpu();
    expect(cpu.sample(key)).toBeUndefined();
    expect(cpu.sample(`${process.pid}:${readStat(process.pid)!.startTime + 1}`)).toBeUndefined();
    expect(cpu.sample('nonsense')).toBeUndefined();
    expect(cpu.sample(keyOf(process.pid))).toBeDefined();
  });
});
