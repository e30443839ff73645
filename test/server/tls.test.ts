// Mutual TLS: a real mfsd with certificates from a CA made by the real `mfsctl`; a peer without a
// certificate from that CA is refused, a proper one is served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNodeServiceConstructor, type IdentifyReply } from '../../proto/node.js';
import { MFSCTL_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';

const NodeClient = loadNodeServiceConstructor();
let root: string;
let ca: TestCa;
let otherCa: TestCa;
let mfsd: MfsdHandle;
const clients: grpc.Client[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'omfs-tls-'));
  ca = await makeTestCa(root);
  otherCa = await makeTestCa(join(root, 'other'));
  mfsd = await startMfsd({ nodeId: 5, ca });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await mfsd?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

function client(creds: grpc.ChannelCredentials): grpc.Client {
  const c = new NodeClient(mfsd.address, creds);
  clients.push(c);
  return c;
}

describe('mfsd over mutual TLS', () => {
  it('announces tls in its ready line', () => {
    expect(mfsd.readyLine).toMatch(/^mfsd: node 5 listening on 127\.0\.0\.1:\d+ \(tls\), exports: /);
  });

  it('serves a client with a certificate from the cluster CA', async () => {
    const reply = await unary<IdentifyReply>(client(await mfsd.clientCredentials()), 'Identify', {});
    expect(reply.node).toBe(5);
    expect(reply.tls).toBe(true);
  });

  it('refuses a client that presents no certificate', async () => {
    const caPem = readFileSync(join(ca.dir, 'ca.crt'));
    const err = await unary(client(grpc.credentials.createSsl(caPem)), 'Identify', {}, 5000).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const foreign = await otherCa.issue('intruder');
    const caPem = readFileSync(join(ca.dir, 'ca.crt')); // it even trusts our server
    const creds = grpc.credentials.createSsl(caPem, readFileSync(join(foreign, 'node.key')), readFileSync(join(foreign, 'node.crt')));
    const err = await unary(client(creds), 'Identify', {}, 5000).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a plaintext client', async () => {
    const err = await unary(client(grpc.credentials.createInsecure()), 'Identify', {}, 5000).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('garbage instead of a TLS handshake does not hurt the daemon', async () => {
    const { connect } = await import('node:net');
    const { randomBytes } = await import('node:crypto');
    for (const bytes of [randomBytes(4096), Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0, 0, 0])]) {
      await new Promise<void>((resolve) => {
        const sock = connect(mfsd.port, '127.0.0.1', () => sock.end(bytes));
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.resume();
      });
    }
    const reply = await unary<IdentifyReply>(client(await mfsd.clientCredentials()), 'Identify', {});
    expect(reply.node).toBe(5);
  });

  it('mfsctl identify says at once why it cannot talk: foreign CA, refused certificate, plaintext', async () => {
    const foreign = await otherCa.issue('stranger'); // trusts the other CA only
    const mixed = join(root, 'mixed'); // trusts our CA, presents a certificate of the other CA
    mkdirSync(mixed);
    copyFileSync(join(ca.dir, 'ca.crt'), join(mixed, 'ca.crt'));
    for (const f of ['node.crt', 'node.key']) copyFileSync(join(foreign, f), join(mixed, f));
    const cases: Array<[string[], RegExp]> = [
      [['--dir', foreign], /: its certificate is not signed by the cluster CA in .*stranger\/ca\.crt/],
      [['--dir', mixed], /: .*it refused this client's certificate .*mixed\/node\.crt/],
      [['--insecure'], /: it speaks TLS, not plaintext/],
    ];
    for (const [args, message] of cases) {
      const t0 = Date.now();
      const r = await runNode(MFSCTL_JS, ['identify', mfsd.address, ...args]);
      expect(Date.now() - t0).toBeLessThan(3000); // not grpc's 5 s deadline
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^mfsctl: cannot reach ${mfsd.address.replace(/\./g, '\\.')}${message.source}.*\n$`));
    }
  });

  it('mfsctl identify works with the node certificate directory', async () => {
    const certDir = await ca.issue('admin');
    const r = await runNode(MFSCTL_JS, ['identify', mfsd.address, '--dir', certDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ node: 5, tls: true });
  });
});

describe('mfsctl ca', () => {
  it('writes keys 0600, certificates with the SANs, and will not overwrite', async () => {
    const dir = join(root, 'fresh');
    expect((await runNode(MFSCTL_JS, ['ca', 'init', '--dir', dir])).code).toBe(0);
    const r = await runNode(MFSCTL_JS, ['ca', 'issue', 'node7', '--dir', dir, '--host', '10.1.2.3', '--host', 'n7.lan']);
    expect(r.code).toBe(0);
    for (const k of ['ca.key', 'node.key']) expect(statSync(join(dir, k)).mode & 0o777).toBe(0o600);
    const x509 = new (await import('node:crypto')).X509Certificate(readFileSync(join(dir, 'node.crt')));
    expect(x509.subjectAltName).toBe('DNS:node7, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3, DNS:n7.lan');
    expect(x509.checkIssued(new (await import('node:crypto')).X509Certificate(readFileSync(join(dir, 'ca.crt'))))).toBe(true);
    const again = await runNode(MFSCTL_JS, ['ca', 'init', '--dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`mfsctl: ${join(dir, 'ca.key')} already exists (use --force to replace it)\n`);
  });

  it('says so when the CA is missing or the directory is unwritable', async () => {
    const none = await runNode(MFSCTL_JS, ['ca', 'issue', 'n1', '--dir', join(root, 'no-ca')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^mfsctl: no cluster CA at .*no-ca .*run "mfsctl ca init --dir/);
    const unwritable = await runNode(MFSCTL_JS, ['ca', 'init', '--dir', '/proc/omfs-ca']);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/^mfsctl: directory \/proc\/omfs-ca is not writable: E[A-Z]+\n$/);
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    const underFile = await runNode(MFSCTL_JS, ['ca', 'init', '--dir', join(file, 'ca')]);
    expect(underFile.code).toBe(1);
    expect(underFile.stderr).toBe(`mfsctl: directory ${join(file, 'ca')} is not writable: ENOTDIR\n`);
    const usage = await runNode(MFSCTL_JS, ['ca', 'frobnicate']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^mfsctl: bad command "ca frobnicate"\nusage:/);
  });

  it('a bad command line says what is wrong and prints the usage of that subcommand, exit 2', async () => {
    const cases: Array<[string[], string, string]> = [
      [['ca', 'issue'], 'ca issue needs NODE', 'mfsctl ca issue NODE '],
      [['ca', 'init', '--insecure'], '--insecure is not an option of "ca init"', 'mfsctl ca init '],
      [['identify'], 'identify needs HOST:PORT', 'mfsctl identify HOST:PORT '],
      [['identify', 'localhost'], '"localhost" is not HOST:PORT', 'mfsctl identify HOST:PORT '],
      [['identify', '127.0.0.1:1', '--dir'], "Option '--dir <value>' argument missing", 'mfsctl identify HOST:PORT '],
    ];
    for (const [args, message, synopsis] of cases) {
      const r = await runNode(MFSCTL_JS, args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      const lines = r.stderr.split('\n');
      expect(lines[0]).toContain(`mfsctl: ${message}`);
      expect(lines[1]).toMatch(new RegExp(`^usage: ${synopsis.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      expect(lines.slice(2)).toEqual(['']); // that one usage line only
    }
  });
});
