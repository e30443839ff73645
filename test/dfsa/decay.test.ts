import { describe, expect, it } from 'vitest';
import { DEFAULT_DECAY, decayed, parseDecay } from '../../dfsa/decay.js';
import { IoStatistics } from '../../dfsa/io-profile.js';
import { TableError } from '../../dfsa/tables.js';

/** A clock the test moves by hand. */
function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('decay settings (setdecay INTERVAL SLOW FAST)', () => {
  it("defaults to openMosix's 975/926 per mille, every second", () => {
    expect(DEFAULT_DECAY).toEqual({ interval: 1, slow: 975, fast: 926 });
    expect(parseDecay(['10', '1000', '0'])).toEqual({ interval: 10, slow: 1000, fast: 0 });
  });

  it('refuses bad values naming the field', () => {
    const refused = (words: string[]) => {
      try {
        parseDecay(words);
      } catch (err) {
        expect(err).toBeInstanceOf(TableError);
        return (err as Error).message;
      }
      throw new Error(`${words.join(' ')} was accepted`);
    };
    expect(refused(['0', '975', '926'])).toBe('decay field 1 (INTERVAL, seconds between decays): 0 is too small; the value must be at least 1');
    expect(refused(['1', '1001', '926'])).toMatch(/^decay field 2 \(SLOW, per mille kept by slow decay\): 1001 is too large; at most 1000/);
    expect(refused(['1', '975', 'x'])).toBe('decay field 3 (FAST, per mille kept by fast decay): "x" is not a number');
    expect(refused(['1', '926', '975'])).toMatch(/^decay field 3 \(FAST.*975 keeps more than SLOW \(926\)/);
    expect(refused(['1', '975'])).toMatch(/^decay: 2 values given, 3 expected \(INTERVAL SLOW FAST\)/);
  });

  it('a counter keeps rate/1000 of its value per whole interval', () => {
    expect(decayed(1000, DEFAULT_DECAY, 'slow', 1)).toBeCloseTo(975, 9);
    expect(decayed(1000, DEFAULT_DECAY, 'fast', 2)).toBeCloseTo(857.476, 9);
    expect(decayed(1000, DEFAULT_DECAY, 'none', 50)).toBe(1000);
    expect(decayed(1000, DEFAULT_DECAY, 'slow', 0)).toBe(1000);
  });
});

describe('per-process I/O profiles', () => {
  it('decay lazily, exactly value·(rate/1000)^(whole intervals elapsed), at global ticks', () => {
    const c = clock(100_000); // on a tick boundary
    const s = new IoStatistics({ settings: { interval: 10, slow: 900, fast: 500 }, now: c.now });
    s.recordIo('1:1', 3, { calls: 1000, readKB: 4000, writeKB: 200 });
    c.advance(9_999); // still within the same interval: no decay yet
    expect(s.profile('1:1')!.get(3)).toEqual({ calls: 1000, readKB: 4000, writeKB: 200 });
    c.advance(1); // one tick
    expect(s.profile('1:1')!.get(3)!.calls).toBeCloseTo(900, 9);
    s.recordIo('1:1', 3, { calls: 100 }); // added after the tick: not decayed by it
    c.advance(35_000); // three more ticks, reading in between must not change the result
    const p = s.profile('1:1')!.get(3)!;
    expect(p.calls).toBeCloseTo(1000 * 0.9 ** 3, 9);
    expect(p.readKB).toBeCloseTo(4000 * 0.9 ** 4, 9);
    expect(p.writeKB).toBeCloseTo(200 * 0.9 ** 4, 9);
  });

  it('a count recorded just before a tick is decayed by it (ticks are global, like a kernel timer)', () => {
    const c = clock(999);
    const s = new IoStatistics({ now: c.now });
    s.recordIo('p', 2, { readKB: 100 });
    c.advance(1);
    expect(s.profile('p')!.get(2)!.readKB).toBeCloseTo(97.5, 9);
  });

  it('fast decay and no decay per process; setdecay applies the old settings up to now', () => {
    const c = clock(0);
    const s = new IoStatistics({ now: c.now });
    s.setMode('fast', 'fast');
    s.setMode('keep', 'none');
    for (const k of ['slow', 'fast', 'keep']) s.recordIo(k, 1, { calls: 1000 });
    c.advance(2000);
    expect(s.profile('slow')!.get(1)!.calls).toBeCloseTo(1000 * 0.975 ** 2, 9);
    expect(s.profile('fast')!.get(1)!.calls).toBeCloseTo(1000 * 0.926 ** 2, 9);
    expect(s.profile('keep')!.get(1)!.calls).toBe(1000);
    c.advance(500);
    s.setDecay({ interval: 1, slow: 500, fast: 500 });
    c.advance(500); // half an interval under the new settings... which is the next whole tick
    expect(s.profile('slow')!.get(1)!.calls).toBeCloseTo(1000 * 0.975 ** 2 * 0.5, 9);
  });

  it('cleared on exec (mode kept), dropped on exit, per target node', () => {
    const c = clock(0);
    const s = new IoStatistics({ now: c.now });
    s.setMode('p', 'fast');
    s.recordIo('p', 1, { calls: 5, readKB: 10 });
    s.recordIo('p', 3, { writeKB: 7 });
    s.recordIo('q', 1, { calls: 1 });
    expect([...s.profile('p')!.keys()].sort()).toEqual([1, 3]);
    s.exec('p');
    expect(s.profile('p')!.size).toBe(0);
    expect(s.modeOf('p')).toBe('fast');
    s.recordIo('p', 2, { calls: 1 });
    expect([...s.profile('p')!.keys()]).toEqual([2]);
    s.exit('p');
    expect(s.profile('p')).toBeUndefined();
    expect(s.keys()).toEqual(['q']);
  });

  it('a node whose counters have decayed to nothing leaves the profile', () => {
    const c = clock(0);
    const s = new IoStatistics({ now: c.now });
    s.recordIo('p', 1, { calls: 1 });
    s.recordIo('p', 2, { calls: 1e6 });
    c.advance(300_000); // 0.975^300 ≈ 5e-4
    expect([...s.profile('p')!.keys()]).toEqual([2]);
  });
});
