// Issue 9, the session client library as a cache uses it (a real mfsd over mutual TLS, callbacks
// on): A keeps a small cache of a file's data and attributes, filled by reads on the bulk stream and
// getattrs on the main one, dropping what 'invalidate' names and what was invalidated while its
// request was in flight, everything on 'reset', and replies from an older epoch. B changes the
// file over and over while A keeps reading. Every reply A caches after B's call returned shows that
// change (or the one B is making), never an older state, and when B's call returns A's cache holds
// the new state or nothing: invalidations are emitted before the ack, replies are held until the
// invalidations they follow were processed (ServerFrame.after), and no call hangs.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { sessionSuite } from '../harness/session-suite.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Attr, Invalidation, Session, U64 } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const ROUNDS = 60;
const SIZE = 4096;
const suite = sessionSuite('omfs-session-client-cache-', { sessions: { leaseMs: 5000 } });
const session = (node: number): Promise<Session> => suite.session(node);

/** One request being answered: whether something it depends on was invalidated meanwhile. */
interface Fetch { ino: bigint; epoch: number; stale: boolean }

/** The rules a cache of one node follows with a Session (the header of proto/session-client.ts). */
class TinyCache {
  readonly data = new Map<bigint, Buffer>();
  readonly attrs = new Map<bigint, Attr>();
  private readonly fetching = new Set<Fetch>();
  invalidations = 0;
  stored = 0;

  /** `check` sees every reply the cache keeps, when it keeps it. */
  constructor(private readonly s: Session, private readonly check: (what: 'data' | 'attr', v: Buffer | Attr) => void) {
    s.on('invalidate', (inv: Invalidation) => {
      this.invalidations += 1;
      const ino = inv.kind === 'name' ? inv.dir : inv.ino;
      if (inv.kind === 'data') this.data.delete(ino);
      if (inv.kind === 'attr') this.attrs.delete(ino);
      for (const f of this.fetching) if (f.ino === ino) f.stale = true;
    });
    s.on('reset', () => {
      this.data.clear();
      this.attrs.clear();
      for (const f of this.fetching) f.stale = true;
    });
  }

  private async fetch<T>(ino: bigint, get: () => Promise<T>, keep: (v: T) => void): Promise<void> {
    const f: Fetch = { ino, epoch: this.s.epoch, stale: false };
    this.fetching.add(f);
    try {
      const v = await get();
      if (!f.stale && f.epoch === this.s.epoch) {
        keep(v);
        this.stored += 1;
      }
    } finally {
      this.fetching.delete(f);
    }
  }

  read(handle: Buffer, fh: U64, ino: bigint): Promise<void> {
    return this.fetch(ino, () => this.s.readChunk(root, handle, fh, 0, SIZE), (b) => {
      this.check('data', b);
      this.data.set(ino, Buffer.from(b));
    });
  }

  getAttr(handle: Buffer, ino: bigint): Promise<void> {
    return this.fetch(ino, () => this.s.getAttr(root, handle), (a) => {
      this.check('attr', a);
      this.attrs.set(ino, a);
    });
  }
}

describe('a cache on the session client stays consistent with a writer on another session', () => {
  it(`${ROUNDS} rounds of B writing and chmodding while A reads and stats: what A caches after B's call returned shows that change, never an older state`, async () => {
    const a = await session(2);
    const b = await session(3);
    const top = await b.root(root, suite.daemon.exports[0]!.path);
    const made = await b.create(root, top.handle, 'shared', O_RDWR | O_CREAT, 0o644);
    await b.write(root, made.entry.handle, made.fh, 0, Buffer.alloc(SIZE, 0xff));
    const ino = BigInt(made.entry.attr.ino);
    const fA = await a.lookup(root, top.handle, 'shared');
    const fhA = await a.open(root, fA.handle, O_RDWR);
    // B's last change that returned, and the one it is making: what A may cache at any moment.
    const bytes = { returned: 0xff, making: 0xff };
    const modes = { returned: 0o644, making: 0o644 };
    const violations: string[] = [];
    const cache = new TinyCache(a, (what, v) => {
      if (what === 'data') {
        const b = v as Buffer;
        if (!b.every((x) => x === bytes.returned) && !b.every((x) => x === bytes.making)) violations.push(`data ${b[0]} cached after the write of ${bytes.returned} returned`);
      } else {
        const mode = (v as Attr).mode & 0o7777;
        if (mode !== modes.returned && mode !== modes.making) violations.push(`mode ${mode.toString(8)} cached after the chmod to ${modes.returned.toString(8)} returned`);
      }
    });

    let stop = false;
    const reader = (async () => {
      while (!stop) {
        await Promise.all([
          cache.read(fA.handle, fhA, ino), cache.read(fA.handle, fhA, ino), cache.getAttr(fA.handle, ino), cache.getAttr(fA.handle, ino),
        ]);
      }
    })();

    let checkedData = 0;
    let checkedAttr = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const byte = round & 0x7f;
        bytes.making = byte;
        await b.write(root, made.entry.handle, made.fh, 0, Buffer.alloc(SIZE, byte));
        bytes.returned = byte;
        const cached = cache.data.get(ino);
        if (cached) {
          checkedData += 1;
          expect(cached.every((x) => x === byte), `round ${round}: A caches data of an earlier write`).toBe(true);
        }
        const mode = round % 2 === 0 ? 0o600 : 0o640;
        modes.making = mode;
        await b.setAttr(root, made.entry.handle, { valid_mode: true, mode });
        modes.returned = mode;
        const attr = cache.attrs.get(ino);
        if (attr) {
          checkedAttr += 1;
          expect(attr.mode & 0o7777, `round ${round}: A caches attributes from before the chmod`).toBe(mode);
        }
        // Let A fill its cache again before the next change (else every check would find it empty).
        await Promise.all([cache.read(fA.handle, fhA, ino), cache.getAttr(fA.handle, ino)]);
      }
    } finally {
      stop = true;
      await reader;
    }
    console.log(`A cached ${cache.stored} replies and heard ${cache.invalidations} invalidations; at B's returns its cache held data ${checkedData} times, attributes ${checkedAttr} times`);
    expect(violations).toEqual([]);
    // Not vacuous: A heard the changes and cached replies between them (each one checked).
    expect(cache.invalidations).toBeGreaterThanOrEqual(ROUNDS * 2);
    expect(cache.stored).toBeGreaterThan(ROUNDS * 2);
    expect(a.inFlight).toBe(0);
    expect(a.status).toBe('connected');
  }, 120_000);
});
