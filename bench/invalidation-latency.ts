// Invalidation round trip (issue 9): how long a change takes to return when 0, 1, 2 or 8 other
// sessions hold a callback on what it changes. Each round every caching session fetches the file's
// attributes (registering an ATTR callback; untimed), then the writer's chmod is timed: it returns
// only after every caching session received its invalidation and acknowledged it. The extra over
// 0 caching sessions is the invalidation round trip.
import type { ChannelCredentials } from '@grpc/grpc-js';
import { ROOT_CALLER } from '../proto/file-client.js';
import { Session } from '../proto/session-client.js';

export interface LatencyRow { caching: number; medianMs: number; p99Ms: number }

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/**
 * `writer` is an open session; `credsFor(node)` gives credentials whose certificate names node<N>
 * (caching sessions are nodes 3, 4, ...); `handle` is a file of the export.
 */
export async function invalidationLatency(
  address: string, writer: Session, credsFor: (node: number) => Promise<ChannelCredentials>, handle: Buffer, rounds: number, counts = [0, 1, 2, 8],
): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const k of counts) {
    const caching: Session[] = [];
    try {
      for (let i = 0; i < k; i++) caching.push(await Session.open(address, await credsFor(3 + i), { node: 3 + i, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }));
      const times: number[] = [];
      for (let r = 0; r < rounds; r++) {
        await Promise.all(caching.map((s) => s.getAttr(ROOT_CALLER, handle)));
        const t0 = process.hrtime.bigint();
        await writer.setAttr(ROOT_CALLER, handle, { valid_mode: true, mode: r % 2 === 0 ? 0o600 : 0o644 });
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      times.sort((a, b) => a - b);
      rows.push({ caching: k, medianMs: quantile(times, 0.5), p99Ms: quantile(times, 0.99) });
    } finally {
      for (const s of caching) s.close();
    }
  }
  return rows;
}

export function printLatency(rows: LatencyRow[]): void {
  const base = rows.find((r) => r.caching === 0);
  process.stdout.write('\ninvalidation round trip: a chmod returns after every caching session acknowledged (ms; extra = over 0 caching sessions)\n' +
    `${'caching sessions'.padEnd(18)}${'median'.padStart(9)}${'p99'.padStart(9)}${'extra med'.padStart(11)}${'extra p99'.padStart(11)}\n`);
  for (const r of rows) {
    const extra = (v: number, b: number | undefined): string => (b === undefined ? '' : (v - b).toFixed(3)).padStart(11);
    process.stdout.write(`${String(r.caching).padEnd(18)}${r.medianMs.toFixed(3).padStart(9)}${r.p99Ms.toFixed(3).padStart(9)}` +
      `${extra(r.medianMs, base?.medianMs)}${extra(r.p99Ms, base?.p99Ms)}\n`);
  }
}
