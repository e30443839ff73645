// mfsd lifecycle against the real binary: SIGTERM drains in-flight calls (a big streamed read
// completes intact) and exits 0; a call that would outlive the grace period is cancelled and
// the daemon still exits 0; a restart keeps the port and the state.
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { constants, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { join } from 'node:path';
import { FileClient, ROOT_CALLER, type Entry } from '../../proto/file-client.js';
import { loadNodeServiceConstructor, type IdentifyReply } from '../../proto/node.js';
import { MFSCTL_JS, MFSD_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle } from '../harness/mfsd.js';

let mfsd: MfsdHandle | undefined;
let clients: FileClient[] = [];
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await mfsd?.cleanup();
  mfsd = undefined;
});

async function connect(h: MfsdHandle): Promise<FileClient> {
  const c = new FileClient(h.address, await h.clientCredentials());
  clients.push(c);
  return c;
}

describe('mfsd shutdown and restart', () => {
  it('SIGTERM during a 64 MiB streamed read: the read completes intact, then mfsd exits 0', async () => {
    mfsd = await startMfsd({ shutdownGraceMs: 60_000 });
    const data = randomBytes(64 << 20);
    writeFileSync(join(mfsd.exports[0]?.path ?? '', 'big'), data);
    const c = await connect(mfsd);
    const root = await c.root(ROOT_CALLER, mfsd.exports[0]?.path ?? '');
    const file = await c.lookup(ROOT_CALLER, root.handle, 'big');
    const fh = await c.open(ROOT_CALLER, file.handle, constants.O_RDONLY);
    const stream = (c.raw['Read'] as (r: object) => grpc.ClientReadableStream<{ data: Buffer }>).call(c.raw, {
      caller: ROOT_CALLER, handle: file.handle, fh, flags: 0, offset: '0', size: String(data.length),
    });
    const hash = createHash('sha256');
    let bytes = 0;
    let exited: Promise<number | null> | undefined;
    const h = mfsd;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: { data: Buffer }) => {
        hash.update(chunk.data);
        bytes += chunk.data.length;
        if (!exited) exited = h.stop('SIGTERM'); // the call is in flight now
      });
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    expect(bytes).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(await exited).toBe(0);
    expect(mfsd.stderr()).toMatch(/SIGTERM: draining in-flight calls[\s\S]*mfsd: stopped\n$/);
  });

  it('SIGTERM while a SetLkW waits past the grace period: the wait is cancelled, mfsd exits 0', async () => {
    mfsd = await startMfsd({ shutdownGraceMs: 500 });
    const c = await connect(mfsd);
    const root = await c.root(ROOT_CALLER, mfsd.exports[0]?.path ?? '');
    const { entry } = await c.create(ROOT_CALLER, root.handle, 'f', constants.O_RDWR);
    const lock = (id: string, type: number): object => ({ caller: ROOT_CALLER, handle: (entry as Entry).handle, client_id: id, lock_owner: '1', start: '0', end: '9', type });
    await c.call('SetLk', lock(randomUUID(), 1));
    const waiter = c.call('SetLkW', lock(randomUUID(), 1)).then(() => 'granted', (e: { code: string }) => e.code);
    await c.call('GetLk', lock(randomUUID(), 0)); // a round trip, so the waiter is most likely in flight; either way it must not be granted
    const code = await mfsd.stop('SIGTERM');
    expect(code).toBe(0);
    expect(await waiter).not.toBe('granted');
    expect(mfsd.stderr()).toContain('mfsd: stopped');
  });

  it('SIGINT stops it too, and a second signal does not wait for the grace period', async () => {
    mfsd = await startMfsd({ shutdownGraceMs: 3_600_000 });
    const c = await connect(mfsd);
    const root = await c.root(ROOT_CALLER, mfsd.exports[0]?.path ?? '');
    const { entry } = await c.create(ROOT_CALLER, root.handle, 'g', constants.O_RDWR);
    const lock = (id: string): object => ({ caller: ROOT_CALLER, handle: entry.handle, client_id: id, lock_owner: '1', start: '0', end: '0', type: 1 });
    await c.call('SetLk', lock('holder'));
    const waiter = c.call('SetLkW', lock('waiter')).catch(() => undefined);
    await c.call('GetLk', { ...lock('probe'), type: 0 });
    const exited = new Promise<number | null>((r) => mfsd?.proc.once('exit', (code) => r(code)));
    mfsd.proc.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200)); // let the first signal start draining
    mfsd.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    await waiter;
    expect(mfsd.stderr()).toContain('SIGTERM again: cancelling in-flight calls');
  });

  it('garbage on the socket (not HTTP/2, broken HTTP/2 preface) does not hurt the daemon', async () => {
    mfsd = await startMfsd({ nodeId: 11 });
    const port = mfsd.port;
    const junk = [randomBytes(4096), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), randomBytes(2048)])];
    for (const bytes of junk) {
      await new Promise<void>((resolve) => {
        const sock = tcpConnect(port, '127.0.0.1', () => sock.end(bytes));
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.resume();
      });
    }
    const NodeClient = loadNodeServiceConstructor();
    const n = new NodeClient(mfsd.address, grpc.credentials.createInsecure());
    try {
      expect((await unary<IdentifyReply>(n, 'Identify', {})).node).toBe(11);
    } finally {
      n.close();
    }
    expect(mfsd.proc.exitCode).toBeNull();
  });

  it('restart keeps the port, and handles taken before it still work', async () => {
    mfsd = await startMfsd({ nodeId: 9 });
    const c = await connect(mfsd);
    const root = await c.root(ROOT_CALLER, mfsd.exports[0]?.path ?? '');
    const { entry } = await c.create(ROOT_CALLER, root.handle, 'kept', constants.O_RDWR);
    const port = mfsd.port;
    await mfsd.restart();
    expect(mfsd.readyLine).toContain(`127.0.0.1:${port} (insecure)`);
    const NodeClient = loadNodeServiceConstructor();
    const n = new NodeClient(mfsd.address, grpc.credentials.createInsecure());
    try {
      expect((await unary<IdentifyReply>(n, 'Identify', {})).node).toBe(9);
    } finally {
      n.close();
    }
    expect((await c.getAttr(ROOT_CALLER, entry.handle)).size).toBe('0');
  });
});

describe('what a user sees when something is in the way', () => {
  it('a port already in use: exit 1 with our one line, no grpc-js line before it', async () => {
    mfsd = await startMfsd();
    const r = await runNode(MFSD_JS, ['--node', '2', '--listen', mfsd.address, '--state-dir', join(mfsd.root, 'state2'),
      '--export', mfsd.exports[0]?.path ?? '', '--insecure']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`mfsd: cannot listen on ${mfsd.address}: address in use\n`);
  });

  it('mfsctl identify: nothing listening is "connection refused" at once; TLS against this plaintext node is named', async () => {
    mfsd = await startMfsd();
    const free = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    });
    let t0 = Date.now();
    const refused = await runNode(MFSCTL_JS, ['identify', `127.0.0.1:${free}`, '--insecure']);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^mfsctl: cannot reach 127\\.0\\.0\\.1:${free}: connection refused`));
    const certDir = await (await makeTestCa(mfsd.root)).issue('admin');
    t0 = Date.now();
    const tls = await runNode(MFSCTL_JS, ['identify', mfsd.address, '--dir', certDir]);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(tls.code).toBe(1);
    expect(tls.stderr).toMatch(/: it speaks plaintext, not TLS \(a node started with --insecure needs mfsctl --insecure\)\n$/);
    expect(mfsd.proc.exitCode).toBeNull();
  });
});
