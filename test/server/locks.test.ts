// POSIX byte-range locks through a real mfsd: two gRPC clients (two "nodes") lock the same file
// and exclude each other; SetLkW waits until the holder unlocks; an abandoned wait takes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceError } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { statusToErrno } from '../../proto/errno.js';
import { FileClient, type Caller, type LockReply } from '../../proto/file-client.js';
import { startMfsd, unary, type MfsdHandle } from '../harness/mfsd.js';

const READ = 0;
const WRITE = 1;
const UNLOCK = 2;
const TO_EOF = (2n ** 63n - 1n).toString();

let mfsd: MfsdHandle;
let a: FileClient;
let b: FileClient;
let handle: Buffer;
const callerA: Caller = { uid: 0, gid: 0, groups: [], pid: 1001 };
const callerB: Caller = { uid: 0, gid: 0, groups: [], pid: 2002 };
const idA = randomUUID();
const idB = randomUUID();

beforeAll(async () => {
  mfsd = await startMfsd({ nodeId: 3 });
  a = new FileClient(mfsd.address, await mfsd.clientCredentials());
  b = new FileClient(mfsd.address, await mfsd.clientCredentials());
  const root = await a.root(callerA, mfsd.exports[0]?.path ?? '');
  const created = await a.create(callerA, root.handle, 'locked', constants.O_RDWR);
  handle = created.entry.handle;
});
afterAll(async () => {
  a?.close();
  b?.close();
  await mfsd?.cleanup();
});

interface Who { c: FileClient; caller: Caller; id: string; owner?: number }
const A = (): Who => ({ c: a, caller: callerA, id: idA });
const B = (): Who => ({ c: b, caller: callerB, id: idB });
function req(w: Who, type: number, start: number | string, end: number | string): object {
  return { caller: w.caller, handle, client_id: w.id, lock_owner: String(w.owner ?? 1), start: String(start), end: String(end), type };
}
const setLk = (w: Who, type: number, start: number | string, end: number | string) => w.c.call('SetLk', req(w, type, start, end));
const setLkW = (w: Who, type: number, start: number | string, end: number | string) => w.c.call('SetLkW', req(w, type, start, end));
const getLk = (w: Who, type: number, start: number | string, end: number | string) => w.c.call<LockReply>('GetLk', req(w, type, start, end));

async function state(p: Promise<unknown>): Promise<string> {
  // A round trip on the other connection, then see whether p has settled.
  await getLk(A(), READ, 0, 0);
  return Promise.race([p.then(() => 'granted', (e: { code?: string }) => e.code ?? 'error'), new Promise<string>((r) => setImmediate(() => r('waiting')))]);
}

describe('byte-range locks across two clients', () => {
  it('conflicting ranges exclude, disjoint ranges and read locks share', async () => {
    await setLk(A(), WRITE, 0, 99);
    await expect(setLk(B(), WRITE, 50, 60)).rejects.toMatchObject({ code: 'EAGAIN' });
    await expect(setLk(B(), READ, 99, 99)).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(await getLk(B(), READ, 0, 0)).toEqual({ conflict: true, start: '0', end: '99', type: WRITE, pid: 1001 });
    await setLk(B(), WRITE, 100, 199);
    expect(await getLk(A(), WRITE, 150, TO_EOF)).toEqual({ conflict: true, start: '100', end: '199', type: WRITE, pid: 2002 });
    expect((await getLk(A(), WRITE, 200, TO_EOF)).conflict).toBe(false);
    // another lock owner (process) on the same client is another owner
    await expect(setLk({ ...A(), owner: 2 }, READ, 10, 10)).rejects.toMatchObject({ code: 'EAGAIN' });
    await setLk(A(), UNLOCK, 0, TO_EOF);
    await setLk(B(), UNLOCK, 0, TO_EOF);
    await setLk(A(), READ, 0, TO_EOF);
    await setLk(B(), READ, 0, 9);
    await expect(setLk(B(), WRITE, 0, 9)).rejects.toMatchObject({ code: 'EAGAIN' }); // convert blocked by A's read
    await setLk(A(), UNLOCK, 0, TO_EOF);
    await setLk(B(), WRITE, 0, 9); // now it converts
    await setLk(B(), UNLOCK, 0, TO_EOF);
    expect((await getLk(A(), WRITE, 0, TO_EOF)).conflict).toBe(false);
  });

  it('SetLkW waits while the range is held and is granted by the unlock', async () => {
    await setLk(A(), WRITE, 0, 99);
    const waiting = setLkW(B(), WRITE, 40, 49);
    expect(await state(waiting)).toBe('waiting');
    await setLk(A(), UNLOCK, 0, 39); // not yet: 40..49 still A's
    expect(await state(waiting)).toBe('waiting');
    await setLk(A(), UNLOCK, 40, TO_EOF);
    await waiting;
    expect(await getLk(A(), READ, 0, TO_EOF)).toEqual({ conflict: true, start: '40', end: '49', type: WRITE, pid: 2002 });
    await setLk(B(), UNLOCK, 0, TO_EOF);
  });

  it('a SetLkW abandoned by its client (deadline) takes nothing when the range frees', async () => {
    await setLk(A(), WRITE, 0, 9);
    const err = await unary(b.raw, 'SetLkW', req(B(), WRITE, 0, 9), 300).catch((e: ServiceError) => e);
    expect(statusToErrno(err as ServiceError).code).toBe('ETIMEDOUT');
    await setLk(A(), UNLOCK, 0, 9);
    expect((await getLk(A(), WRITE, 0, TO_EOF)).conflict).toBe(false);
  });

  it('a wait that would deadlock fails EDEADLK; the other waiter is granted when the cycle breaks', async () => {
    await setLk(A(), WRITE, 0, 9);
    await setLk(B(), WRITE, 10, 19);
    const aWaits = setLkW(A(), WRITE, 10, 19);
    expect(await state(aWaits)).toBe('waiting');
    await expect(setLkW(B(), WRITE, 0, 9)).rejects.toMatchObject({ code: 'EDEADLK' });
    await setLk(B(), UNLOCK, 0, TO_EOF);
    await aWaits;
    expect(await getLk(B(), READ, 0, TO_EOF)).toEqual({ conflict: true, start: '0', end: '19', type: WRITE, pid: 1001 });
    await setLk(A(), UNLOCK, 0, TO_EOF);
  });

  it('bad lock requests get EINVAL and the daemon stays up', async () => {
    await expect(setLk(A(), 7, 0, 9)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(setLk(A(), WRITE, 10, 9)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(getLk(A(), UNLOCK, 0, 9)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await getLk(B(), WRITE, 0, TO_EOF)).conflict).toBe(false);
  });
});
