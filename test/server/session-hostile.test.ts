// Issue 9, step 1: hello and hostile input on the session stream of a real mfsd over mutual TLS.
// A node claim that does not match the client certificate is refused; frames that are not requests,
// garbage, unknown operations, replies sent by the client, duplicate ids and a flood beyond the
// in-flight cap are errors (EINVAL, ENOSYS, EAGAIN), never a crash, and another session on the
// same daemon goes on working throughout.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { RawSession, nodeCredentials, openSession } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { encodeClientFrame, encodeServerFrame } from '../../proto/session-codec.js';
import type { Entry, Session } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const CAP = 8;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
let bystander: Session;
let top: Entry;
let locked: Entry;
const raws: RawSession[] = [];
const sessions: Session[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-hostile-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 2, config: { limits: { requestsPerPeer: CAP } } });
  bystander = await openSession(d.address, await nodeCredentials(ca, 9), 9);
  sessions.push(bystander);
  top = await bystander.root(root, d.exports[0]!.path);
  const made = await bystander.create(root, top.handle, 'locked', O_RDWR | O_CREAT);
  await bystander.release(root, made.fh);
  locked = made.entry;
  // Held by the bystander for the whole file: other sessions' SetLkW on it wait (in flight).
  await bystander.setLk(root, locked.handle, { clientId: 'bystander', lockOwner: 1, start: 0, end: 0, type: 1 });
}, 120_000);

afterEach(async () => {
  for (const r of raws.splice(0)) r.close();
  // The daemon is alive and the bystander's session unaffected after every test.
  expect(d!.proc.exitCode).toBeNull();
  expect(Number((await bystander.getAttr(root, locked.handle)).size)).toBe(0);
});

afterAll(async () => {
  for (const s of sessions.splice(0)) s.close();
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function raw(node = 4, hello = true): Promise<RawSession> {
  const r = new RawSession(d!.address, await nodeCredentials(ca, node));
  raws.push(r);
  if (hello) {
    r.hello(node);
    expect((await r.reply(1)).kind).toBe('welcome');
  }
  return r;
}

const getAttr = (id: number, handle = top.handle): object => ({ id, get_attr: { caller: root, handle } });
const lockWait = (id: number, owner: number): object => ({
  id, set_lkw: { caller: root, handle: locked.handle, client_id: 'raw', lock_owner: owner, start: 0, end: 0, type: 1 },
});

describe('hello', () => {
  it('a client claiming another node than its certificate names is refused with EACCES', async () => {
    const creds = await nodeCredentials(ca, 4);
    const err = await openSession(d!.address, creds, 5).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'EACCES' });
    expect((err as Error).message).toMatch(/claims node 5 but the client certificate names "node4"/);
    // The same certificate with its own node number is welcome.
    const ok = await openSession(d!.address, creds, 4);
    sessions.push(ok);
    expect(ok.welcome?.node).toBe(2);
  });

  it('a first frame that is not a Hello ends the stream with EINVAL', async () => {
    const r = await raw(4, false);
    r.send(getAttr(1));
    expect(await r.ended).toMatchObject({ code: 'EINVAL' });
  });

  it('a second stream for a live session id is refused (EBUSY); a second Hello on one stream is EINVAL', async () => {
    const id = randomBytes(16);
    const first = await openSession(d!.address, await nodeCredentials(ca, 4), 4, id);
    sessions.push(first);
    await expect(openSession(d!.address, await nodeCredentials(ca, 4), 4, id)).rejects.toMatchObject({ code: 'EBUSY' });
    const r = await raw();
    r.hello(4, 2);
    expect((await r.reply(2)).errno).toMatchObject({ code: 'EINVAL' });
    r.send(getAttr(3));
    expect((await r.reply(3)).kind).toBe('attr');
  });
});

describe('bulk streams', () => {
  it('a bulk stream must name an open session of its node (ENOENT); an unknown channel is EINVAL', async () => {
    const lost = await raw(4, false);
    lost.hello(4, 1, randomBytes(16), 1);
    expect(await lost.ended).toMatchObject({ code: 'ENOENT' });
    const odd = await raw(4, false);
    odd.hello(4, 1, randomBytes(16), 7);
    expect(await odd.ended).toMatchObject({ code: 'EINVAL' });
    // Another node's certificate cannot join node 4's session: its Hello must claim its own node.
    const id = randomBytes(16);
    const main = await raw(4, false);
    main.hello(4, 1, id);
    expect((await main.reply(1)).kind).toBe('welcome');
    const intruder = new RawSession(d!.address, await nodeCredentials(ca, 6));
    raws.push(intruder);
    intruder.hello(4, 1, id, 1);
    expect(await intruder.ended).toMatchObject({ code: 'EACCES' });
  });

  it('a bulk stream shares its session: requests on both, one in-flight cap, and it ends with the main stream', async () => {
    const id = randomBytes(16);
    const main = await raw(4, false);
    main.hello(4, 1, id);
    expect((await main.reply(1)).kind).toBe('welcome');
    const bulk = await raw(4, false);
    bulk.hello(4, 1, id, 1);
    expect((await bulk.reply(1)).kind).toBe('welcome');
    // The cap counts both streams: CAP waits on the bulk stream fill it for the main one too.
    for (let i = 1; i <= CAP; i++) bulk.send(lockWait(10 + i, i));
    // The two streams are read independently: ask until the waits are in (a bound, not a timing).
    let refused: unknown;
    for (let id = 100; id < 200 && !refused; id++) {
      main.send(getAttr(id));
      const r = await main.reply(id);
      if (r.errno) refused = r.errno;
      else await new Promise((ok) => setTimeout(ok, 50));
    }
    expect(refused).toMatchObject({ code: 'EAGAIN' });
    main.close();
    expect(await bulk.ended).toMatchObject({ code: 'EHOSTDOWN' });
  });
});

describe('hostile frames after the hello', () => {
  it('garbage bytes, an unknown operation, a reply frame, id 0: error frames, the session goes on', async () => {
    const r = await raw();
    // Ids no random frame is likely to carry (4-byte varints).
    const [UNKNOWN, REPLY, OK] = [3_000_007, 3_000_008, 3_000_009];
    r.sendRaw(Buffer.from([0xff, 0xff, 0xff])); // a truncated varint: cannot decode
    for (let i = 0; i < 50; i++) r.sendRaw(randomBytes(1 + (i * 37) % 300));
    r.sendRaw(Buffer.concat([encodeClientFrame({ id: UNKNOWN }), Buffer.from([0xe2, 0x03, 0x00])])); // field 60: no such operation
    r.sendRaw(encodeServerFrame({ id: REPLY, attr: { attr: { ino: 1, mode: 0o100644 } } }));
    r.send(getAttr(0));
    r.send(getAttr(OK));
    expect((await r.reply(UNKNOWN)).errno).toMatchObject({ code: 'ENOSYS' });
    expect((await r.reply(REPLY)).errno).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/a reply frame/) });
    expect((await r.reply(OK)).kind).toBe('attr');
    // Frames that do not decode are answered with id 0 (random ones may also decode as some frame
    // and be answered as such); none ended the stream.
    const undecodable = await r.next((f) => f.id === 0 && /undecodable/.test((f['error'] as { message?: string } | null)?.message ?? ''));
    expect((undecodable['error'] as { errno: number }).errno).toBe(22);
    const idZero = await r.next((f) => f.id === 0 && /id 0 is reserved/.test((f['error'] as { message?: string } | null)?.message ?? ''));
    expect(idZero.reply).toBe('error');
  });

  it('a request whose fields are garbage of the right types is an errno, not a crash', async () => {
    const r = await raw();
    r.send({ id: 1, read: { caller: root, handle: randomBytes(40), fh: '18446744073709551615', offset: '18446744073709551615', size: 5 } });
    r.send({ id: 2, lookup: { caller: root, dir: top.handle, name: Buffer.from('a/b') } });
    r.send({ id: 3, get_attr: { handle: top.handle } }); // no caller
    r.send({ id: 4, set_lk: { caller: root, handle: locked.handle, client_id: 'x', lock_owner: 1, start: 5, end: 1, type: 7 } });
    r.send({ id: 5, read_dir: { caller: root, dir: top.handle, cookie: '9223372036854775807' } });
    for (const id of [1, 2, 3, 4]) expect((await r.reply(id)).kind).toBe('error');
    expect(['dir', 'error']).toContain((await r.reply(5)).kind);
  });

  it('a duplicate id in flight is EINVAL and does no work; the original keeps waiting', async () => {
    const r = await raw();
    r.send(lockWait(5, 1)); // waits for the bystander's lock
    r.send(getAttr(5));
    const dup = await r.reply(5);
    expect(dup.errno).toMatchObject({ code: 'EINVAL' });
    expect(dup.errno?.message).toMatch(/already in flight/);
  });

  it(`a flood beyond ${CAP} requests in flight: EAGAIN for the excess, before any work; then the session works again`, async () => {
    const r = await raw();
    // CAP waits that cannot finish, then a flood of getattrs: all refused while the cap is full.
    for (let i = 1; i <= CAP; i++) r.send(lockWait(i, i));
    for (let i = 100; i < 1100; i++) r.send(getAttr(i));
    for (let i = 100; i < 1100; i++) expect((await r.reply(i)).errno).toMatchObject({ code: 'EAGAIN' });
    // Ending the session drops its waits (the bystander keeps its lock, checked in afterEach).
    r.close();
    const again = await raw();
    again.send(getAttr(1));
    expect((await again.reply(1)).kind).toBe('attr');
  });

  it('acks of invalidations never sent are ignored', async () => {
    const r = await raw();
    r.send({ id: 0, ack: { seq: 42 } });
    r.send(getAttr(2));
    expect((await r.reply(2)).kind).toBe('attr');
  });
});
