// CPU time of the processes that serve a target (mfs-mount and mfsd of node 2; sshfs, its ssh, and
// sshd's session process and sftp-server), from /proc/PID/stat, so the bench can show whether a
// figure was bound by CPU on this machine rather than by waiting: a pipeline of processes using
// nearly every core during a phase has no idle time left to win back with more concurrency.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface ProcStat { ppid: number; ticks: number }

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

/** `roots` and all their descendants alive now, with their CPU ticks so far. */
function treeTicks(roots: number[]): Map<number, number> {
  const all = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st) all.set(Number(name), st);
  }
  const out = new Map<number, number>();
  const wanted = new Set(roots);
  // Parents before children is not guaranteed by pid order: repeat until nothing is added.
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, st] of all) {
      if (out.has(pid)) continue;
      if (wanted.has(pid) || wanted.has(st.ppid)) {
        wanted.add(pid);
        out.set(pid, st.ticks);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * Starts counting the CPU of the process trees rooted at `roots`; the returned function gives the
 * CPU seconds they used since (processes that exited meanwhile are not counted).
 */
export function cpuMeter(roots: number[]): () => number {
  const before = treeTicks(roots);
  return () => {
    let ticks = 0;
    for (const [pid, now] of treeTicks(roots)) ticks += now - (before.get(pid) ?? 0);
    return ticks / TICKS_PER_SECOND;
  };
}
