// The raw session transport (proto/frame-wire.ts) against a real mfsd over mutual TLS: the same
// operations and refusals as on gRPC, and connections that do not speak it are closed without
// harming the sessions that do. (Reconnect, resume and keepalive run on both transports in
// session-client-reconnect.test.ts and session-client-resume.test.ts; every /mfs test uses it.)
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { nodeCredentials, nodeTls, tlsOf } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { PREFACE, hostPorts } from '../../proto/frame-wire.js';
import { Session } from '../../proto/session-client.js';
import type { RawTls } from '../../proto/session-raw.js';
import { createFileService } from '../../server/file-service.js';
import { LockTable } from '../../server/locks.js';
import { serverCredentials } from '../../server/tls.js';
import { within } from '../harness/outcome.js';

const { O_RDWR, O_CREAT } = fs.constants;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
const sessions: Session[] = [];
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-raw-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1 });
}, 120_000);

afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function rawSession(node: number, tls?: RawTls): Promise<Session> {
  const s = await Session.open(d!.address, await nodeCredentials(ca, node), { node, tls: tls ?? (await nodeTls(ca, node)) });
  sessions.push(s);
  return s;
}

/** A TLS connection to the daemon offering no ALPN (what the raw transport opens), not yet used. */
async function bareConnection(node: number): Promise<{ socket: TLSSocket; closed: Promise<void> }> {
  const tls = await nodeTls(ca, node);
  const [{ host, port }] = hostPorts(d!.address);
  const socket = connect({ host, port, ca: tls.ca, cert: tls.cert, key: tls.key });
  sockets.push(socket);
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed };
}

describe('a session on the raw transport', () => {
  it('is welcomed as on gRPC and carries every kind of call: a 3 MiB write read back, getattr, a listing', async () => {
    const s = await rawSession(2);
    expect(s.welcome).toMatchObject({ node: 1, resumed: false });
    const top = await s.root(root, d!.exports[0]!.path);
    const { entry, fh } = await s.create(root, top.handle, 'raw-file', O_RDWR | O_CREAT);
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
    expect(await s.write(root, entry.handle, fh, 0, data)).toBe(data.length);
    expect((await s.read(root, entry.handle, fh, 0, data.length)).equals(data)).toBe(true);
    expect(Number((await s.getAttr(root, entry.handle)).size)).toBe(data.length);
    await s.release(root, fh);
    expect(fs.readFileSync(join(d!.exports[0]!.path, 'raw-file')).equals(data)).toBe(true);
    const names = (await s.readDir(root, top.handle)).map((e) => e.name.toString());
    expect(names).toContain('raw-file');
  }, 60_000);

  it('a Hello naming another node than its certificate is refused EACCES, as on gRPC', async () => {
    const other = await nodeTls(ca, 3);
    await expect(Session.open(d!.address, await nodeCredentials(ca, 4), { node: 4, tls: other })).rejects.toMatchObject({ code: 'EACCES' });
  }, 60_000);

  it('a certificate from another CA gets no connection: the session cannot open (EHOSTDOWN)', async () => {
    const foreign = await makeTestCa(mkdtempSync(join(tmp, 'foreign-')));
    const tls = await tlsOf(await foreign.issue('node5'));
    await expect(Session.open(d!.address, await nodeCredentials(ca, 5), { node: 5, tls })).rejects.toMatchObject({ code: 'EHOSTDOWN' });
  }, 60_000);
});

describe('connections that do not speak the raw transport', () => {
  it('a wrong preface, and a record longer than the limit, get the connection closed; a session beside them goes on', async () => {
    const s = await rawSession(6);
    const top = await s.root(root, d!.exports[0]!.path);

    const garbage = await bareConnection(7);
    garbage.socket.write('GET / HTTP/1.1\r\n\r\n');
    await within(garbage.closed, 20_000, 'a connection with a wrong preface closed');

    const huge = await bareConnection(7);
    const header = Buffer.alloc(5);
    header.writeUInt32LE(0xfffffff0, 0);
    huge.socket.write(Buffer.concat([PREFACE, header]));
    await within(huge.closed, 20_000, 'a connection announcing a 4 GiB record closed');

    const unknownKind = await bareConnection(7);
    const odd = Buffer.alloc(5);
    odd[4] = 9;
    unknownKind.socket.write(Buffer.concat([PREFACE, odd]));
    await within(unknownKind.closed, 20_000, 'a connection with a record of an unknown kind closed');

    // The session beside them was never touched.
    expect(String((await s.getAttr(root, top.handle)).ino)).toBe(String(top.attr.ino));
  }, 60_000);

  it('a frame that is not a Hello first ends the stream with EINVAL, as on gRPC', async () => {
    const c = await bareConnection(8);
    const frame = Buffer.from([0x08, 0x05]); // ClientFrame { id: 5 }, no operation
    const header = Buffer.alloc(5);
    header.writeUInt32LE(frame.length, 0);
    const got: Buffer[] = [];
    c.socket.on('data', (b: Buffer) => got.push(b));
    c.socket.write(Buffer.concat([PREFACE, header, frame]));
    await within(c.closed, 20_000, 'the stream ended');
    // The server's last record: END (kind 3) with errno EINVAL (22).
    const all = Buffer.concat(got);
    expect(all.length).toBeGreaterThanOrEqual(9);
    let at = 0;
    let last: { kind: number; payload: Buffer } | undefined;
    while (at + 5 <= all.length) {
      const len = all.readUInt32LE(at);
      last = { kind: all[at + 4]!, payload: all.subarray(at + 5, at + 5 + len) };
      at += 5 + len;
    }
    expect(last?.kind).toBe(3);
    expect(last?.payload.readUInt32LE(0)).toBe(22);
  }, 60_000);
});

describe('a node that does not speak the raw transport', () => {
  it('(a daemon from before it: gRPC over TLS only) gets the session on gRPC instead, and it works', async () => {
    const dir = mkdtempSync(join(tmp, 'old-'));
    const exp = join(dir, 'export');
    fs.mkdirSync(exp);
    const service = await createFileService({ nodeId: 9, exports: [{ path: exp, dfsa: 1, readOnly: false, rootSquash: false }], stateDir: join(dir, 'state'), locks: new LockTable(), tls: true });
    // As mfsd served before: no 'unknownProtocol' listener, so node:http2 answers a raw client with an HTTP 403.
    const server = new grpc.Server();
    server.addService(service.session.definition, service.session.implementation);
    const material = await nodeTls(ca, 9);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', serverCredentials(material), (err, p) => (err ? reject(err) : resolve(p))));
    try {
      const s = await Session.open(`127.0.0.1:${port}`, await nodeCredentials(ca, 10), { node: 10, tls: await nodeTls(ca, 10) });
      sessions.push(s);
      const top = await s.root(root, exp);
      const { entry, fh } = await s.create(root, top.handle, 'via-grpc', O_RDWR | O_CREAT);
      expect(await s.write(root, entry.handle, fh, 0, Buffer.from('fallback'))).toBe(8);
      await s.release(root, fh);
      expect(fs.readFileSync(join(exp, 'via-grpc'), 'utf8')).toBe('fallback');
    } finally {
      for (const x of sessions.splice(0)) x.close();
      server.forceShutdown();
      await service.close();
    }
  }, 60_000);
});
