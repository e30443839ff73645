import { describe, expect, it } from 'vitest';
import { Advisor, DEFAULT_POLICY, advise, ratesOf, type AdviceInput, type NodeLoad } from '../../dfsa/advisor.js';
import { DEFAULT_COSTS, DEFAULT_MIGRATION } from '../../dfsa/costs.js';
import { DEFAULT_DECAY } from '../../dfsa/decay.js';
import { IoStatistics, type IoCounters } from '../../dfsa/io-profile.js';

const idle: NodeLoad = { load: 0, cpus: 4, speed: 1 };
const idleCluster = (...nodes: number[]) => new Map(nodes.map((n) => [n, idle]));
const io = (calls: number, readKB: number, writeKB = 0): IoCounters => ({ calls, readKB, writeKB });

function input(over: Partial<AdviceInput>): AdviceInput {
  return { here: 1, rates: new Map(), cpu: 1, loads: idleCluster(1, 2, 3), costs: DEFAULT_COSTS, migration: DEFAULT_MIGRATION, dirtyPages: 0, ...over };
}

describe('the advisor on synthetic profiles', () => {
  it('CPU-only work is not pulled toward data (no I/O: every idle node costs the same)', () => {
    const a = advise(input({ cpu: 1, rates: new Map() }));
    expect(a.kind).toBe('stay');
    expect(a.ranked.map((n) => n.total)).toEqual([1e6, 1e6, 1e6]);
    // A trickle of I/O to node 3 from a CPU-bound process does not pay for a move either.
    expect(advise(input({ cpu: 1, rates: new Map([[3, io(1, 4)]]) })).kind).toBe('stay');
  });

  it('work whose data is on its own node stays', () => {
    const a = advise(input({ here: 3, cpu: 0.3, rates: new Map([[3, io(2000, 50_000, 10_000)]]) }));
    expect(a.kind).toBe('stay');
    expect(a.ranked[0]!.node).toBe(3);
    expect(a.ranked[0]!.io).toBe(0);
  });

  it('heavy remote I/O on node 3 → move to 3, with the cost breakdown ranked', () => {
    const a = advise(input({ cpu: 0.3, rates: new Map([[3, io(500, 20_000)], [1, io(10, 10)]]) }));
    expect(a.kind).toBe('move');
    if (a.kind !== 'move') return;
    expect(a.to).toBe(3);
    expect(a.ranked.map((n) => n.node)).toEqual([3, 1, 2]);
    // I/O on node 1: the 500 calls and 20000 KB read from node 3 pay both sides' remote costs.
    const here = a.ranked.find((n) => n.node === 1)!;
    expect(here.io).toBe(500 * (36 + 40) + 20_000 * (14 + 19));
    expect(here.cpu).toBe(0.3e6);
    expect(a.migrationUs).toBe(8141);
  });

  it('a move must pay for itself over the horizon: many dirty pages keep a light I/O user home', () => {
    const rates = new Map([[3, io(10, 200)]]); // 10·76 + 200·33 = 7360 µs/s to save
    expect(advise(input({ cpu: 0, rates, dirtyPages: 0 })).kind).toBe('move');
    const heavy = advise(input({ cpu: 0, rates, dirtyPages: 1000 })); // 8141 + 351 000 µs > 40·7360
    expect(heavy.kind).toBe('stay');
    expect(heavy.reason).toMatch(/not more than the 359141 us a move costs/);
  });

  it('a loaded target is avoided', () => {
    const rates = new Map([[3, io(200, 10_000)]]); // 345 200 µs/s of remote I/O from node 1
    const busy3 = new Map([[1, idle], [2, idle], [3, { load: 3, cpus: 1, speed: 1 }]]);
    const a = advise(input({ cpu: 0.6, rates, loads: busy3 }));
    expect(a.kind).toBe('stay');
    // Its CPU term there is 4× (three runnable tasks on its one CPU plus this one).
    expect(a.ranked.find((n) => n.node === 3)!.cpu).toBeCloseTo(0.6e6 * 4, 6);
    // The same process with node 3 idle moves there.
    expect(advise(input({ cpu: 0.6, rates })).kind).toBe('move');
  });

  it('a faster CPU elsewhere attracts CPU-bound work only through the CPU term', () => {
    const loads = new Map([[1, { load: 1, cpus: 1, speed: 1 }], [2, { load: 0, cpus: 1, speed: 2 }]]);
    const a = advise(input({ cpu: 1, loads }));
    expect(a.kind).toBe('move');
    if (a.kind === 'move') expect(a.to).toBe(2);
  });

  it('flapping is damped when two nodes are near-equal and the profile wobbles', () => {
    // Half its reads from node 2, half from node 3, ±8% wobble each second; it runs on 2 at first.
    const movesUnder = (policy: typeof DEFAULT_POLICY) => {
      let here = 2;
      let moves = 0;
      let t = 0;
      const advisor = new Advisor(() => t);
      for (let step = 0; step < 200; step++) {
        const w = 1 + 0.08 * Math.sin(step);
        const rates = new Map([[2, io(100, 5000 * w)], [3, io(100, 5000 / w)]]);
        const a = advisor.advise('p', input({ here, cpu: 0.2, rates, policy }));
        if (a.kind === 'move') {
          here = a.to;
          advisor.moved('p');
          moves++;
        }
        t += 1000;
      }
      return moves;
    };
    // Without hysteresis it would follow every wobble (the saving still pays for each move)...
    expect(movesUnder({ ...DEFAULT_POLICY, margin: 0, minMoveIntervalMs: 0 })).toBeGreaterThan(50);
    // ...with the margin it never moves, and the minimum time alone bounds the moves too.
    expect(movesUnder(DEFAULT_POLICY)).toBe(0);
    expect(movesUnder({ ...DEFAULT_POLICY, margin: 0 })).toBeLessThanOrEqual(200 / 30 + 1);
  });

  it('after a move the process stays for the minimum time, even if the profile changes', () => {
    let t = 0;
    const advisor = new Advisor(() => t);
    const to3 = new Map([[3, io(500, 20_000)]]);
    const to2 = new Map([[2, io(500, 20_000)]]);
    const first = advisor.advise('p', input({ here: 1, cpu: 0.2, rates: to3 }));
    expect(first.kind).toBe('move');
    advisor.moved('p');
    t += DEFAULT_POLICY.minMoveIntervalMs - 1;
    const soon = advisor.advise('p', input({ here: 3, cpu: 0.2, rates: to2 }));
    expect(soon.kind).toBe('stay');
    expect(soon.reason).toMatch(/^moved 30.0 s ago|^moved 29\.\d s ago/);
    t += 1;
    const later = advisor.advise('p', input({ here: 3, cpu: 0.2, rates: to2 }));
    expect(later.kind === 'move' && later.to).toBe(2);
  });

  it('decayed profiles turn into rates: a steady stream settles at its true rate (within one tick: 2.5%)', () => {
    let t = 0;
    const s = new IoStatistics({ now: () => t });
    for (let i = 0; i < 600; i++) {
      s.recordIo('p', 3, { calls: 50, readKB: 1000 }); // per second
      t += 1000;
    }
    const r = ratesOf(s.profile('p')!, DEFAULT_DECAY).get(3)!;
    // Read just after a tick, the last second's reads have been decayed once: 975 of the 1000.
    expect(r.readKB).toBeGreaterThanOrEqual(974.9);
    expect(r.readKB).toBeLessThanOrEqual(1000);
    expect(r.calls).toBeCloseTo(r.readKB / 20, 6);
  });
});
