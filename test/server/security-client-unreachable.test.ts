// Issue 8 point 10: a node that cannot be reached crashed the client library. statusToErrno built
// Errno('EHOSTDOWN') for UNAVAILABLE, Node's errno table has no EHOSTDOWN, and the TypeError thrown
// inside the gRPC callback killed every FileClient user (seen on a rejected certificate). Now every
// call rejects with an Errno: EHOSTDOWN (112, Linux's number) for a node that cannot be talked to.
// An uncaught exception here would fail the run (vitest reports errors thrown outside a test).
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errno, ERRNO_METADATA_KEY, isErrnoName, statusToErrno, toErrno } from '../../proto/errno.js';
import { FileClient, ROOT_CALLER as root } from '../../proto/file-client.js';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';

function status(code: grpc.status, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error('x'), { code, details: 'details', metadata });
}

/** Every kind of call the client makes: unary, server stream, client stream. */
function everyCall(c: FileClient): Array<Promise<unknown>> {
  const h = Buffer.alloc(32);
  return [
    c.root(root, '/srv'),
    c.lookup(root, h, 'x'),
    c.getAttr(root, h),
    c.call('SetLk', { caller: root, handle: h, client_id: 'c', lock_owner: '1', start: '0', end: '0', type: 1 }),
    c.read(root, h, '0', 0, 10),
    c.write(root, h, '0', 0, Buffer.from('hello')),
    c.readDir(root, h),
  ];
}

async function expectAllHostDown(c: FileClient): Promise<void> {
  const results = await Promise.allSettled(everyCall(c));
  for (const r of results) {
    expect(r.status).toBe('rejected');
    const err = (r as PromiseRejectedResult).reason as Errno;
    expect(err).toBeInstanceOf(Errno);
    expect({ code: err.code, errno: err.errno }).toEqual({ code: 'EHOSTDOWN', errno: 112 });
  }
}

describe('errno names Node does not know', () => {
  it('Errno knows every Linux errno, with Linux numbers', () => {
    expect(new Errno('EHOSTDOWN').errno).toBe(112);
    expect(new Errno('EUCLEAN').errno).toBe(117);
    expect(Errno.fromNumber(112).code).toBe('EHOSTDOWN');
    expect(Errno.fromNumber(121).code).toBe('EREMOTEIO');
    expect(Errno.fromNumber(35).code).toBe('EDEADLK'); // not its alias EDEADLOCK
    expect(Errno.fromNumber(11).code).toBe('EAGAIN');
    expect(Errno.fromNumber(99999).code).toBe('EIO');
    expect(isErrnoName('toString')).toBe(false);
  });

  it('toErrno and statusToErrno never throw, whatever they are given', () => {
    expect(toErrno(Object.assign(new Error('m'), { code: 'ESHUTDOWN' })).errno).toBe(108);
    expect(toErrno({ code: 'EBOGUS' }).code).toBe('EIO');
    expect(toErrno({ code: 'toString' }).code).toBe('EIO');
    expect(toErrno({ toString: () => { throw new Error('no'); } }).code).toBe('EIO');
    expect(statusToErrno(status(grpc.status.UNAVAILABLE)).code).toBe('EHOSTDOWN');
    const odd = new grpc.Metadata();
    odd.set(ERRNO_METADATA_KEY, 'not a number');
    expect(statusToErrno(status(grpc.status.UNKNOWN, odd)).code).toBe('EIO');
    const carried = new grpc.Metadata();
    carried.set(ERRNO_METADATA_KEY, '112');
    expect(statusToErrno(status(grpc.status.UNKNOWN, carried)).code).toBe('EHOSTDOWN');
    const broken = { code: grpc.status.UNAVAILABLE, details: 'd', metadata: { get: () => { throw new Error('boom'); } } };
    expect(statusToErrno(broken as unknown as grpc.ServiceError).code).toBe('EIO');
  });

  it('an error re-wrapped on its way (SysError, status details) names its code once', () => {
    const sysError = Object.assign(new Error('EACCES: openat'), { code: 'EACCES' });
    expect(toErrno(sysError).message).toBe('EACCES: openat');
    const carried = new grpc.Metadata();
    carried.set(ERRNO_METADATA_KEY, '13');
    const wire = Object.assign(new Error('x'), { code: grpc.status.PERMISSION_DENIED, details: 'EACCES: permission denied', metadata: carried });
    expect(statusToErrno(wire).message).toBe('EACCES: permission denied');
    expect(new Errno('ENOENT', 'no such file').message).toBe('ENOENT: no such file');
  });
});

describe('a FileClient talking to a node it cannot reach', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let mfsd: MfsdHandle;
  const clients: FileClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'omfs-unreach-'));
    ca = await makeTestCa(dir);
    otherCa = await makeTestCa(join(dir, 'other'));
    mfsd = await startMfsd({ nodeId: 9, ca });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await mfsd?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (address: string, creds?: grpc.ChannelCredentials): FileClient => {
    const c = new FileClient(address, creds);
    clients.push(c);
    return c;
  };

  it('nothing listening on the port: every call rejects EHOSTDOWN', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    await expectAllHostDown(client(`127.0.0.1:${port}`));
  });

  it('a certificate from another CA, which the node rejects: every call rejects EHOSTDOWN', async () => {
    const foreign = await otherCa.credentials(await otherCa.issue('intruder'));
    await expectAllHostDown(client(mfsd.address, foreign));
  });

  it('plaintext to a TLS node: every call rejects EHOSTDOWN; a proper client is still served', async () => {
    await expectAllHostDown(client(mfsd.address));
    const good = client(mfsd.address, await mfsd.clientCredentials());
    expect((await good.root(root, mfsd.exports[0]?.path ?? '')).handle.length).toBeGreaterThan(0);
  });

  it('a request the client cannot even encode rejects with an Errno, never a TypeError', async () => {
    const good = client(mfsd.address, await mfsd.clientCredentials());
    const err = await good.call('Root', { caller: { uid: { nested: 'object' } }, export_path: 7n }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Errno);
  });
});
