// mfsd configuration: the parser in-process, then the real binary's exit codes and messages for
// each way a config can be wrong (missing export, bad node number, port in use, unreadable
// certificate, ...).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_LISTEN, loadConfig, parseExportFlag } from '../../server/config.js';
import { MFSD_JS, makeTestCa, runNode, type TestCa } from '../harness/mfsd.js';

let root: string;
let exp: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'omfs-config-'));
  exp = join(root, 'exp');
  mkdirSync(exp);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function writeConfig(name: string, json: unknown): string {
  const p = join(root, name);
  writeFileSync(p, typeof json === 'string' ? json : JSON.stringify(json));
  return p;
}
function configError(argv: string[]): string {
  try {
    loadConfig(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`no ConfigError for ${argv.join(' ')}`);
}

describe('loadConfig', () => {
  it('reads the file and fills defaults', () => {
    const p = writeConfig('ok.json', { node: 12, exports: [{ path: exp, dfsa: 3 }] });
    const cfg = loadConfig(['--config', p]).config;
    expect(cfg).toEqual({
      node: 12,
      adminSocket: '/var/lib/omfs/mfsd.sock',
      // null: decided at start (run-config.ts runSocket/runMount: a local cluster's node dir, else /run/omfs and the hosted mount).
      run: { mount: null, socket: null },
      listen: { host: DEFAULT_LISTEN.split(':')[0], port: 7117 },
      stateDir: '/var/lib/omfs',
      exports: [{ path: exp, dfsa: 3, readOnly: false, rootSquash: false }],
      tls: { ca: '/etc/omfs/tls/ca.crt', cert: '/etc/omfs/tls/node.crt', key: '/etc/omfs/tls/node.key' },
      insecure: false,
      shutdownGraceMs: 10_000,
      limits: {
        openFilesPerPeer: 4096, requestsPerPeer: 1024, locksPerPeer: 4096, lockWaitersPerPeer: 256,
        unauthenticatedConnections: 256, tlsHandshakeTimeoutMs: 10_000,
      },
      sessions: { leaseMs: 15_000, keepaliveMs: 5_000, callbacksPerSession: 65_536, directChangeMs: 100, slowCallMs: 20 },
      // /etc/openmosix.map when the machine has one, else a node alone.
      map: existsSync('/etc/openmosix.map') ? '/etc/openmosix.map' : null, mapExplicit: false,
      dfsa: { intervalMs: 1000, fanout: 3, window: 16, forward: 8, speed: 1000 },
    });
  });

  it('flags win over the file; --export replaces the file exports', () => {
    const p = writeConfig('flags.json', { node: 1, listen: '0.0.0.0:1', exports: [{ path: '/x', dfsa: 1 }], insecure: false });
    const cfg = loadConfig(['--config', p, '--node', '9', '--listen', '[::1]:7000', '--export', `${exp}:dfsa=8:ro:root_squash`,
      '--export', '/srv/b', '--insecure', '--state-dir', '/tmp/st/', '--tls-key', '/k']).config;
    expect(cfg?.node).toBe(9);
    expect(cfg?.listen).toEqual({ host: '::1', port: 7000 });
    expect(cfg?.exports).toEqual([
      { path: exp, dfsa: 8, readOnly: true, rootSquash: true },
      { path: '/srv/b', dfsa: 0, readOnly: false, rootSquash: false },
    ]);
    expect(cfg?.insecure).toBe(true);
    expect(cfg?.stateDir).toBe('/tmp/st');
    expect(cfg?.tls.key).toBe('/k');
  });

  it('parses --export options', () => {
    expect(parseExportFlag('/a:dfsa=2')).toEqual({ path: '/a', dfsa: 2, readOnly: false, rootSquash: false });
    expect(() => parseExportFlag('/a:dfsa=9')).toThrow(/dfsa.*0 to 8.*"9"/);
    expect(() => parseExportFlag('/a:rx')).toThrow(/unknown option "rx"/);
    expect(() => parseExportFlag('rel/dir')).toThrow(/absolute path/);
  });

  it('names the field and the problem for each bad value', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ exports: [{ path: exp }] }, /^node: required/],
      [{ node: 0, exports: [{ path: exp }] }, /^node: must be an integer from 1 to 65535, got 0/],
      [{ node: 70000, exports: [{ path: exp }] }, /^node: .*got 70000/],
      [{ node: '3x', exports: [{ path: exp }] }, /^node: .*got "3x"/],
      [{ node: 1 }, /^exports: at least one export/],
      [{ node: 1, exports: {} }, /^exports: must be an array/],
      [{ node: 1, exports: [{ path: 'rel' }] }, /^exports\[0\]\.path: must be an absolute path/],
      [{ node: 1, exports: [{ path: exp, dfsa: 9 }] }, /^exports\[0\]\.dfsa: must be an integer from 0 to 8/],
      [{ node: 1, exports: [{ path: exp, readOnly: 'yes' }] }, /^exports\[0\]\.readOnly: must be true or false/],
      [{ node: 1, exports: [{ path: exp, dfsa: 2 }, { path: '/b', dfsa: 2 }] }, /^exports: dfsa=2 is given to both/],
      [{ node: 1, exports: [{ path: exp }, { path: exp }] }, /exported twice/],
      [{ node: 1, exports: [{ path: exp, ro: true }] }, /^exports\[0\]: unknown field "ro"/],
      [{ node: 1, exports: [{ path: exp }], listen: 'localhost' }, /^listen: must be "HOST:PORT"/],
      [{ node: 1, exports: [{ path: exp }], listen: '1.2.3.4:70000' }, /^listen: .*port 0\.\.65535/],
      [{ node: 1, exports: [{ path: exp }], stateDir: 'var' }, /^stateDir: must be an absolute path/],
      [{ node: 1, exports: [{ path: exp }], tls: { ca: 'x' } }, /^tls\.ca: must be an absolute path/],
      [{ node: 1, exports: [{ path: exp }], insecure: 'no' }, /^insecure: must be true or false/],
      [{ node: 1, exports: [{ path: exp }], nodes: 3 }, /^config: unknown field "nodes"/],
      [[1, 2], /must be a JSON object/],
      ['{ node: 1 ', /not valid JSON/],
    ];
    cases.forEach(([json, re], i) => {
      expect(configError(['--config', writeConfig(`bad${i}.json`, json)])).toMatch(re);
    });
    expect(configError(['--config', join(root, 'absent.json')])).toMatch(/absent\.json: cannot read \(ENOENT\)/);
    expect(configError(['--bogus'])).toMatch(/bogus/);
  });
});

describe('mfsd refuses a bad config with a clear message and a non-zero exit', () => {
  let ca: TestCa;
  let busy: Server;
  let busyPort: number;
  beforeAll(async () => {
    ca = await makeTestCa(root);
    busy = createServer();
    busyPort = await new Promise<number>((res) => busy.listen(0, '127.0.0.1', () => res((busy.address() as { port: number }).port)));
  });
  afterAll(() => new Promise<void>((res) => busy.close(() => res())));

  const base = (): string[] => ['--config', '/nonexistent-is-fine-when-flags-say-all.json'];
  it('exit 2: missing export', async () => {
    const r = await runNode(MFSD_JS, ['--node', '1', '--insecure', '--listen', '127.0.0.1:0', '--state-dir', join(root, 's1'), '--export', join(root, 'nope')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`mfsd: export ${join(root, 'nope')}: no such directory\n`);
  });
  it('exit 2: export that is a file', async () => {
    const file = join(root, 'plain');
    writeFileSync(file, 'x');
    const r = await runNode(MFSD_JS, ['--node', '1', '--insecure', '--listen', '127.0.0.1:0', '--state-dir', join(root, 's1'), '--export', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`mfsd: export ${file}: not a directory\n`);
  });
  it('exit 2: bad node number, and a missing explicit config file', async () => {
    const r = await runNode(MFSD_JS, ['--node', '0', '--insecure', '--export', exp]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('mfsd: node: must be an integer from 1 to 65535, got "0"\n');
    const r2 = await runNode(MFSD_JS, base());
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/^mfsd: config \/nonexistent.*: cannot read \(ENOENT\)\n$/);
  });
  it('exit 2: a state dir that cannot be created (no hang on Node mkdir -p)', async () => {
    const r = await runNode(MFSD_JS, ['--node', '1', '--insecure', '--listen', '127.0.0.1:0', '--state-dir', '/proc/omfs-state', '--export', exp]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('mfsd: stateDir /proc/omfs-state: cannot create (ENOENT)\n');
  });
  it('exit 1: port in use', async () => {
    const r = await runNode(MFSD_JS, ['--node', '1', '--insecure', '--listen', `127.0.0.1:${busyPort}`, '--state-dir', join(root, 's2'), '--export', exp]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mfsd: cannot listen on 127.0.0.1:${busyPort}: address in use\n`);
    expect(r.stdout).toBe('');
  });
  it('exit 2: unreadable or missing certificate, naming the file', async () => {
    const certDir = await ca.issue('cfgnode');
    const tlsArgs = (cert: string): string[] => ['--node', '1', '--listen', '127.0.0.1:0', '--state-dir', join(root, 's3'), '--export', exp,
      '--tls-ca', join(certDir, 'ca.crt'), '--tls-cert', cert, '--tls-key', join(certDir, 'node.key')];
    const missing = await runNode(MFSD_JS, tlsArgs(join(certDir, 'absent.crt')));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`mfsd: tls: cannot read certificate ${join(certDir, 'absent.crt')}: ENOENT\n`);
    const dirAsCert = await runNode(MFSD_JS, tlsArgs(certDir));
    expect(dirAsCert.code).toBe(2);
    expect(dirAsCert.stderr).toBe(`mfsd: tls: cannot read certificate ${certDir}: EISDIR\n`);
    const garbage = join(root, 'garbage.crt');
    writeFileSync(garbage, 'not a certificate');
    chmodSync(garbage, 0o644);
    const notPem = await runNode(MFSD_JS, tlsArgs(garbage));
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toBe(`mfsd: tls: certificate ${garbage} is not a PEM file\n`);
  });
  it('--help exits 0 with the usage', async () => {
    const r = await runNode(MFSD_JS, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: mfsd/);
  });
});
