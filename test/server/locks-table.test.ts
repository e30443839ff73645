// LockTable unit tests: POSIX fcntl semantics, checked against what Linux does for the same
// sequence (the comments name the fcntl behaviour each case pins down).
import { describe, expect, it } from 'vitest';
import { LockTable, TO_EOF, type LockRequest, type LockType } from '../../server/locks.js';
import { Errno } from '../../proto/errno.js';

const F = 'file-1';
function req(owner: string, type: LockType, start: number, end: bigint | number, pid = 1, peer = ''): LockRequest {
  return { owner, type, start: BigInt(start), end: BigInt(end), pid, peer };
}
function ranges(t: LockTable, key = F): string[] {
  return t.held(key).map((l) => `${l.owner}:${l.type[0]}:${l.start}-${l.end === TO_EOF ? 'EOF' : l.end}`);
}
async function settled(p: Promise<unknown>): Promise<string> {
  // Let queued microtasks run, then report the promise's state without waiting on it.
  const marker = Symbol('pending');
  const r = await Promise.race([p.then(() => 'resolved', (e: Errno) => e.code), new Promise((res) => setImmediate(() => res(marker)))]);
  return r === marker ? 'pending' : (r as string);
}

describe('LockTable: acquiring and conflicts', () => {
  it('read locks of different owners share; a write excludes them', () => {
    const t = new LockTable();
    t.set(F, req('a', 'read', 0, 99));
    t.set(F, req('b', 'read', 50, 149));
    expect(() => t.set(F, req('c', 'write', 140, 160))).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
    expect(() => t.set(F, req('c', 'write', 0, 0))).toThrow(Errno);
    t.set(F, req('c', 'write', 150, 160)); // touching, not overlapping
    expect(ranges(t)).toEqual(['a:r:0-99', 'b:r:50-149', 'c:w:150-160']);
  });

  it('get reports the first conflicting lock of another owner, never the asker own', () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 10, 19, 4242));
    expect(t.get(F, req('a', 'write', 0, TO_EOF))).toBeNull();
    expect(t.get(F, req('b', 'read', 0, 9))).toBeNull();
    expect(t.get(F, req('b', 'read', 15, 15))).toEqual({ owner: 'a', type: 'write', start: 10n, end: 19n, pid: 4242 });
    t.set(F, req('c', 'read', 30, 39));
    expect(t.get(F, req('b', 'read', 0, TO_EOF))?.owner).toBe('a');
    expect(t.get(F, req('b', 'write', 20, TO_EOF))?.owner).toBe('c');
  });

  it('files are independent', () => {
    const t = new LockTable();
    t.set('x', req('a', 'write', 0, TO_EOF));
    t.set('y', req('b', 'write', 0, TO_EOF));
    expect(t.get('y', req('c', 'read', 0, 0))?.owner).toBe('b');
  });

  it('rejects bad ranges and types with EINVAL', () => {
    const t = new LockTable();
    expect(() => t.set(F, req('a', 'read', 10, 9))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => t.set(F, req('a', 'read', -1, 9))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => t.set(F, req('a', 'read', 0, TO_EOF + 1n))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => t.set(F, { ...req('a', 'read', 0, 1), type: 'bogus' as LockType })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => t.get(F, req('a', 'unlock', 0, 1))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(t.held(F)).toEqual([]);
  });
});

describe('LockTable: one owner merges, splits and converts', () => {
  it('merges overlapping and touching ranges of the same type', () => {
    const t = new LockTable();
    t.set(F, req('a', 'read', 0, 9));
    t.set(F, req('a', 'read', 20, 29));
    t.set(F, req('a', 'read', 10, 19));
    expect(ranges(t)).toEqual(['a:r:0-29']);
    t.set(F, req('a', 'read', 25, TO_EOF));
    expect(ranges(t)).toEqual(['a:r:0-EOF']);
  });

  it('a write over the middle of a read lock splits it in three', () => {
    const t = new LockTable();
    t.set(F, req('a', 'read', 0, 99));
    t.set(F, req('a', 'write', 40, 59));
    expect(ranges(t)).toEqual(['a:r:0-39', 'a:w:40-59', 'a:r:60-99']);
    // and back: converting the middle to read merges all three again
    t.set(F, req('a', 'read', 40, 59));
    expect(ranges(t)).toEqual(['a:r:0-99']);
  });

  it('a write converting a whole read lock to write', () => {
    const t = new LockTable();
    t.set(F, req('a', 'read', 0, 9));
    t.set(F, req('a', 'write', 0, 9));
    expect(ranges(t)).toEqual(['a:w:0-9']);
  });

  it('unlocking part of a range splits it; unlocking nothing held is fine', () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, TO_EOF));
    t.set(F, req('a', 'unlock', 100, 199));
    expect(ranges(t)).toEqual(['a:w:0-99', 'a:w:200-EOF']);
    t.set(F, req('a', 'unlock', 0, 0));
    expect(ranges(t)).toEqual(['a:w:1-99', 'a:w:200-EOF']);
    t.set(F, req('b', 'unlock', 0, TO_EOF)); // another owner's unlock touches nothing of a's
    expect(ranges(t)).toEqual(['a:w:1-99', 'a:w:200-EOF']);
    t.set(F, req('a', 'unlock', 0, TO_EOF));
    expect(ranges(t)).toEqual([]);
  });

  it('a refused conversion leaves the owner lock as it was', () => {
    const t = new LockTable();
    t.set(F, req('a', 'read', 0, 99));
    t.set(F, req('b', 'read', 50, 59));
    expect(() => t.set(F, req('a', 'write', 0, 99))).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
    expect(ranges(t)).toEqual(['a:r:0-99', 'b:r:50-59']);
  });

  it('releaseOwner drops every lock of that owner, optionally on one file only', () => {
    const t = new LockTable();
    t.set('x', req('a', 'write', 0, 9));
    t.set('y', req('a', 'write', 0, 9));
    t.set('x', req('b', 'read', 10, 19));
    t.releaseOwner('a', 'y');
    expect(ranges(t, 'y')).toEqual([]);
    expect(ranges(t, 'x')).toEqual(['a:w:0-9', 'b:r:10-19']);
    t.releaseOwner('a');
    expect(ranges(t, 'x')).toEqual(['b:r:10-19']);
  });
});

describe('LockTable: waiting', () => {
  it('setWait grants at once when nothing conflicts', async () => {
    const t = new LockTable();
    await t.setWait(F, req('a', 'write', 0, 9), new AbortController().signal);
    expect(ranges(t)).toEqual(['a:w:0-9']);
  });

  it('a waiter is woken by an unlock, a partial unlock only when its range is free', async () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, 99));
    const p = t.setWait(F, req('b', 'write', 50, 59, 7), new AbortController().signal);
    expect(await settled(p)).toBe('pending');
    expect(t.waiting(F)).toBe(1);
    t.set(F, req('a', 'unlock', 0, 49));
    expect(await settled(p)).toBe('pending');
    t.set(F, req('a', 'unlock', 50, 99));
    expect(await settled(p)).toBe('resolved');
    expect(ranges(t)).toEqual(['b:w:50-59']);
    expect(t.waiting(F)).toBe(0);
  });

  it('a write waiter is woken when a write lock is downgraded only if it asked for read', async () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, 9));
    const reader = t.setWait(F, req('b', 'read', 0, 9), new AbortController().signal);
    const writer = t.setWait(F, req('c', 'write', 0, 9), new AbortController().signal);
    t.set(F, req('a', 'read', 0, 9));
    expect(await settled(reader)).toBe('resolved');
    expect(await settled(writer)).toBe('pending');
    t.releaseOwner('a');
    expect(await settled(writer)).toBe('pending'); // b still reads
    t.releaseOwner('b');
    expect(await settled(writer)).toBe('resolved');
    expect(ranges(t)).toEqual(['c:w:0-9']);
  });

  it('an aborted wait rejects EINTR and takes nothing', async () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, 9));
    const ac = new AbortController();
    const p = t.setWait(F, req('b', 'write', 0, 9), ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'EINTR' });
    expect(t.waiting(F)).toBe(0);
    t.set(F, req('a', 'unlock', 0, 9));
    expect(ranges(t)).toEqual([]);
    const already = new AbortController();
    already.abort();
    await expect(t.setWait(F, req('b', 'write', 0, 9), already.signal)).rejects.toMatchObject({ code: 'EINTR' });
  });

  it('two owners waiting on each other: the second gets EDEADLK, the first still waits', async () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, 9));
    t.set(F, req('b', 'write', 10, 19));
    const aWaits = t.setWait(F, req('a', 'write', 10, 19), new AbortController().signal);
    await expect(t.setWait(F, req('b', 'write', 0, 9), new AbortController().signal)).rejects.toMatchObject({ code: 'EDEADLK' });
    expect(await settled(aWaits)).toBe('pending');
    t.releaseOwner('b');
    expect(await settled(aWaits)).toBe('resolved');
    expect(ranges(t)).toEqual(['a:w:0-19']);
  });

  it('a three-owner cycle across two files is detected', async () => {
    const t = new LockTable();
    t.set('x', req('a', 'write', 0, 0));
    t.set('y', req('b', 'write', 0, 0));
    t.set('x', req('c', 'write', 5, 5));
    const never = new AbortController();
    const p1 = t.setWait('y', req('a', 'write', 0, 0), never.signal); // a waits for b
    const p2 = t.setWait('x', req('b', 'write', 5, 5), never.signal); // b waits for c
    await expect(t.setWait('x', req('c', 'write', 0, 0), never.signal)).rejects.toMatchObject({ code: 'EDEADLK' });
    // a chain that does not come back to the asker is fine to wait on
    const p3 = t.setWait('x', req('d', 'read', 0, 0), never.signal);
    expect(await settled(p3)).toBe('pending');
    never.abort();
    for (const p of [p1, p2, p3]) await expect(p).rejects.toMatchObject({ code: 'EINTR' });
  });

  it('waiters are granted in arrival order when they conflict with each other', async () => {
    const t = new LockTable();
    t.set(F, req('a', 'write', 0, 9));
    const order: string[] = [];
    const ps = ['b', 'c', 'd'].map((o) => t.setWait(F, req(o, 'write', 0, 9), new AbortController().signal).then(() => order.push(o)));
    t.releaseOwner('a');
    await settled(ps[0] as Promise<unknown>);
    expect(order).toEqual(['b']);
    t.releaseOwner('b');
    await settled(ps[1] as Promise<unknown>);
    t.releaseOwner('c');
    await Promise.all(ps);
    expect(order).toEqual(['b', 'c', 'd']);
  });
});

describe('LockTable against a byte-by-byte model', () => {
  // The model keeps, per owner, the lock type of every byte of a small file; POSIX semantics are
  // trivially right there. Random set/get sequences must agree with it, and the table must stay
  // canonical: sorted, no overlap within an owner, touching same-type ranges merged.
  const SIZE = 24;
  const OWNERS = ['a', 'b', 'c'];
  type Cell = 'read' | 'write' | null;

  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }

  function modelConflict(model: Map<string, Cell[]>, r: LockRequest): boolean {
    for (const [owner, cells] of model) {
      if (owner === r.owner) continue;
      for (let i = Number(r.start); i <= Number(r.end); i++) {
        const c = cells[i];
        if (c === 'write' || (c === 'read' && r.type === 'write')) return true;
      }
    }
    return false;
  }

  function tableCells(t: LockTable): Map<string, Cell[]> {
    const out = new Map<string, Cell[]>(OWNERS.map((o) => [o, Array<Cell>(SIZE).fill(null)]));
    const held = t.held(F);
    for (let i = 0; i < held.length; i++) {
      const l = held[i] as (typeof held)[number];
      const prev = held[i - 1];
      if (prev) expect(prev.start <= l.start).toBe(true);
      for (const other of held.slice(0, i)) {
        if (other.owner !== l.owner) continue;
        expect(other.end < l.start || l.end < other.start, 'an owner never overlaps itself').toBe(true);
        if (other.type === l.type) expect(other.end + 1n === l.start || l.end + 1n === other.start, 'touching same-type ranges merge').toBe(false);
      }
      for (let b = Number(l.start); b <= Number(l.end); b++) (out.get(l.owner) as Cell[])[b] = l.type;
    }
    return out;
  }

  it('agrees with the model over 20 random sequences of 300 operations', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rand = rng(seed);
      const t = new LockTable();
      const model = new Map<string, Cell[]>(OWNERS.map((o) => [o, Array<Cell>(SIZE).fill(null)]));
      for (let step = 0; step < 300; step++) {
        const start = Math.floor(rand() * SIZE);
        const end = start + Math.floor(rand() * (SIZE - start));
        const owner = OWNERS[Math.floor(rand() * OWNERS.length)] as string;
        const type = (['read', 'write', 'unlock'] as const)[Math.floor(rand() * 3)] as LockType;
        const r = req(owner, type, start, end);
        if (rand() < 0.3 && type !== 'unlock') {
          const got = t.get(F, r);
          expect(got !== null, `seed ${seed} step ${step}: get`).toBe(modelConflict(model, r));
          if (got) expect(got.owner).not.toBe(owner);
          continue;
        }
        const conflict = type !== 'unlock' && modelConflict(model, r);
        if (conflict) {
          expect(() => t.set(F, r), `seed ${seed} step ${step}`).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
        } else {
          t.set(F, r);
          const cells = model.get(owner) as Cell[];
          for (let i = start; i <= end; i++) cells[i] = type === 'unlock' ? null : type;
        }
        expect(tableCells(t), `seed ${seed} step ${step}`).toEqual(model);
      }
    }
  });
});

describe('LockTable waiting, random sequences', () => {
  // Waking re-examines only waiters overlapping a freed range: whatever the sequence, no waiter may
  // be left blocked while nothing is in its way (the old table rescanned every waiter to ensure it).
  it('never leaves a grantable waiter waiting, over 30 random sequences of 200 operations', async () => {
    for (let seed = 1; seed <= 30; seed++) {
      let s = seed;
      const rand = (): number => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
      const t = new LockTable();
      const waits = new Map<string, { r: LockRequest; file: string; ac: AbortController; done: boolean }>();
      for (let step = 0; step < 200; step++) {
        const file = pick(['x', 'y']);
        const owner = pick(['a', 'b', 'c', 'd', 'e']);
        const start = Math.floor(rand() * 30);
        const r = req(owner, pick(['read', 'write', 'unlock'] as const), start, start + Math.floor(rand() * 10));
        const op = rand();
        if (waits.has(owner)) {
          // A blocked owner does nothing but maybe give up (it is inside its F_SETLKW call).
          if (op < 0.2) (waits.get(owner) as { ac: AbortController }).ac.abort();
        } else if (op < 0.45 && r.type !== 'unlock') {
          const ac = new AbortController();
          const w = { r, file, ac, done: false };
          waits.set(owner, w);
          t.setWait(file, r, ac.signal).then(() => (w.done = true), () => (w.done = true));
        } else if (op < 0.9) {
          try { t.set(file, r); } catch { /* EAGAIN */ }
        } else {
          t.releaseOwner(owner, rand() < 0.5 ? file : undefined);
        }
        await new Promise((res) => setImmediate(res));
        for (const [o, w] of waits) {
          if (w.done) {
            waits.delete(o);
            continue;
          }
          expect(t.get(w.file, w.r), `seed ${seed} step ${step}: ${o} waits with nothing in its way`).not.toBeNull();
        }
      }
      for (const w of waits.values()) w.ac.abort();
    }
  });
});
