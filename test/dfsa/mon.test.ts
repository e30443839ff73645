// mfsctl mon: a frame as text (renderFrame), then against two real mfsd under mutual TLS with one
// map: --once prints each node's load and I/O and, for the processes whose I/O was reported to
// the daemon (NodeService.ReportProcessIo, as the /mfs mount sends it), the profile and the
// Advisor's advice; the live mode in a terminal (a pty from script(1)) redraws, and q or Ctrl-C
// quits with the terminal given back (alternate screen left, cursor shown).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { renderFrame, type Frame } from '../../bin/mfsctl-mon.js';
import { loadNodeServiceConstructor } from '../../proto/node.js';
import { MFSCTL_JS, makeTestCa, runNode, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { nodeCredentials } from '../harness/session-peer.js';

describe('a frame', () => {
  it('shows each node\'s load and I/O, and each process\'s profile and advice', () => {
    const frame: Frame = {
      address: '127.0.0.1:7117',
      at: new Date('2026-01-02T03:04:05Z'),
      loads: { self: 1, asked_directly: false, reports: [
        { node: 1, load: 0.5, cpus: 4, speed: 1, free_mem_kb: '2048000', read_kbps: 12.25, write_kbps: 0, age_ms: '0' },
        { node: 3, load: 1.25, cpus: 8, speed: 2, free_mem_kb: '1024', read_kbps: 0, write_kbps: 300, age_ms: '1500' },
      ] },
      processes: { self: 1, tracked: 3, processes: [
        { process: '100:5', decay: 'slow', io: [{ node: 3, calls: 25, read_kb: 2500, write_kb: 0 }] },
        { process: '200:6', decay: 'fast', io: [] },
      ] },
      advice: new Map<string, Frame['advice'] extends Map<string, infer V> ? V : never>([
        ['100:5', { process: '100:5', here: 1, move: true, to: 3, ranked: [], saving_us_per_s: 82500, migration_us: 8141, reason: '' }],
        ['200:6', '- (ESRCH: process 200:6 is not tracked on node 1)'],
      ]),
      errors: [],
    };
    const text = renderFrame(frame);
    expect(text).toMatch(/^omfs mon: node 1 at 127\.0\.0\.1:7117, 03:04:05 UTC$/m);
    expect(text).toMatch(/^1\*\s+0\.50\s+4\s+1\.00\s+2000\s+12\.3\s+0\.0\s+0\.0 s$/m);
    expect(text).toMatch(/^3\s+1\.25\s+8\s+2\.00\s+1\s+0\.0\s+300\.0\s+1\.5 s$/m);
    expect(text).toMatch(/processes: 3 tracked, the 2 busiest shown/);
    expect(text).toMatch(/^100:5\s+slow\s+n3 25\.0\/s r2500\.0 w0\.0\s+move to 3 \(saves 82500\.0 µs\/s; move costs 8141\.0 µs\)$/m);
    expect(text).toMatch(/^200:6\s+fast\s+-\s+- \(ESRCH/m);
  });

  it('says what failed and that no process is tracked yet', () => {
    const text = renderFrame({ address: 'a:1', at: new Date(0), processes: { self: 2, tracked: 0, processes: [] }, advice: new Map(), errors: ['loads: EHOSTDOWN'] });
    expect(text).toMatch(/processes: 0 tracked\n\(no per-process I\/O reported/);
    expect(text).toMatch(/loads: EHOSTDOWN/);
  });
});

describe('mfsctl mon against real daemons', () => {
  let root: string;
  let ca: TestCa;
  const daemons: MfsdHandle[] = [];
  const clients: grpc.Client[] = [];
  const monArgs = (h: MfsdHandle) => ['mon', '--config', h.configPath, '--listen', h.address];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'omfs-mon-'));
    ca = await makeTestCa(root);
    const mapPath = join(root, 'openmosix.map');
    writeFileSync(mapPath, '# filled in once the daemons have ports\n');
    for (const nodeId of [1, 2]) daemons.push(await startMfsd({ ca, nodeId, config: { map: mapPath, dfsa: { intervalMs: 200 } } }));
    writeFileSync(mapPath, daemons.map((h) => `${h.nodeId} 127.0.0.1:${h.port} 1\n`).join(''));
    const before = daemons.map((h) => h.stderr().length);
    for (const h of daemons) h.proc.kill('SIGHUP');
    await Promise.all(daemons.map((h, i) => waitFor(`node ${h.nodeId} re-reading the map`, () => /SIGHUP: map .*: 2 node\(s\)/.test(h.stderr().slice(before[i])), 10_000)));
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(daemons.map((h) => h.cleanup()));
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('--once: both nodes, and no process tracked before any I/O is reported', async () => {
    const one = daemons[0]!;
    await waitFor('node 2 in node 1\'s frame', async () => /^2\s+[\d.]+\s+\d+/m.test((await runNode(MFSCTL_JS, [...monArgs(one), '--once'])).stdout), 15_000);
    const r = await runNode(MFSCTL_JS, [...monArgs(one), '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^1\*\s+[\d.]+\s+\d+\s+1\.00/m);
    expect(r.stdout).toMatch(/processes: 0 tracked/);
    // One frame, no terminal codes.
    expect(r.stdout).not.toContain('\x1b');
  }, 60_000);

  it('--once: a reported process\'s profile and advice (move toward its data on node 2; stay beside it on node 1)', async () => {
    const one = daemons[0]!;
    const node = new (loadNodeServiceConstructor())(one.address, await nodeCredentials(ca, 1));
    clients.push(node);
    // Counts as the mount reports them; the rates shown are at most 2.5% of them per second (slow
    // decay), less as the counters decay.
    await unary(node, 'ReportProcessIo', { exec: [], exit: [], io: [
      { process: '4242:777', node: 2, calls: 1000, read_kb: 100_000, write_kb: 0 },
      { process: '4343:888', node: 1, calls: 1000, read_kb: 100_000, write_kb: 0 },
    ] });
    const r = await runNode(MFSCTL_JS, [...monArgs(one), '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/processes: 2 tracked/);
    expect(r.stdout).toMatch(/^4242:777\s+slow\s+n2 2\d\.\d\/s r2\d{3}\.\d w0\.0\s+move to 2 \(saves /m);
    expect(r.stdout).toMatch(/^4343:888\s+slow\s+n1 2\d\.\d\/s r2\d{3}\.\d w0\.0\s+stay/m);
  }, 60_000);

  /** mfsctl mon in a pty; `keys` typed once two frames were drawn; resolves with its output and exit code. */
  function live(h: MfsdHandle, keys: string): Promise<{ code: number | null; out: string }> {
    const cmd = [process.execPath, MFSCTL_JS, ...monArgs(h), '--interval', '200'].map((w) => `'${w}'`).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!typed && out.split('omfs mon:').length > 2) {
        typed = true;
        child.stdin.write(keys);
      }
    });
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
  }

  it('live: redraws until q, then leaves the alternate screen and shows the cursor again', async () => {
    const r = await live(daemons[0]!, 'q');
    expect(r.code, r.out).toBe(0);
    expect(r.out.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true);
    expect(r.out.split('\x1b[H\x1b[2J').length).toBeGreaterThan(2);
    expect(r.out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
  }, 30_000);

  it('live: Ctrl-C quits the same way', async () => {
    const r = await live(daemons[1]!, '\x03');
    expect(r.code, r.out).toBe(0);
    expect(r.out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
  }, 30_000);

  it('a daemon that is not there: --once says so, exit 1', async () => {
    const r = await runNode(MFSCTL_JS, ['mon', '--once', '--config', daemons[0]!.configPath, '--listen', '127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/127\.0\.0\.1:1/);
    const bad = await runNode(MFSCTL_JS, ['mon', '--once', '--interval', '5', '--config', daemons[0]!.configPath]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/usage: mfsctl mon/);
  });
});
