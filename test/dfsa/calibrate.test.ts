// mfsctl calibrate's arithmetic (dfsa/calibrate.ts): medians, the least-squares line, and the
// mfscosts table it makes from timed calls, on synthetic samples whose true costs are known.
import { describe, expect, it } from 'vitest';
import { calibrate, fitLine, median, medianCosts, toTableValue, type CallSample } from '../../dfsa/calibrate.js';
import { parseTable, formatTable } from '../../dfsa/tables.js';
import { MFSCOSTS, costValues } from '../../dfsa/costs.js';

/** `reps` calls at each size with server = s0 + s1·kb and wall = server + c0 + c1·kb, plus a few outliers. */
function synthetic(sizes: number[], reps: number, s0: number, s1: number, c0: number, c1: number, outliers = true): CallSample[] {
  const out: CallSample[] = [];
  for (const kb of sizes) {
    for (let i = 0; i < reps; i++) {
      // Deterministic jitter of ±2 µs, symmetric around the true value.
      const jitter = ((i % 5) - 2) * 1;
      const server = s0 + s1 * kb + jitter;
      out.push({ kb, serverUs: server, wallUs: server + c0 + c1 * kb - jitter });
    }
    // A GC pause on the client and a burst on the server: the median ignores them.
    if (outliers) out.push({ kb, serverUs: s0 + s1 * kb, wallUs: 100_000 }, { kb, serverUs: 90_000, wallUs: 95_000 });
  }
  return out;
}

describe('median and line fit', () => {
  it('median of odd and even counts, NaN for none, input untouched', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('a least-squares line through exact points is that line', () => {
    const l = fitLine([0, 4, 16, 64].map((x) => ({ x, y: 36 + 14 * x })));
    expect(l.intercept).toBeCloseTo(36, 9);
    expect(l.slope).toBeCloseTo(14, 9);
  });

  it('through noisy points it minimises the squared error', () => {
    const l = fitLine([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 2 }]);
    expect(l.slope).toBeCloseTo(0.5, 9);
    expect(l.intercept).toBeCloseTo(1.5, 9);
  });

  it('one size only is no line', () => {
    expect(() => fitLine([{ x: 4, y: 1 }, { x: 4, y: 2 }])).toThrow(/two different sizes/);
    expect(() => fitLine([])).toThrow(RangeError);
  });
});

describe('calibrate', () => {
  const sizes = [0, 4, 16, 64, 256, 1024];

  it('recovers the per-call and per-KB costs of both sides, each direction on its own', () => {
    const c = calibrate({
      in: synthetic(sizes, 15, 30, 2, 50, 9),
      out: synthetic(sizes, 15, 34, 5, 46, 3),
      connect: [{ kb: 0, wallUs: 3000, serverUs: 1000 }, { kb: 0, wallUs: 3200, serverUs: 1100 }, { kb: 0, wallUs: 2800, serverUs: 900 }],
    });
    // Connection: the mean of the two lines' intercepts (both are an empty call).
    expect(c.costs).toEqual({ connS: 32, connC: 48, inKbS: 2, inKbC: 9, outKbS: 5, outKbC: 3 });
    expect(c.connect).toEqual({ server: 1000, client: 2000 });
    expect(c.in.server.points.map((p) => p.kb)).toEqual(sizes);
  });

  it('new-connection mode puts the cost of a new connection and its first call in the connection fields', () => {
    const c = calibrate({
      in: synthetic(sizes, 5, 30, 2, 50, 9, false),
      out: synthetic(sizes, 5, 30, 2, 50, 9, false),
      connect: [{ kb: 0, wallUs: 3000, serverUs: 1000 }],
    }, 'new-connection');
    expect([c.costs.connS, c.costs.connC]).toEqual([1000, 2000]);
    expect(() => calibrate({ in: synthetic(sizes, 3, 1, 1, 1, 1), out: synthetic(sizes, 3, 1, 1, 1, 1), connect: [] }, 'new-connection')).toThrow(/no connection/);
  });

  it('never writes a negative cost: a server CPU reading above the wall time is all server, a falling line is 0', () => {
    const falling: CallSample[] = [{ kb: 0, wallUs: 100, serverUs: 120 }, { kb: 10, wallUs: 50, serverUs: 40 }];
    const c = calibrate({ in: falling, out: falling, connect: [] });
    expect(Object.values(c.costs).every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
    expect(c.costs.inKbS).toBe(0);
    expect(c.costs.connC).toBe(0);
  });

  it('refuses samples that are not finite, negative sizes, and a direction measured at one size', () => {
    expect(() => calibrate({ in: [{ kb: 0, wallUs: NaN, serverUs: 1 }, { kb: 1, wallUs: 1, serverUs: 1 }], out: synthetic(sizes, 3, 1, 1, 1, 1), connect: [] })).toThrow(/per KB in/);
    expect(() => calibrate({ in: synthetic(sizes, 3, 1, 1, 1, 1), out: [{ kb: -1, wallUs: 1, serverUs: 1 }, { kb: 1, wallUs: 1, serverUs: 1 }], connect: [] })).toThrow(/per KB out/);
    expect(() => calibrate({ in: synthetic([64], 3, 1, 1, 1, 1), out: synthetic(sizes, 3, 1, 1, 1, 1), connect: [] })).toThrow(/per KB in: a line needs/);
  });

  it('the table it makes is one setcosts accepts, in the mfscosts format', () => {
    const c = calibrate({ in: synthetic(sizes, 7, 30, 2, 50, 9), out: synthetic(sizes, 7, 34, 5, 46, 3), connect: [] });
    const text = formatTable(costValues(c.costs));
    expect(parseTable(MFSCOSTS, text)).toEqual(costValues(c.costs));
  });

  it('a value beyond the field bound is held at the bound', () => {
    expect(toTableValue(1e12, 0)).toBe(MFSCOSTS.fields[0]!.max);
    expect(toTableValue(-5, 2)).toBe(0);
    expect(toTableValue(13.5, 2)).toBe(14);
  });
});

describe('medianCosts: one table for several nodes', () => {
  it('takes each field\'s median', () => {
    const t = (v: number) => ({ connS: v, connC: v * 2, inKbS: 1, inKbC: v, outKbS: 100 - v, outKbC: 3 });
    expect(medianCosts([t(10), t(30), t(20)])).toEqual(t(20));
    expect(medianCosts([t(10), t(21)])).toEqual({ connS: 16, connC: 31, inKbS: 1, inKbC: 16, outKbS: 85, outKbC: 3 });
    expect(() => medianCosts([])).toThrow(RangeError);
  });
});
