// Issue 9, callbacks: a session that cached something hears of every change to it before the
// change's call returns to whoever made it. Two sessions on one real mfsd over mutual TLS: A caches
// an entry, attributes, a listing and file data; B makes each kind of change, round after round;
// when B's call resolves, A's matching invalidation has already arrived (A's client acks after its
// listeners ran, and the server answers B only after A's ack).
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { sessionSuite } from '../harness/session-suite.js';
import { peerClient } from '../harness/peer-client.js';
import { RawSession, heardBy, nodeCredentials, type Heard } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Entry, Session } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const LEASE_MS = 1500;
const ROUNDS = 20;
const suite = sessionSuite('omfs-session-callbacks-', { sessions: { leaseMs: LEASE_MS, callbacksPerSession: 64 } });
const session = (node: number): Promise<Session> => suite.session(node);


const ino = (e: Entry): bigint => BigInt(e.attr.ino);
const has = (got: Heard[], want: Partial<Heard>): boolean =>
  got.some((g) => Object.entries(want).every(([k, v]) => g[k as keyof Heard] === v));

describe('callbacks between two sessions', () => {
  it('every change by B reaches A, which cached it, before B\'s call returns; B hears nothing of its own changes', async () => {
    const a = await session(2);
    const b = await session(3);
    const aHeard = heardBy(a);
    const bHeard = heardBy(b);
    const topB = await b.root(root, suite.daemon.exports[0]!.path);
    const topA = await a.root(root, suite.daemon.exports[0]!.path);
    const dirB = await b.mkdir(root, topB.handle, 'shared');
    const dirIno = ino(dirB);

    for (let round = 0; round < ROUNDS; round++) {
      // B makes a file; A caches its entry, attributes, the listing and the data.
      const made = await b.create(root, dirB.handle, `f${round}`, O_RDWR | O_CREAT, 0o644);
      await b.write(root, made.entry.handle, made.fh, 0, Buffer.alloc(8192, round));
      const fIno = ino(made.entry);
      const cacheAll = async (): Promise<{ fh: number | string }> => {
        const dirA = await a.lookup(root, topA.handle, 'shared');
        const fA = await a.lookup(root, dirA.handle, `f${round}`);
        await a.getAttr(root, fA.handle);
        await a.readDir(root, dirA.handle);
        const fh = await a.open(root, fA.handle, O_RDWR);
        await a.read(root, fA.handle, fh, 0, 8192);
        await a.release(root, fh, fA.handle);
        return { fh };
      };
      const expectHeard = async (what: string, change: () => Promise<unknown>, wants: Array<Partial<Heard>>): Promise<void> => {
        await cacheAll();
        aHeard.length = 0;
        await change();
        // Checked synchronously at the moment B's call resolved: nothing more could arrive in between.
        for (const w of wants) expect(has(aHeard, w), `${what}: A heard ${JSON.stringify(aHeard, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}, wanted ${JSON.stringify(w, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`).toBe(true);
      };

      await expectHeard('write', () => b.write(root, made.entry.handle, made.fh, 4096, Buffer.alloc(100, 7)), [
        { kind: 'data', ino: fIno, offset: 4096n, length: 100n }, { kind: 'attr', ino: fIno },
      ]);
      await expectHeard('chmod', () => b.setAttr(root, made.entry.handle, { valid_mode: true, mode: 0o600 }), [{ kind: 'attr', ino: fIno }]);
      await expectHeard('truncate', () => b.setAttr(root, made.entry.handle, { valid_size: true, size: 1000 }), [
        { kind: 'attr', ino: fIno }, { kind: 'data', ino: fIno, offset: 1000n },
      ]);
      await expectHeard('setxattr', () => b.setXattr(root, made.entry.handle, 'user.k', Buffer.from('v')), [{ kind: 'attr', ino: fIno }]);
      await expectHeard('fallocate', () => b.fallocate(root, made.entry.handle, made.fh, 0, 20000), [
        { kind: 'attr', ino: fIno }, { kind: 'data', ino: fIno, offset: 0n, length: 20000n },
      ]);
      await b.release(root, made.fh, made.entry.handle);
      await expectHeard('create', async () => b.release(root, (await b.create(root, dirB.handle, `c${round}`, O_RDWR | O_CREAT)).fh), [
        { kind: 'name', ino: dirIno, name: `c${round}` }, { kind: 'attr', ino: dirIno },
      ]);
      await expectHeard('mkdir', () => b.mkdir(root, dirB.handle, `d${round}`), [{ kind: 'name', ino: dirIno, name: `d${round}` }, { kind: 'attr', ino: dirIno }]);
      await expectHeard('symlink', () => b.symlink(root, dirB.handle, `s${round}`, 'x'), [{ kind: 'name', ino: dirIno, name: `s${round}` }]);
      await expectHeard('link', () => b.link(root, made.entry.handle, dirB.handle, `h${round}`), [
        { kind: 'name', ino: dirIno, name: `h${round}` }, { kind: 'attr', ino: fIno },
      ]);
      await expectHeard('rename', () => b.rename(root, dirB.handle, `h${round}`, dirB.handle, `r${round}`), [
        { kind: 'name', ino: dirIno, name: `h${round}` }, { kind: 'name', ino: dirIno, name: `r${round}` }, { kind: 'attr', ino: fIno },
      ]);
      await expectHeard('unlink', () => b.unlink(root, dirB.handle, `r${round}`), [
        { kind: 'name', ino: dirIno, name: `r${round}` }, { kind: 'attr', ino: dirIno }, { kind: 'attr', ino: fIno },
      ]);
      await expectHeard('rmdir', () => b.rmdir(root, dirB.handle, `d${round}`), [{ kind: 'name', ino: dirIno, name: `d${round}` }]);
    }
    // B caches nothing here, and a change is never sent back to the session that made it.
    expect(bHeard.filter((i) => i.ino === dirIno)).toEqual([]);
  }, 120_000);

  it('a change through a unary call (a tool) reaches caching sessions too', async () => {
    const a = await session(4);
    const aHeard = heardBy(a);
    const top = await a.root(root, suite.daemon.exports[0]!.path);
    const made = await a.create(root, top.handle, 'by-tool', O_RDWR | O_CREAT);
    await a.release(root, made.fh, made.entry.handle);
    await a.getAttr(root, made.entry.handle);
    aHeard.length = 0;
    // A unary FileService call, as mfsctl or any tool makes it.
    const tool = peerClient(suite.daemon.address, await nodeCredentials(suite.ca, 5));
    try {
      await tool.setAttr(root, made.entry.handle, { valid_mode: true, mode: 0o640 });
      expect(has(aHeard, { kind: 'attr', ino: ino(made.entry) })).toBe(true);
      aHeard.length = 0;
      await a.getAttr(root, made.entry.handle);
      await tool.write(root, made.entry.handle, '0', 0, Buffer.from('by a tool'), fs.constants.O_WRONLY);
      expect(has(aHeard, { kind: 'attr', ino: ino(made.entry) })).toBe(true);
    } finally {
      tool.close();
    }
  });

  it('beyond callbacksPerSession the oldest callbacks are recalled, and a recalled file no longer waits for that session', async () => {
    const a = await session(6);
    const top = await a.root(root, suite.daemon.exports[0]!.path);
    const dir = await a.mkdir(root, top.handle, 'many');
    const files: Entry[] = [];
    for (let i = 0; i < 100; i++) {
      const c = await a.create(root, dir.handle, `m${i}`, O_RDWR | O_CREAT);
      await a.release(root, c.fh, c.entry.handle);
      files.push(c.entry);
    }
    // A session that caches nothing yet looks at the 100 files.
    const c = await session(10);
    const cHeard = heardBy(c);
    for (const f of files) await c.getAttr(root, f.handle);
    // 64 callbacks at most: looking at 100 files recalls the first 36 (attr invalidations with no change made).
    const recalled = new Set(cHeard.filter((i) => i.kind === 'attr').map((i) => i.ino));
    expect(recalled.has(ino(files[0]!))).toBe(true);
    expect(recalled.size).toBeGreaterThanOrEqual(36);
    expect(recalled.has(ino(files[99]!))).toBe(false);
    expect(recalled.size).toBe(36);
    // A change to a recalled file is not sent to C; one to a file C still holds is.
    const b = await session(7);
    cHeard.length = 0;
    await b.setAttr(root, files[0]!.handle, { valid_mode: true, mode: 0o600 });
    expect(cHeard.some((i) => i.ino === ino(files[0]!))).toBe(false);
    await b.setAttr(root, files[99]!.handle, { valid_mode: true, mode: 0o600 });
    expect(has(cHeard, { kind: 'attr', ino: ino(files[99]!) })).toBe(true);
  });
});

describe('a session that never acknowledges', () => {
  it('holds a writer for about its lease at most; then the writer proceeds and the silent session is fenced', async () => {
    const writer = await session(8);
    const top = await writer.root(root, suite.daemon.exports[0]!.path);
    const made = await writer.create(root, top.handle, 'silent', O_RDWR | O_CREAT);
    await writer.release(root, made.fh, made.entry.handle);

    // A raw session: it sends a Hello and a GetAttr (registering a callback) and then never acks.
    const raw = new RawSession(suite.daemon.address, await nodeCredentials(suite.ca, 9));
    suite.closeAfter(raw);
    raw.hello(9, 1);
    expect((await raw.reply(1)).kind).toBe('welcome');
    raw.send({ id: 2, get_attr: { caller: root, handle: made.entry.handle } });
    expect((await raw.reply(2)).kind).toBe('attr');

    const t0 = Date.now();
    await writer.setAttr(root, made.entry.handle, { valid_mode: true, mode: 0o600 });
    const waited = Date.now() - t0;
    // It waited for the ack (a lease's worth), not forever.
    expect(waited).toBeGreaterThanOrEqual(LEASE_MS * 0.8);
    expect(waited).toBeLessThan(LEASE_MS + 10_000);
    // The silent session got the invalidation and was then fenced: its stream ended with an errno.
    expect((await raw.next((f) => f.reply === 'invalidate', 1000)).reply).toBe('invalidate');
    const ended = await raw.ended;
    expect(ended?.code).toBeDefined();
    // A second change does not wait any more.
    const t1 = Date.now();
    await writer.setAttr(root, made.entry.handle, { valid_mode: true, mode: 0o644 });
    expect(Date.now() - t1).toBeLessThan(LEASE_MS * 0.8);
  }, 60_000);
});
