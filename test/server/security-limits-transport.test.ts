// Issue 8 point 5 (before authentication) and the grpc-js internals server/transport.ts relies on.
// TLS tests run a real mfsd child with a test CA; an "idle" connection is a raw TCP socket that
// never sends a TLS hello.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { peerClient } from '../harness/peer-client.js';
import { ROOT_CALLER as root, type FileClient } from '../../proto/file-client.js';
import { trackConnections } from '../../server/transport.js';
import { SESSION_MAX_FRAME, SESSION_STREAM_WINDOW } from '../../proto/session-codec.js';
import { within } from '../harness/outcome.js';

let caRoot: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
let h: Harness | undefined;
const sockets: net.Socket[] = [];
const clients: FileClient[] = [];

beforeAll(async () => {
  caRoot = mkdtempSync(join(tmpdir(), 'omfs-limits-ca-'));
  ca = await makeTestCa(caRoot);
});
afterAll(() => rmSync(caRoot, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) c.close();
  await d?.cleanup();
  await h?.stop();
  d = h = undefined;
});

interface Idle { socket: net.Socket; closed: Promise<void>; isClosed(): boolean }

/** A raw TCP connection that sends nothing; resolves once connected. */
async function idle(port: number): Promise<Idle> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  let closed = false;
  const done = new Promise<void>((resolve) => socket.once('close', () => { closed = true; resolve(); }));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed: done, isClosed: () => closed };
}

const tlsClient = async (): Promise<FileClient> => {
  const c = peerClient(d!.address, await d!.clientCredentials());
  clients.push(c);
  return c;
};

describe('before authentication', () => {
  it('idle TCP connections that never send a TLS hello are closed after limits.tlsHandshakeTimeoutMs', async () => {
    d = await startMfsd({ ca, config: { limits: { tlsHandshakeTimeoutMs: 1000 } } });
    const conns = await Promise.all(Array.from({ length: 3 }, () => idle(d!.port)));
    // Node's own default would keep them 120 s; a generous bound well under that.
    await within(Promise.all(conns.map((c) => c.closed)), 20_000, 'idle connections closed');
    const c = await tlsClient();
    await c.root(root, d.exports[0]!.path);
  });

  it('beyond limits.unauthenticatedConnections new connections are closed at once; authenticated peers keep working', async () => {
    d = await startMfsd({ ca, config: { limits: { unauthenticatedConnections: 5, tlsHandshakeTimeoutMs: 60_000 } } });
    const valid = await tlsClient();
    const top = await valid.root(root, d.exports[0]!.path);
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await idle(d.port));
    // The daemon accepts in order: the five above are counted before any of these.
    const extra = await Promise.all(Array.from({ length: 3 }, () => idle(d!.port)));
    await within(Promise.all(extra.map((c) => c.closed)), 20_000, 'connections beyond the cap closed');
    expect(held.map((c) => c.isClosed())).toEqual([false, false, false, false, false]);
    // The authenticated connection is not affected.
    expect((await valid.getAttr(root, top.handle)).ino).toBe(top.attr.ino);
    // The idle ones go: room again for a new client's handshake.
    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    const late = await tlsClient();
    await within(late.root(root, d.exports[0]!.path), 20_000, 'a new TLS client');
  });
});

describe('grpc-js internals used by server/transport.ts (fails here first if an upgrade breaks them)', () => {
  it('refuses a server without the method it wraps', () => {
    expect(() => trackConnections({} as grpc.Server, { onConnectionClosed: () => undefined, handshakeTimeoutMs: 1000, maxUnauthenticated: 1 }))
      .toThrow(/grpc-js internals changed/);
  });

  it('each connection is one peer, keyed as call.getPeer() keys it, and it ends when the connection closes', async () => {
    h = await startHarness();
    const a = peerClient(h.address);
    const b = peerClient(h.address);
    clients.push(a, b);
    await a.root(root, h.exports[0]!);
    await b.root(root, h.exports[0]!);
    expect(h.service.peers.size).toBe(2);
    a.close();
    const until = Date.now() + 20_000;
    while (h.service.peers.size !== 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(h.service.peers.size).toBe(1);
  });
});

describe('flow control', () => {
  it('a TLS connection is offered the session window and frame size (a 1 MiB write is not cut in 16 KiB frames waiting on window updates)', async () => {
    d = await startMfsd({ ca });
    const dir = await ca.issue('node7');
    const file = (f: string) => readFileSync(join(dir, f));
    const session = http2.connect(`https://127.0.0.1:${d.port}`, {
      ca: file('ca.crt'), cert: file('node.crt'), key: file('node.key'), checkServerIdentity: () => undefined,
    });
    try {
      const settings = await within(new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      }), 20_000, 'the server settings');
      expect(settings.initialWindowSize).toBe(SESSION_STREAM_WINDOW);
      expect(settings.maxFrameSize).toBe(SESSION_MAX_FRAME);
    } finally {
      session.destroy();
    }
  });
});
