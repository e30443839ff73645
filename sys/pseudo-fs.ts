// The devices of this machine's kernel-interface file systems: /proc, /sys, /dev and /dev/pts
// (procfs, sysfs, devtmpfs, devpts), from /proc/self/mountinfo. A node does not serve them to the
// cluster, as openMosix's oMFS did not: through /mfs they would show this node's processes and
// devices to programs that expect their own (and /proc/self would be the daemon).
import { readFileSync } from 'node:fs';
import { makedev } from './stat.js';

const PSEUDO_TYPES = new Set(['proc', 'sysfs', 'devtmpfs', 'devpts']);

/** st_dev of every mount of those types (mountinfo's major:minor, as glibc's makedev encodes it). */
export function pseudoFsDevices(mountinfo = '/proc/self/mountinfo'): Set<number> {
  const devs = new Set<number>();
  let text: string;
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch {
    return devs;
  }
  for (const line of text.split('\n')) {
    // "36 35 0:22 / /proc rw,... shared:14 - proc proc rw": the type follows the lone "-".
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || !PSEUDO_TYPES.has(fields[dash + 1] ?? '')) continue;
    const m = /^(\d+):(\d+)$/.exec(fields[2] ?? '');
    if (m) devs.add(makedev(Number(m[1]), Number(m[2])));
  }
  return devs;
}
