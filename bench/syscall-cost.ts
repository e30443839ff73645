// Per-call cost of the syscall layer (sys/, koffi FFI) beside Node's own fs bindings for the same
// work, in one run: what a passthrough request pays for going through koffi.
//   node dist/bench/syscall-cost.js [--calls 200000]
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as sys from '../sys/index.js';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '200000' } } });
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls <= 0) {
  console.error('syscall-cost: --calls must be a positive integer');
  process.exit(2);
}

function nsPerCall(fn: () => unknown): number {
  for (let i = 0; i < Math.min(calls, 10_000); i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - start) / calls;
}

const dir = fs.mkdtempSync('/tmp/omfs-syscost-');
fs.writeFileSync(`${dir}/f`, 'x');
const dirFd = sys.openat(sys.AT_FDCWD, dir, sys.O_PATH | sys.O_DIRECTORY);
const name = Buffer.from('f');
const rows: Array<[string, number, number]> = [
  ['lstat (hit)', nsPerCall(() => sys.statat(dirFd, name, sys.AT_SYMLINK_NOFOLLOW)), nsPerCall(() => fs.lstatSync(`${dir}/f`, { bigint: true }))],
  ['lstat (miss)', nsPerCall(() => sys.statatIfExists(dirFd, 'nope', sys.AT_SYMLINK_NOFOLLOW)), nsPerCall(() => fs.lstatSync(`${dir}/nope`, { throwIfNoEntry: false }))],
  ['open+close', nsPerCall(() => sys.close(sys.openat(dirFd, name, fs.constants.O_RDONLY))), nsPerCall(() => fs.closeSync(fs.openSync(`${dir}/f`, 'r')))],
];
console.log(`calls per figure: ${calls}`);
console.log('call            sys/ (koffi) ns   node:fs ns   ratio node/sys');
for (const [what, ours, node] of rows) {
  console.log(`${what.padEnd(16)}${ours.toFixed(0).padStart(15)}${node.toFixed(0).padStart(13)}${(node / ours).toFixed(2).padStart(18)}`);
}
sys.close(dirFd);
fs.rmSync(dir, { recursive: true });
