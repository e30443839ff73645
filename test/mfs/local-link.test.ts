// The in-process link (server/local-link.ts) the hosted /mfs mount reaches its own node with, next
// to a real Session on the same file service: the same replies in the same shapes, callbacks both
// ways (each hears the other's changes before they return, and a change waits for the link's
// listeners), a link that does not ack is fenced (its caches must go: 'reset') and goes on, and
// close() releases what it held.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Errno } from '../../proto/errno.js';
import type { Invalidation, Session } from '../../proto/session-client.js';
import { createFileService, type FileService } from '../../server/file-service.js';
import { LockTable } from '../../server/locks.js';
import type { LocalLink } from '../../server/local-link.js';
import { Peers } from '../../server/peers.js';
import { openSession } from '../harness/session-peer.js';

const LEASE_MS = 600;
const O_RDWR = 2;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const root = { uid: 0, gid: 0, groups: [], pid: process.pid };

let dir: string;
let exp: string;
let service: FileService;
let server: grpc.Server;
let address: string;
const links: LocalLink[] = [];
const sessions: Session[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'omfs-local-link-'));
  exp = join(dir, 'export');
  mkdirSync(exp);
  service = await createFileService({
    nodeId: 1, exports: [{ path: exp, dfsa: 1, readOnly: false, rootSquash: false }], stateDir: join(dir, 'state'),
    locks: new LockTable(), peers: new Peers(), sessions: { leaseMs: LEASE_MS },
  });
  server = new grpc.Server();
  server.addService(service.session.definition, service.session.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const s of sessions) s.close();
  for (const l of links) l.close();
  server?.forceShutdown();
  await service?.close();
  rmSync(dir, { recursive: true, force: true });
});

function link(): LocalLink {
  const l = service.openLocalLink();
  links.push(l);
  return l;
}
async function session(): Promise<Session> {
  const s = await openSession(address, grpc.credentials.createInsecure(), 3);
  sessions.push(s);
  return s;
}

/**
 * Two replies as comparable plain values: Buffers as hex, objects over the union of both sides'
 * own keys, read by property (a decoded message takes absent fields from its prototype, as the
 * mount reads them). Numbers stay numbers and strings strings: the shape is compared too.
 */
function plainPair(a: unknown, b: unknown): [unknown, unknown] {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return [Buffer.isBuffer(a) ? `hex:${a.toString('hex')}` : a, Buffer.isBuffer(b) ? `hex:${b.toString('hex')}` : b];
  if (Array.isArray(a) && Array.isArray(b)) {
    const pairs = a.map((x, i) => plainPair(x, b[i]));
    return [pairs.map((p) => p[0]), [...pairs.map((p) => p[1]), ...b.slice(a.length)]];
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort();
    const pairs = keys.map((k) => [k, plainPair(ra[k] ?? null, rb[k] ?? null)] as const);
    return [Object.fromEntries(pairs.map(([k, p]) => [k, p[0]])), Object.fromEntries(pairs.map(([k, p]) => [k, p[1]]))];
  }
  return [a, b];
}
/** Whether the link's reply and the session's are the same, value for value and type for type. */
function same(a: unknown, b: unknown): void {
  const [pa, pb] = plainPair(a, b);
  expect(pa).toEqual(pb);
}
/** Whether they have the same shape (replies about different files). */
function sameShape(a: unknown, b: unknown): void {
  const [pa, pb] = plainPair(a, b);
  expect(shape(pa)).toEqual(shape(pb));
}
/** The types of a value, recursively: what "the same shape" compares when values differ (new files). */
function shape(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return 'Buffer';
  if (Array.isArray(v)) return v.map(shape);
  if (v && typeof v === 'object') {
    const r = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(r).sort().filter((k) => r[k] !== undefined && r[k] !== null).map((k) => [k, shape(r[k])]));
  }
  return typeof v;
}

describe('local link', () => {
  it('answers as a Session does, value for value and shape for shape', async () => {
    writeFileSync(join(exp, 'same'), 'twelve bytes');
    mkdirSync(join(exp, 'sub'));
    const l = link();
    const s = await session();
    const both = async <T>(fn: (x: LocalLink | Session) => Promise<T>): Promise<[T, T]> => [await fn(l), await fn(s)];

    const [lr, sr] = await both((x) => x.root(root, exp));
    same(lr, sr);
    const [le, se] = await both((x) => x.lookup(root, lr.handle, 'same'));
    same(le, se);
    const [la, sa] = await both((x) => x.getAttr(root, le.handle));
    same(la, sa);
    const [ld, sd] = await both((x) => x.readDirBatch(root, lr.handle));
    const byName = (b: typeof ld): typeof ld.entries => [...b.entries].sort((x, y) => x.name.compare(y.name));
    same(byName(ld), byName(sd));
    expect(ld.eof).toBe(sd.eof);
    const [lf, sf] = await both((x) => x.statFs(root, lr.handle));
    sameShape(lf, sf);
    const [lfh, sfh] = await both((x) => x.open(root, le.handle, O_RDWR));
    expect(typeof lfh).toBe(typeof sfh);
    const [lread, sread] = await both((x) => x.read(root, le.handle, x === l ? lfh : sfh, 0, 100));
    expect(lread.toString()).toBe('twelve bytes');
    expect(sread.toString()).toBe('twelve bytes');
    const lock = { clientId: 'test', lockOwner: 1, start: 0, end: 10, type: 1 };
    const [lk, sk] = await both((x) => x.getLk(root, le.handle, lock));
    same(lk, sk);
    const [lc, sc] = await both((x) => x.create(root, lr.handle, x === l ? 'by-link' : 'by-session', O_CREAT | O_WRONLY, 0o600));
    sameShape(lc, sc);
    const [lw, sw] = await both((x) => x.write(root, x === l ? lc.entry.handle : sc.entry.handle, x === l ? lc.fh : sc.fh, 0, Buffer.from('abc')));
    expect([lw, sw]).toEqual([3, 3]);
    const [lx, sx] = await both((x) => x.lookup(root, lr.handle, 'nothing-here').catch((e: Errno) => e.code));
    expect([lx, sx]).toEqual(['ENOENT', 'ENOENT']);
    for (const [x, fh] of [[l, lfh], [s, sfh], [l, lc.fh], [s, sc.fh]] as const) await x.release(root, fh);
  });

  it('hears a session\'s change before it returns, and the change waits for its listeners', async () => {
    writeFileSync(join(exp, 'watched'), 'v1');
    const l = link();
    const s = await session();
    const top = (await l.root(root, exp)).handle;
    const e = await l.lookup(root, top, 'watched');
    const fh = await l.open(root, e.handle, O_RDWR);
    await l.read(root, e.handle, fh, 0, 10); // the link now holds a data callback
    const order: string[] = [];
    l.on('invalidate', (inv: Invalidation) => {
      if (inv.kind !== 'data' || inv.ino !== BigInt(e.attr.ino)) return undefined;
      order.push('heard');
      // The mount's kernel notification takes a while: the writer must wait for it.
      return new Promise<void>((r) => setTimeout(() => {
        order.push('listener done');
        r();
      }, 100));
    });
    const se = await s.lookup(root, (await s.root(root, exp)).handle, 'watched');
    const sfh = await s.open(root, se.handle, O_RDWR);
    await s.write(root, se.handle, sfh, 0, Buffer.from('v2'));
    order.push('write returned');
    expect(order).toEqual(['heard', 'listener done', 'write returned']);
    await s.release(root, sfh);
    await l.release(root, fh);
  });

  it("tells a caching session of its own changes before they return; never itself", async () => {
    writeFileSync(join(exp, 'cached'), 'old');
    const l = link();
    const s = await session();
    const se = await s.lookup(root, (await s.root(root, exp)).handle, 'cached');
    const sfh = await s.open(root, se.handle, O_RDWR);
    await s.read(root, se.handle, sfh, 0, 10);
    const heard: string[] = [];
    s.on('invalidate', (inv: Invalidation) => {
      if (inv.kind !== 'name' && inv.ino === BigInt(se.attr.ino)) heard.push(inv.kind);
    });
    const own: Invalidation[] = [];
    l.on('invalidate', (inv: Invalidation) => void own.push(inv));
    const le = await l.lookup(root, (await l.root(root, exp)).handle, 'cached');
    const fh = await l.open(root, le.handle, O_RDWR);
    await l.read(root, le.handle, fh, 0, 10);
    await l.write(root, le.handle, fh, 0, Buffer.from('new'));
    expect(heard).toContain('data');
    expect(own.filter((i) => i.kind !== 'name' && i.ino === BigInt(le.attr.ino))).toEqual([]);
    await l.release(root, fh);
    await s.release(root, sfh);
  });

  it('a link that does not ack is fenced (reset, new epoch) without stalling the writer past the lease, and goes on', async () => {
    writeFileSync(join(exp, 'stuck'), 'x');
    const l = link();
    const s = await session();
    const le = await l.lookup(root, (await l.root(root, exp)).handle, 'stuck');
    const fh = await l.open(root, le.handle, O_RDWR);
    await l.read(root, le.handle, fh, 0, 10);
    const resets: string[] = [];
    l.on('reset', (why: Errno) => void resets.push(why.code));
    let stuck = true;
    l.on('invalidate', () => (stuck ? new Promise<void>(() => undefined) : undefined));
    const epoch = l.epoch;
    const se = await s.lookup(root, (await s.root(root, exp)).handle, 'stuck');
    const sfh = await s.open(root, se.handle, O_RDWR);
    const t0 = Date.now();
    await s.write(root, se.handle, sfh, 0, Buffer.from('y'));
    // Bounded by the lease (generously), not forever.
    expect(Date.now() - t0).toBeLessThan(LEASE_MS * 10);
    expect(resets).toEqual(['ETIMEDOUT']);
    expect(l.epoch).toBe(epoch + 1);
    stuck = false;
    // Its open file is still there: it belongs to a process of this machine.
    expect((await l.read(root, le.handle, fh, 0, 10)).toString()).toBe('y');
    await l.release(root, fh);
    await s.release(root, sfh);
  });

  it('close() fails later calls with EHOSTDOWN and releases its open files', async () => {
    writeFileSync(join(exp, 'held'), 'z');
    const l = service.openLocalLink();
    const e = await l.lookup(root, (await l.root(root, exp)).handle, 'held');
    await l.open(root, e.handle, O_RDWR);
    expect(service.peers.has(l.peerKey)).toBe(true);
    l.close();
    expect(l.status).toBe('closed');
    expect(service.peers.has(l.peerKey)).toBe(false);
    await expect(l.getAttr(root, e.handle)).rejects.toMatchObject({ code: 'EHOSTDOWN' });
  });
});
