// What the advisor needs to know of a tracked process besides its I/O (dfsa/advisor-service.ts
// processInfo): the CPU it uses, which a move takes along (the CPU term prices it at each node's
// load), and the pages a move would copy (openMosix's overheads charge each one). Read from /proc
// when the advisor asks: CPU as the share of one CPU used since the previous ask (since the
// process started, the first time), memory as anonymous resident pages (RssAnon), an upper bound
// of openMosix's dirty pages (file-backed pages are not copied: they are read again where it runs).
import { readFileSync } from 'node:fs';
import { readAnonPages, readStat } from '../sys/process.js';

/** Linux's USER_HZ: the unit of /proc/<pid>/stat's times, 100 on every architecture Linux runs on today. */
const TICKS_PER_SECOND = 100;
/** Processes whose last sample is kept; beyond, the least recently asked about is dropped. */
const MAX_SAMPLES = 16384;

interface Sample { ticks: number; at: number }

export class ProcessCpu {
  private readonly samples = new Map<string, Sample>();

  constructor(private readonly now: () => number = () => performance.now(), private readonly uptimeTicks: () => number = uptimeNow) {}

  /** CPU (1 = one CPU busy) and pages of process `key` ("PID:STARTTIME"), undefined when it is gone or another. */
  sample(key: string): { cpu: number; dirtyPages: number } | undefined {
    const [pid, start] = key.split(':').map(Number);
    if (!Number.isInteger(pid) || pid! <= 0 || !Number.isFinite(start)) return undefined;
    const st = readStat(pid!);
    if (!st || st.startTime !== start) {
      this.samples.delete(key);
      return undefined;
    }
    const pages = readAnonPages(pid!) ?? 0;
    const at = this.now();
    const last = this.samples.get(key);
    this.samples.delete(key);
    if (this.samples.size >= MAX_SAMPLES) this.samples.delete(this.samples.keys().next().value!);
    this.samples.set(key, { ticks: st.cpuTicks, at });
    const cpu = last && at > last.at
      ? (st.cpuTicks - last.ticks) / TICKS_PER_SECOND / ((at - last.at) / 1000)
      : st.cpuTicks / Math.max(1, this.uptimeTicks() - st.startTime);
    return { cpu: Math.max(0, cpu), dirtyPages: pages };
  }
}

/** Clock ticks since boot, from /proc/uptime. */
function uptimeNow(): number {
  return Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * TICKS_PER_SECOND;
}
