// Prometheus metrics: the registry's text exposition (format 0.0.4) on its own, then a real mfsd
// under mutual TLS with `metrics.listen`: off by default, served at /metrics when configured,
// counting sessions, calls by method and the Advisor's decisions; bad config refused.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdvisorConstructor, type AdviseReplyMsg } from '../../proto/advisor.js';
import { loadNodeServiceConstructor } from '../../proto/node.js';
import { MAX_SERIES, Registry, formatValue, peerNode } from '../../server/metrics.js';
import { MFSD_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';

/** Every line of a 0.0.4 exposition: a HELP or TYPE comment or a sample `name{l="v",...} value`. */
const LINE = /^(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge)|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf))$/;

/** The value of the sample `series` (name and labels exactly as printed), undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('registry (text format 0.0.4)', () => {
  it('prints HELP and TYPE, then each label set, with labels escaped', () => {
    const r = new Registry();
    const c = r.counter('t_ops_total', 'Operations\nper "peer" \\ op', ['peer', 'op']);
    const g = r.gauge('t_temp', 'A gauge');
    c.inc({ peer: '2', op: 'read' });
    c.inc({ peer: '2', op: 'read' }, 4);
    c.inc({ peer: 'a"b\\c\nd', op: 'write' });
    g.set({}, 1.5);
    const text = r.expose();
    expect(text).toContain('# HELP t_ops_total Operations\\nper "peer" \\\\ op\n# TYPE t_ops_total counter\n');
    expect(text).toContain('t_ops_total{peer="2",op="read"} 5\n');
    expect(text).toContain('t_ops_total{peer="a\\"b\\\\c\\nd",op="write"} 1\n');
    expect(text).toContain('# TYPE t_temp gauge\nt_temp 1.5\n');
    for (const line of text.trimEnd().split('\n')) expect(line).toMatch(LINE);
    expect(c.get({ peer: '2', op: 'read' })).toBe(5);
  });

  it('refuses a counter going down, wrong labels, bad names and a family registered twice', () => {
    const r = new Registry();
    const c = r.counter('t_total', 'x', ['a']);
    expect(() => c.inc({ a: '1' }, -1)).toThrow(/finite amount/);
    expect(() => c.inc({ a: '1' }, NaN)).toThrow();
    expect(() => c.inc({ b: '1' })).toThrow(/labels must be exactly a/);
    expect(() => c.inc({})).toThrow();
    expect(() => r.counter('t-bad', 'x')).toThrow(/not a Prometheus name/);
    expect(() => r.counter('t_ok', 'x', ['__reserved'])).toThrow(/not allowed/);
    expect(() => r.gauge('t_total', 'again')).toThrow(/twice/);
  });

  it('keeps at most MAX_SERIES label sets per family and says how many it dropped', () => {
    const r = new Registry();
    const c = r.counter('t_many_total', 'x', ['k']);
    for (let i = 0; i < MAX_SERIES + 5; i++) c.inc({ k: String(i) });
    const text = r.expose();
    expect(text.split('\n').filter((l) => l.startsWith('t_many_total{'))).toHaveLength(MAX_SERIES);
    expect(sample(text, 'omfs_metrics_series_dropped_total')).toBe(5);
  });

  it('a gauge with a collector is read at each scrape; a collector that throws shows nothing', () => {
    const r = new Registry();
    const g = r.gauge('t_live', 'x', ['state']);
    let n = 1;
    g.collect(() => [[{ state: 'live' }, n]]);
    expect(sample(r.expose(), 't_live{state="live"}')).toBe(1);
    n = 7;
    expect(sample(r.expose(), 't_live{state="live"}')).toBe(7);
    g.collect(() => {
      throw new Error('source gone');
    });
    expect(r.expose()).toContain('# TYPE t_live gauge\n');
    expect(sample(r.expose(), 't_live{state="live"}')).toBeUndefined();
  });

  it('values and peers as printed', () => {
    expect([formatValue(3), formatValue(0.25), formatValue(NaN), formatValue(Infinity), formatValue(-Infinity)]).toEqual(['3', '0.25', 'NaN', '+Inf', '-Inf']);
    expect([peerNode('session:3:0a0b'), peerNode('local:1:ff'), peerNode('127.0.0.1:5555')]).toEqual(['3', '1', 'unary']);
  });
});

describe('mfsd metrics', () => {
  let root: string;
  let ca: TestCa;
  let withMetrics: MfsdHandle;
  let without: MfsdHandle;
  let url: string;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'omfs-metrics-'));
    ca = await makeTestCa(root);
    withMetrics = await startMfsd({ ca, nodeId: 1, config: { metrics: { listen: '127.0.0.1:0' } } });
    without = await startMfsd({ ca, nodeId: 2 });
    await waitFor('the metrics line', () => /metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(withMetrics.stderr()), 10_000);
    url = /metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(withMetrics.stderr())![1]!;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([withMetrics, without].filter(Boolean).map((h) => h.cleanup()));
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('are off by default', () => {
    expect(without.stderr()).not.toMatch(/metrics:/);
  });

  it('serves valid 0.0.4 text at /metrics, 404 elsewhere, 405 for other methods', async () => {
    const r = await fetch(url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await r.text();
    for (const line of text.trimEnd().split('\n')) expect(line).toMatch(LINE);
    for (const family of ['omfs_sessions', 'omfs_operations_total', 'omfs_bytes_total', 'omfs_invalidations_sent_total', 'omfs_rpc_calls_total', 'omfs_advisor_decisions_total', 'omfs_migrations_total', 'omfs_node_load']) {
      expect(text).toContain(`# TYPE ${family} `);
    }
    expect(sample(text, 'omfs_node_load{node="1"}')).toBeGreaterThanOrEqual(0);
    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(url, { method: 'POST', body: 'x' })).status).toBe(405);
  });

  it('counts sessions, calls by method and status, and the advisor\'s decisions', async () => {
    const before = await (await fetch(url)).text();
    expect(sample(before, 'omfs_sessions{state="live"}')).toBe(0);
    const session = await openSession(withMetrics.address, await nodeCredentials(ca, 5), 5);
    try {
      await waitFor('a live session in the metrics', async () => sample(await (await fetch(url)).text(), 'omfs_sessions{state="live"}') === 1, 10_000);
    } finally {
      await session.close();
    }
    const advisor = new (loadAdvisorConstructor())(withMetrics.address, await withMetrics.clientCredentials());
    const node = new (loadNodeServiceConstructor())(withMetrics.address, await withMetrics.clientCredentials());
    clients.push(advisor, node);
    const profile = { io: [{ node: 1, calls: 10, read_kb: 100, write_kb: 0 }], cpu: 0, dirty_pages: 0, here: 1 };
    for (let i = 0; i < 3; i++) expect((await unary<AdviseReplyMsg>(advisor, 'Advise', { profile })).advice.move).toBe(false);
    await unary(node, 'Identify', {});
    await unary(node, 'Probe', { payload: Buffer.alloc(0), reply_bytes: 2 << 20 }).catch(() => undefined);
    const after = await (await fetch(url)).text();
    const delta = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta('omfs_advisor_decisions_total{decision="stay",via="advise"}')).toBe(3);
    expect(delta('omfs_rpc_calls_total{method="/omfs.Advisor/Advise",code="OK"}')).toBe(3);
    expect(delta('omfs_rpc_calls_total{method="/omfs.NodeService/Identify",code="OK"}')).toBe(1);
    expect(delta('omfs_rpc_calls_total{method="/omfs.NodeService/Probe",code="INVALID_ARGUMENT"}')).toBe(1);
    // The session's stream counted once it ended.
    await waitFor('the session stream counted', async () => /omfs_rpc_calls_total\{method="\/omfs\.[A-Za-z]+\/[A-Za-z]*Session[A-Za-z]*"/.test(await (await fetch(url)).text()), 10_000);
  });

  it('a bad metrics config is exit 2 naming the field; an address in use is exit 1', async () => {
    const bad = await runNode(MFSD_JS, ['--config', withMetrics.configPath, '--metrics-listen', 'nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/metrics\.listen: must be "HOST:PORT"/);
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as { port: number }).port;
      const stateDir = mkdtempSync(join(root, 'state-'));
      const r = await runNode(MFSD_JS, ['--config', without.configPath, '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--metrics-listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`metrics: cannot listen on 127\\.0\\.0\\.1:${port}: address in use`));
    } finally {
      busy.close();
    }
  });
});
