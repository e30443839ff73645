// Lock table benchmark (issue 8 point 7): SetLk latency next to thousands of held locks and blocked
// waiters, in memory (no RPC: the table is what stalled the daemon). N owners hold read locks on
// bytes 0..99 of a file and N more wait to write there; then unrelated SetLk calls lock other
// ranges of the same file and another file. Prints the median and worst latency of those calls,
// and the time to set up and to release the readers (which wakes the writers one by one).
// Run: `npm run build && node dist/bench/lock-table.js [--locks 3000] [--calls 2000]`.
import { setMaxListeners } from 'node:events';
import { parseArgs } from 'node:util';
import { LockTable, type LockRequest, type LockType } from '../server/locks.js';

const { values } = parseArgs({ options: { locks: { type: 'string', default: '3000' }, calls: { type: 'string', default: '2000' } } });
const N = Number(values.locks);
const CALLS = Number(values.calls);

const req = (owner: string, type: LockType, start: number, end: number): LockRequest =>
  ({ owner, type, start: BigInt(start), end: BigInt(end), pid: 1, peer: 'bench' });
const ms = (t0: number): string => (performance.now() - t0).toFixed(1);

const table = new LockTable({ maxLocksPerPeer: 10 * N + CALLS, maxWaitersPerPeer: 10 * N });
const never = new AbortController();
setMaxListeners(0, never.signal);

let t0 = performance.now();
for (let i = 0; i < N; i++) table.set('f', req(`reader${i}`, 'read', 0, 99));
const writers: Array<Promise<void>> = [];
for (let i = 0; i < N; i++) writers.push(table.setWait('f', req(`writer${i}`, 'write', 0, 99), never.signal).catch(() => {}));
console.log(`setup: ${N} read locks + ${N} blocked writers in ${ms(t0)} ms`);

const lat: number[] = [];
for (let i = 0; i < CALLS; i++) {
  const s = performance.now();
  table.set(i % 2 === 0 ? 'f' : 'g', req(`other${i}`, 'write', 1000 + i * 10, 1005 + i * 10));
  lat.push(performance.now() - s);
}
lat.sort((a, b) => a - b);
const at = (q: number): string => ((lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? 0) * 1000).toFixed(1);
console.log(`unrelated SetLk x${CALLS}: median ${at(0.5)} µs, p99 ${at(0.99)} µs, worst ${at(1)} µs`);

t0 = performance.now();
for (let i = 0; i < N; i++) table.releaseOwner(`reader${i}`, undefined, 'bench');
console.log(`release ${N} readers (each wakes the overlapping writers to re-check): ${ms(t0)} ms`);
never.abort();
await Promise.all(writers);
