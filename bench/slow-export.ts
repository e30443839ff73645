// What an export's syscall costs where it runs (server/export-io.ts), on a local directory, in one
// run: the bare synchronous call, the same call through ExportIo inline (the healthy-export path:
// a resolved promise and two clock reads more), and through ExportIo off-thread (a hop to the
// export's worker threads and back), one at a time and 16 in flight.
//   node dist/bench/slow-export.js [--calls 100000]
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as sys from '../sys/index.js';
import { ExportIo } from '../server/export-io.js';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '100000' } } });
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls <= 0) {
  console.error('slow-export: --calls must be a positive integer');
  process.exit(2);
}

async function usPerCall(n: number, fn: () => unknown, inFlight = 1): Promise<number> {
  for (let i = 0; i < Math.min(n, 2_000); i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i += inFlight) await Promise.all(Array.from({ length: inFlight }, fn));
  return Number(process.hrtime.bigint() - start) / n / 1e3;
}

const dir = fs.mkdtempSync('/tmp/omfs-slowexp-');
fs.chmodSync(dir, 0o755); // the user rows need search permission
fs.writeFileSync(`${dir}/f`, 'x');
const dirFd = sys.openat(sys.AT_FDCWD, dir, sys.O_DIRECTORY);
const name = Buffer.from('f');
const user = { uid: 1000, gid: 1000, groups: [] };
const inline = new ExportIo(dir, null);
const threads = new ExportIo(dir, 'bench');
const hops = Math.max(1, Math.floor(calls / 20));
const rows: Array<[string, number]> = [
  ['bare statat', await usPerCall(calls, () => sys.statat(dirFd, name, sys.AT_SYMLINK_NOFOLLOW))],
  ['bare statat as a user', await usPerCall(calls, () => sys.asCaller(user, () => sys.statat(dirFd, name, sys.AT_SYMLINK_NOFOLLOW)))],
  ['ExportIo inline', await usPerCall(calls, () => inline.call(null, 'statat', dirFd, name, sys.AT_SYMLINK_NOFOLLOW))],
  ['ExportIo inline as a user', await usPerCall(calls, () => inline.call(user, 'statat', dirFd, name, sys.AT_SYMLINK_NOFOLLOW))],
  ['ExportIo off-thread, 1 in flight', await usPerCall(hops, () => threads.call(null, 'statat', dirFd, name, sys.AT_SYMLINK_NOFOLLOW))],
  ['ExportIo off-thread, 16 in flight', await usPerCall(hops, () => threads.call(user, 'statat', dirFd, name, sys.AT_SYMLINK_NOFOLLOW), 16)],
];
console.log(`calls per figure: ${calls} (off-thread: ${hops})`);
for (const [what, us] of rows) console.log(`${what.padEnd(36)}${us.toFixed(2).padStart(10)} us/call`);
threads.shutdown();
sys.close(dirFd);
fs.rmSync(dir, { recursive: true });
