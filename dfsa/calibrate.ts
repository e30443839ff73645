// mfsctl calibrate's arithmetic: from timed probe calls between this node and another, the
// mfscosts table (costs.ts): connection, per KB in, per KB out, each server side and client side,
// in whole microseconds. Pure: the measuring is bin/mfsctl-calibrate.ts.
//
// What is measured, per call (NodeService.Probe):
// - server side: the CPU time the target daemon spent on it (the difference of its process CPU
//   time between two consecutive replies: receiving, decoding, answering, encoding, TLS);
// - client side: the rest of the time the caller waited (wall time minus the server's CPU: the
//   caller's own CPU, both kernels and the wire). Server plus client is then the whole time a
//   remote call costs the process that makes it, which is what the advisor adds up
//   (advisor.ts: calls·(CONN_S+CONN_C) + KB·(INKB_S+INKB_C) ...).
// Per payload size the median of the repetitions is taken (one slow call, a GC pause or another
// process's burst, does not move it), and a least-squares line through (KB, median) gives the
// fixed cost per call (its intercept) and the cost per KB (its slope). "In" is data coming to
// the caller (the probe's reply: a read), "out" data leaving it (the probe's payload: a write).
// The connection cost is either the fixed cost of a call on an open connection (the default:
// that is what each operation of an omfs session pays) or, when asked, that of a new connection
// and its first call (TLS handshake included), as measured separately.
import { MFSCOSTS } from './costs.js';
import type { MfsCosts } from './costs.js';

/** One timed call: its payload in KB (the direction's), the wall time and the server's CPU time, µs. */
export interface CallSample {
  kb: number;
  wallUs: number;
  serverUs: number;
}

export interface Samples {
  /** Calls whose reply carried `kb` KB (per KB in). */
  in: CallSample[];
  /** Calls whose request carried `kb` KB (per KB out). */
  out: CallSample[];
  /** New connections, each with one empty call (kb 0). */
  connect: CallSample[];
}

export interface Line {
  /** µs at 0 KB. */
  intercept: number;
  /** µs per KB. */
  slope: number;
  /** The (KB, median µs) points the line was fitted to. */
  points: Array<{ kb: number; us: number }>;
}

export interface SideFits {
  server: Line;
  client: Line;
}

export interface Calibration {
  costs: MfsCosts;
  in: SideFits;
  out: SideFits;
  /** Median server and client µs of a new connection with its first call. */
  connect: { server: number; client: number };
  /** Median server and client µs of an empty call on an open connection (the lines' mean intercept). */
  call: { server: number; client: number };
}

export type ConnectionCost = 'call' | 'new-connection';

/** The middle value (mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Least-squares line y = intercept + slope·x; needs two distinct x values. */
export function fitLine(points: ReadonlyArray<{ x: number; y: number }>): { intercept: number; slope: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  if (!(n >= 2) || sxx === 0) throw new RangeError('a line needs points at two different sizes at least');
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope };
}

/** The server's CPU and the client's remainder per call, never negative (a CPU reading can exceed a short wall time by its granularity). */
function sides(s: CallSample): { server: number; client: number } {
  const server = Math.max(0, s.serverUs);
  return { server, client: Math.max(0, s.wallUs - server) };
}

function fitSides(samples: readonly CallSample[], what: string): SideFits {
  const bySize = new Map<number, CallSample[]>();
  for (const s of samples) {
    if (![s.kb, s.wallUs, s.serverUs].every(Number.isFinite) || s.kb < 0) throw new RangeError(`${what}: a sample holds a negative or non-finite number`);
    bySize.set(s.kb, [...(bySize.get(s.kb) ?? []), s]);
  }
  const sizes = [...bySize.keys()].sort((a, b) => a - b);
  const line = (side: 'server' | 'client'): Line => {
    const points = sizes.map((kb) => ({ kb, us: median(bySize.get(kb)!.map((s) => sides(s)[side])) }));
    try {
      return { ...fitLine(points.map((p) => ({ x: p.kb, y: p.us }))), points };
    } catch (err) {
      throw new RangeError(`${what}: ${(err as Error).message}`);
    }
  };
  return { server: line('server'), client: line('client') };
}

/** A cost as the table holds it: whole µs, at least 0 (a line through noise may dip below), at most the field's bound. */
export function toTableValue(us: number, field: number): number {
  const max = MFSCOSTS.fields[field]!.max;
  return Math.min(max, Math.max(0, Math.round(us)));
}

/** The mfscosts table from the samples of one target node. */
export function calibrate(samples: Samples, connection: ConnectionCost = 'call'): Calibration {
  const inFits = fitSides(samples.in, 'per KB in');
  const outFits = fitSides(samples.out, 'per KB out');
  if (samples.connect.length === 0 && connection === 'new-connection') throw new RangeError('no connection was timed');
  const connect = {
    server: median(samples.connect.map((s) => sides(s).server)),
    client: median(samples.connect.map((s) => sides(s).client)),
  };
  // Both lines start at an empty call: their intercepts measure the same thing twice.
  const call = {
    server: (inFits.server.intercept + outFits.server.intercept) / 2,
    client: (inFits.client.intercept + outFits.client.intercept) / 2,
  };
  const conn = connection === 'call' ? call : connect;
  const values = [conn.server, conn.client, inFits.server.slope, inFits.client.slope, outFits.server.slope, outFits.client.slope]
    .map((us, i) => toTableValue(us, i));
  const [connS, connC, inKbS, inKbC, outKbS, outKbC] = values as [number, number, number, number, number, number];
  return { costs: { connS, connC, inKbS, inKbC, outKbS, outKbC }, in: inFits, out: outFits, connect, call };
}

/** Field by field, the median of several nodes' tables (rounded to whole µs): this node's one table. */
export function medianCosts(tables: readonly MfsCosts[]): MfsCosts {
  if (tables.length === 0) throw new RangeError('no table to take the median of');
  const m = (f: keyof MfsCosts) => Math.round(median(tables.map((t) => t[f])));
  return { connS: m('connS'), connC: m('connC'), inKbS: m('inKbS'), inKbC: m('inKbC'), outKbS: m('outKbS'), outKbC: m('outKbC') };
}
