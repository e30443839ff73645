// Per-process I/O statistics from the /mfs mount to the advisor (issue 11): the accounting's
// batching, exec and exit on synthetic events, then end to end with real daemons, a real mount and
// a real process reading through /mfs/<other node>: hosted by mfsd (in process) and standalone
// (mfs-mount reporting over NodeService ReportProcessIo with its node certificate).
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProcessIo, checkProcessIo, type ProcessIoBatch } from '../../dfsa/process-stats.js';
import { IoStatistics } from '../../dfsa/io-profile.js';
import { IoAccounting, accountLink, type OpSink } from '../../fuse/mfs/io-accounting.js';
import { loadAdvisorConstructor, type AdviceMsg, type AdviseReplyMsg } from '../../proto/advisor.js';
import { statusToErrno } from '../../proto/errno.js';
import type { NodeLink } from '../../proto/node-link.js';
import { loadNodeServiceConstructor, type ProcessesReplyMsg } from '../../proto/node.js';
import { readStat } from '../../sys/process.js';
import { startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';
import { startMfsMount, type MfsMount } from '../harness/mfs-mount.js';
import { makeTestCa, startMfsd, unary, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { makeTempDir } from '../harness/passthrough-mount.js';
import { code, waitFor } from '../harness/outcome.js';
import { rm } from 'node:fs/promises';

const FILE_KB = 512;

describe('IoAccounting (synthetic threads and events)', () => {
  const setup = () => {
    const batches: ProcessIoBatch[] = [];
    const events = new EventEmitter();
    const threads = new Map<number, { tgid: number; key: string }>([
      [100, { tgid: 100, key: '100:5' }], [101, { tgid: 100, key: '100:5' }], [200, { tgid: 200, key: '200:9' }],
    ]);
    let lookups = 0;
    const acc = new IoAccounting({
      sink: { report: (b) => void batches.push(b) },
      events: events as unknown as ConstructorParameters<typeof IoAccounting>[0]['events'],
      lookup: { processOf: (tid) => (lookups++, threads.get(tid)) },
      flushMs: 3_600_000,
    });
    return { acc, batches, events, threads, lookups: () => lookups };
  };

  it('sums per process and node, threads into their process; the kernel\'s own requests (tid 0) and vanished threads are not counted', async () => {
    const { acc, batches } = setup();
    acc.op(100, 2, 4096, 0);
    acc.op(101, 2, 1024, 0);
    acc.op(100, 3, 0, 2048);
    acc.op(200, 2, 0, 0);
    acc.op(0, 2, 9999, 0);
    acc.op(999, 2, 9999, 0);
    await acc.flush();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.exec).toEqual([]);
    expect(batches[0]!.exit).toEqual([]);
    expect(batches[0]!.io).toEqual(expect.arrayContaining([
      { process: '100:5', node: 2, calls: 2, readKB: 5, writeKB: 0 },
      { process: '100:5', node: 3, calls: 1, readKB: 0, writeKB: 2 },
      { process: '200:9', node: 2, calls: 1, readKB: 0, writeKB: 0 },
    ]));
    expect(batches[0]!.io).toHaveLength(3);
    await acc.flush();
    expect(batches).toHaveLength(1); // nothing new: nothing sent
    await acc.close();
  });

  it('an exec drops what the old program did and says exec before the new program\'s I/O; an exit of the main thread says exit, a thread\'s does not', async () => {
    const { acc, batches, events } = setup();
    acc.op(100, 2, 4096, 0);
    events.emit('exec', { pid: 100, tgid: 100 });
    acc.op(100, 3, 1024, 0);
    acc.op(200, 2, 1024, 0);
    events.emit('exit', { pid: 201, tgid: 200, exitCode: 0, exitSignal: 17 });
    await acc.flush();
    expect(batches[0]).toEqual({ exec: ['100:5'], io: expect.arrayContaining([{ process: '100:5', node: 3, calls: 1, readKB: 1, writeKB: 0 }]), exit: [] });
    expect(batches[0]!.io).toHaveLength(2);
    acc.op(200, 2, 1024, 0);
    events.emit('exit', { pid: 200, tgid: 200, exitCode: 0, exitSignal: 17 });
    // An event of a process that never did I/O through the mount is nobody's business.
    events.emit('exec', { pid: 300, tgid: 300 });
    await acc.flush();
    expect(batches[1]).toEqual({ exec: [], io: [], exit: ['200:9'] });
    await acc.close();
  });

  it('a thread\'s process is looked up once, not per operation (the hot path)', async () => {
    const batches: ProcessIoBatch[] = [];
    const reads: number[] = [];
    const acc = new IoAccounting({ sink: { report: (b) => void batches.push(b) }, flushMs: 3_600_000 });
    // The real lookup through /proc, on this very thread.
    const started = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) acc.op(process.pid, 2, 4096, 0);
    reads.push(Number(process.hrtime.bigint() - started) / 100_000);
    await acc.close();
    const me = readStat(process.pid)!;
    expect(batches[0]!.io).toEqual([{ process: `${process.pid}:${me.startTime}`, node: 2, calls: 100_000, readKB: 400_000, writeKB: 0 }]);
    // Generous: a /proc read per operation would be tens of microseconds each.
    expect(reads[0]).toBeLessThan(5_000);
  });

  it('without proc events, a sweep finds processes that exited', async () => {
    const batches: ProcessIoBatch[] = [];
    let alive = true;
    const acc = new IoAccounting({
      sink: { report: (b) => void batches.push(b) }, flushMs: 3_600_000, sweepMs: 20,
      lookup: { processOf: () => ({ tgid: 42, key: '42:7' }) }, alive: () => alive,
    });
    acc.op(42, 2, 1024, 0);
    await new Promise((r) => setTimeout(r, 60));
    await acc.flush();
    expect(batches.at(-1)?.exit ?? []).toEqual([]);
    alive = false;
    await waitFor('the sweep', async () => (await acc.flush(), batches.some((b) => b.exit.includes('42:7'))), 5_000, 20);
    await acc.close();
  });

  it('the link decorator counts a read\'s bytes when it answers and a write\'s when sent, on the node it wraps', async () => {
    const seen: Array<[number, number, number, number]> = [];
    const sink: OpSink = { op: (...a) => void seen.push(a) };
    const fake = {
      read: async () => Buffer.alloc(300),
      write: async (_c: unknown, _h: unknown, _f: unknown, _o: unknown, d: Buffer) => d.length,
      getAttr: async () => ({}),
    } as unknown as NodeLink;
    const link = accountLink(fake, 7, sink);
    const caller = { uid: 0, gid: 0, groups: [], pid: 55 };
    expect((await link.read(caller, Buffer.alloc(0), 1, 0, 4096)).length).toBe(300);
    await link.write(caller, Buffer.alloc(0), 1, 0, Buffer.alloc(1000));
    await link.getAttr(caller, Buffer.alloc(0));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(expect.arrayContaining([[55, 7, 300, 0], [55, 7, 0, 1000], [55, 7, 0, 0]]));
    expect(seen).toHaveLength(3);
  });

  it('batches are checked before they touch the statistics, then applied exec, io, exit', () => {
    const stats = new IoStatistics();
    stats.recordIo('1:1', 2, { calls: 5, readKB: 5 });
    applyProcessIo(stats, { exec: ['1:1'], io: [{ process: '1:1', node: 3, calls: 1, readKB: 2, writeKB: 0 }, { process: '2:2', node: 2, calls: 1, readKB: 1, writeKB: 1 }], exit: ['2:2'] });
    expect([...stats.profile('1:1')!.keys()]).toEqual([3]);
    expect(stats.profile('2:2')).toBeUndefined();
    const bad = (b: Partial<ProcessIoBatch>) => () => checkProcessIo({ exec: [], io: [], exit: [], ...b });
    expect(bad({ exec: ['x'] })).toThrow(/PID:STARTTIME/);
    expect(bad({ io: [{ process: '1:1', node: 0, calls: 1, readKB: 0, writeKB: 0 }] })).toThrow(/node 0/);
    expect(bad({ io: [{ process: '1:1', node: 2, calls: -1, readKB: 0, writeKB: 0 }] })).toThrow(/non-negative/);
    expect(bad({ io: [{ process: '1:1', node: 2, calls: 1, readKB: NaN, writeKB: 0 }] })).toThrow(/finite/);
  });
});

// ---- end to end ----

type Client = InstanceType<grpc.ServiceClientConstructor>;

function advise(client: Client, process: string): Promise<AdviceMsg> {
  return new Promise((resolve, reject) => {
    const m = client['Advise'] as (r: object, cb: (e: grpc.ServiceError | null, r: AdviseReplyMsg) => void) => void;
    m.call(client, { process }, (e, r) => (e ? reject(statusToErrno(e)) : resolve(r.advice)));
  });
}

/** The process key of pid (pid:starttime), as the mount and the advisor name it. */
function keyOf(pid: number): string {
  const st = readStat(pid);
  if (!st) throw new Error(`process ${pid} is gone`);
  return `${pid}:${st.startTime}`;
}

/**
 * A shell that reads FILE through the mount itself (the `read` builtin: no child process), a few
 * times, says "read", then waits for a line on stdin and execs `sleep` (same pid, new program).
 */
function reader(file: string): { proc: ChildProcess; done: Promise<void> } {
  const script = `for i in 1 2 3; do while read -r l; do :; done < "$1"; done; echo read; read -r go; exec sleep 600`;
  const proc = spawn('bash', ['-c', script, 'reader', file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const done = new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('read\n')) resolve();
    });
    proc.once('exit', (c) => reject(new Error(`reader exited ${c} before reading`)));
  });
  return { proc, done };
}

const lines = (kb: number): string => Array.from({ length: kb * 16 }, (_, i) => `line ${String(i).padStart(57, '0')}\n`).join('');

/**
 * The scenario on the node of `adviser` (its daemon; the mount at `mnt`), with node 2's file: the
 * reader's profile shows node 2 with KB read; Advise answers for it with node 2 ranked; after its
 * exec the profile is empty; after its exit, ESRCH.
 */
async function scenario(mnt: string, adviser: MfsdHandle): Promise<void> {
  const self = adviser.nodeId;
  const creds = await adviser.clientCredentials();
  const Advisor = loadAdvisorConstructor();
  const advisor = new Advisor(adviser.address, creds);
  const Node = loadNodeServiceConstructor();
  const node = new Node(adviser.address, creds) as unknown as grpc.Client;
  const r = reader(join(mnt, '2', 'data.txt'));
  try {
    await r.done;
    const key = keyOf(r.proc.pid!);
    const profileOf = async () => (await unary<ProcessesReplyMsg>(node, 'Processes', {})).processes.find((p) => p.process === key);
    await waitFor(`node ${self} tracks ${key} with KB read from node 2`, async () => ((await profileOf())?.io.find((io) => io.node === 2)?.read_kb ?? 0) > 0, 20_000, 200);
    const advice = await advise(advisor, key);
    expect(advice).toMatchObject({ process: key, here: self });
    // Running here its reads of node 2 cost remote I/O; on node 2 they would be local.
    const costOn = (n: number) => advice.ranked.find((c) => c.node === n);
    expect(costOn(self)?.io_us).toBeGreaterThan(0);
    expect(costOn(2)?.io_us ?? 0).toBe(0);
    expect(advice.reason).not.toBe('');

    r.proc.stdin!.write('go\n'); // exec sleep: same pid, a new program
    await waitFor(`${key}'s statistics cleared by its exec`, async () => ((await profileOf())?.io.length ?? 0) === 0, 20_000, 200);
    expect(readStat(r.proc.pid!)?.comm).toBe('sleep');
    expect((await advise(advisor, key)).ranked.every((c) => c.io_us === 0)).toBe(true);

    r.proc.kill('SIGKILL');
    await waitFor(`${key} forgotten after its exit`, async () => (await code(advise(advisor, key))) === 'ESRCH', 20_000, 200);
  } finally {
    if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
    advisor.close();
    node.close();
  }
}

describe('per-process statistics through a real /mfs mount', () => {
  let ca: TestCa;
  let caRoot: string;
  let node2: MfsdHandle;

  beforeAll(async () => {
    caRoot = await makeTempDir('omfs-process-stats-');
    ca = await makeTestCa(caRoot);
    node2 = await startMfsd({ ca, nodeId: 2 });
    writeFileSync(join(node2.exports[0]!.path, 'data.txt'), lines(FILE_KB));
  }, 60_000);
  afterAll(async () => {
    await node2?.cleanup();
    await rm(caRoot, { recursive: true, force: true });
  });

  it('the mount mfsd hosts feeds its own advisor: a process reading /mfs/2 is profiled and advised, cleared by exec, gone after exit', async () => {
    let host: HostingMfsd | undefined;
    try {
      host = await startHostingMfsd({ ca, nodeId: 1, others: [node2] });
      await scenario(host.mnt, host.daemon);
    } finally {
      await host?.cleanup();
    }
  }, 90_000);

  it('a standalone mfs-mount reports to its node\'s mfsd with its node certificate; another certificate is refused (EACCES)', async () => {
    // Node 3 (node 1's certificate name is the hosting daemon's, above).
    let node3: MfsdHandle | undefined;
    let mount: MfsMount | undefined;
    try {
      node3 = await startMfsd({ ca, nodeId: 3 });
      mount = await startMfsMount({ ca, node: 3, daemons: [node3, node2] });
      await scenario(mount.mnt, node3);
      // Node 2's own certificate (a cluster member, but not node 3) may not report to node 3.
      const Node = loadNodeServiceConstructor();
      const other = new Node(node3.address, await ca.credentials(await ca.issue('node2'))) as unknown as grpc.Client;
      try {
        const report = { exec: [], io: [{ process: '1:1', node: 2, calls: 1, read_kb: 1, write_kb: 0 }], exit: [] };
        expect(await code(unary(other, 'ReportProcessIo', report).catch((e: grpc.ServiceError) => Promise.reject(statusToErrno(e))))).toBe('EACCES');
      } finally {
        other.close();
      }
    } finally {
      await mount?.unmount();
      await node3?.cleanup();
    }
  }, 90_000);
});
