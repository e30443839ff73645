// `mfsctl calibrate [NODE...]`: measures what remote file operations cost between this node and
// others (NodeService.Probe with payloads of several sizes both ways, and new connections) and
// writes the result as this node's mfscosts (dfsa/calibrate.ts has the arithmetic and says what
// each field means). openMosix announced this tool and never shipped it.
//
// mfscosts is one table per node, as in openMosix; calibrated against several nodes, the table
// written is the median of their tables, field by field (each node's is shown). Without NODE,
// every other node of the local daemon's map is measured. The local daemon (its config,
// --listen, --dir) tells the map and the addresses; the probes go straight to each node with this
// node's certificate, as the daemon's own calls do.
import type * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { calibrate, medianCosts, type CallSample, type Calibration, type ConnectionCost, type Samples } from '../dfsa/calibrate.js';
import { MFSCOSTS, costValues, type MfsCosts } from '../dfsa/costs.js';
import { TableError, parseTable } from '../dfsa/tables.js';
import { getTune, setTune } from '../dfsa/tuning.js';
import { loadNodeServiceConstructor, type ClusterReplyMsg, type ProbeReplyMsg } from '../proto/node.js';
import { UsageError, columns, dial, localDaemon, nodeNumber, unary, type Local } from './mfsctl-local.js';

export const CALIBRATE_USAGE = `usage: mfsctl calibrate [NODE...] [--reps N] [--sizes KB,KB,...] [--connection call|new] [--dry-run]
                       [--config PATH] [--listen HOST:PORT] [--dir DIR | --insecure] [--state-dir DIR]
Measures connection, per KB in and per KB out costs (server and client side, µs) between this node
and each NODE (default: every other node of the map) and writes them to this node's mfscosts
(root only; --dry-run only shows them). Several nodes: the median of their tables is written.
--connection call (default): the fixed cost of a call on an open connection, as a session pays it;
new: a new connection (TLS handshake) and its first call. Sizes at most 1024 KB; default ${'0,4,16,64,256,1024'}.`;

const DEFAULT_SIZES_KB = [0, 4, 16, 64, 256, 1024];
const MAX_KB = 1024;
const DEFAULT_REPS = 15;
const CONNECT_REPS = 5;
const WARMUP_CALLS = 10;
const PROBE_DEADLINE_MS = 10_000;

const NodeService = loadNodeServiceConstructor();

interface Target { node: number; address: string }

const cpuOf = (r: ProbeReplyMsg): number => Number(r.cpu_user_us) + Number(r.cpu_system_us);
const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

/** Progress on one line of a terminal (rewritten), or a line per phase elsewhere. */
function progress(out: NodeJS.WriteStream): { step(text: string): void; done(text: string): void } {
  const tty = out.isTTY === true;
  return {
    step: (text) => { if (tty) out.write(`\r\x1b[K${text}`); },
    done: (text) => out.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`),
  };
}

/** Times `reps` rounds of every size both ways on one connection, then `CONNECT_REPS` new connections. */
async function measure(t: Target, local: Local, sizes: number[], reps: number): Promise<Samples> {
  const p = progress(process.stdout);
  const client = await dial(t.address, local.tls, NodeService);
  const samples: Samples = { in: [], out: [], connect: [] };
  try {
    let prevCpu: number | undefined;
    /** One probe; its server side is the daemon's CPU since the previous reply on this connection. */
    const probe = async (c: grpc.Client, sendKB: number, askKB: number): Promise<CallSample & { cpu: number }> => {
      const payload = Buffer.alloc(sendKB * 1024, 0x5a);
      const start = nowUs();
      const r = await unary<ProbeReplyMsg>(c, 'Probe', { payload, reply_bytes: askKB * 1024 }, PROBE_DEADLINE_MS);
      const wallUs = nowUs() - start;
      if (r.payload.length !== askKB * 1024 || r.received_bytes !== sendKB * 1024) throw new Error(`node ${t.node} answered a probe with ${r.payload.length} bytes for ${askKB * 1024} (received ${r.received_bytes} of ${sendKB * 1024})`);
      const cpu = cpuOf(r);
      const serverUs = prevCpu === undefined ? NaN : cpu - prevCpu;
      prevCpu = cpu;
      return { kb: Math.max(sendKB, askKB), wallUs, serverUs, cpu };
    };
    try {
      for (let i = 0; i < WARMUP_CALLS; i++) await probe(client, i % 2 ? 64 : 0, i % 2 ? 0 : 64);
    } catch (err) {
      throw new Error(`node ${t.node} at ${t.address}: ${(err as Error).message}`);
    }
    const total = reps * sizes.length * 2;
    let n = 0;
    // The daemon's CPU reading is taken as it answers, before its reply is encoded and sent, so
    // the difference between two readings holds the previous call's reply and this call's
    // request. Each kept call therefore follows an identical one, whose own sample is dropped.
    const twice = async (sendKB: number, askKB: number): Promise<CallSample> => {
      await probe(client, sendKB, askKB);
      return probe(client, sendKB, askKB);
    };
    // Rounds of every size, not every repetition of one size in a row: a slow spell of the machine
    // then touches all sizes alike instead of bending the line.
    for (let round = 0; round < reps; round++) {
      for (const kb of sizes) {
        samples.in.push(await twice(0, kb));
        samples.out.push(await twice(kb, 0));
        n += 2;
      }
      p.step(`node ${t.node}: ${n}/${total} calls`);
    }
    p.done(`node ${t.node}: ${total} calls (${reps} rounds of ${sizes.join(', ')} KB, in and out)`);
    for (let i = 0; i < CONNECT_REPS; i++) {
      await probe(client, 0, 0);
      const before = prevCpu;
      const start = nowUs();
      // A connection of its own (no shared subchannel, no reachability check first): its
      // handshake is part of what is timed.
      const fresh = await dial(t.address, local.tls, NodeService, { 'grpc.use_local_subchannel_pool': 1 }, false);
      try {
        const r = await unary<ProbeReplyMsg>(fresh, 'Probe', { payload: Buffer.alloc(0), reply_bytes: 0 }, PROBE_DEADLINE_MS);
        const wallUs = nowUs() - start;
        const cpu = cpuOf(r);
        samples.connect.push({ kb: 0, wallUs, serverUs: before === undefined ? NaN : cpu - before });
        prevCpu = cpu;
      } finally {
        fresh.close();
      }
      p.step(`node ${t.node}: new connection ${i + 1}/${CONNECT_REPS}`);
    }
    p.done(`node ${t.node}: ${CONNECT_REPS} new connections`);
  } finally {
    client.close();
  }
  // The first call after a gap has no server reading of its own.
  const known = (s: CallSample) => Number.isFinite(s.serverUs);
  return { in: samples.in.filter(known), out: samples.out.filter(known), connect: samples.connect.filter(known) };
}

const NAMES = MFSCOSTS.fields.map((f) => f.name);
const tableRows = (rows: Array<[string, readonly number[]]>): string => columns([['', ...NAMES], ...rows.map(([label, v]) => [label, ...v.map(String)])]);
const us = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function detail(c: Calibration): string {
  return [
    `  empty call on an open connection: server ${us(c.call.server)} µs, client ${us(c.call.client)} µs`,
    `  new connection and its first call: server ${us(c.connect.server)} µs, client ${us(c.connect.client)} µs`,
    `  per KB in (reply):  server ${c.in.server.slope.toFixed(2)} µs, client ${c.in.client.slope.toFixed(2)} µs`,
    `  per KB out (payload): server ${c.out.server.slope.toFixed(2)} µs, client ${c.out.client.slope.toFixed(2)} µs`,
  ].join('\n') + '\n';
}

function parseSizes(text: string): number[] {
  const sizes = text.split(',').map((w) => w.trim());
  const out = sizes.map((w) => {
    const n = /^\d+$/.test(w) ? Number(w) : NaN;
    if (!(n >= 0 && n <= MAX_KB)) throw new UsageError(`--sizes: "${w}" is not a size in KB from 0 to ${MAX_KB}`);
    return n;
  });
  if (new Set(out).size < 2) throw new UsageError('--sizes: at least two different sizes (a line needs two points)');
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Which nodes, at which addresses: the named ones, or every other node of the map. */
async function targets(local: Local, named: number[]): Promise<{ self: number; list: Target[] }> {
  const client = await dial(local.address, local.tls, NodeService);
  try {
    const cluster = await unary<ClusterReplyMsg>(client, 'Cluster', { node: 0 }, 15_000).catch((err: Error) => {
      throw new Error(`local mfsd at ${local.address}: ${err.message}`);
    });
    const wanted = named.length > 0 ? named : cluster.nodes.map((n) => n.node).filter((n) => n !== cluster.self);
    if (wanted.length === 0) throw new UsageError(`node ${cluster.self} is alone in its map: name the nodes to calibrate against (its own number measures its loopback)`);
    const list = wanted.map((node) => {
      if (node === cluster.self) return { node, address: local.address };
      const status = cluster.nodes.find((n) => n.node === node);
      if (!status || status.addresses.length === 0) throw new Error(`node ${node} is not in node ${cluster.self}'s map${cluster.map ? ` (${cluster.map})` : ''}`);
      return { node, address: status.addresses[0]! };
    });
    return { self: cluster.self, list };
  } finally {
    client.close();
  }
}

async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' }, listen: { type: 'string' }, dir: { type: 'string' }, insecure: { type: 'boolean' },
      'state-dir': { type: 'string' }, reps: { type: 'string' }, sizes: { type: 'string' }, connection: { type: 'string' },
      'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(`${CALIBRATE_USAGE}\n`);
    return 0;
  }
  const words = positionals.filter((w, i) => !(i === 0 && w === 'calibrate'));
  const named = [...new Set(words.map((w) => nodeNumber(w, 'calibrate')))];
  const reps = v.reps === undefined ? DEFAULT_REPS : /^\d+$/.test(v.reps) ? Number(v.reps) : NaN;
  if (!(reps >= 3 && reps <= 1000)) throw new UsageError(`--reps: "${v.reps}" is not a count from 3 to 1000`);
  const sizes = v.sizes === undefined ? DEFAULT_SIZES_KB : parseSizes(v.sizes);
  const connection: ConnectionCost = v.connection === undefined || v.connection === 'call' ? 'call'
    : v.connection === 'new' ? 'new-connection' : (() => { throw new UsageError(`--connection: "${v.connection}" is neither call nor new`); })();
  const dryRun = v['dry-run'] ?? false;
  // Like setcosts: only root changes the table. Said before minutes of measuring, not after.
  if (!dryRun && process.getuid?.() !== 0) throw new Error('calibrate: EPERM: only root may change the mfscosts table (--dry-run measures without writing)');
  const local = await localDaemon(v);
  const before = parseTable(MFSCOSTS, await getTune(local.stateDir, 'costs'));
  const { self, list } = await targets(local, named);
  process.stdout.write(`calibrating node ${self} against node${list.length > 1 ? 's' : ''} ${list.map((t) => `${t.node} (${t.address})`).join(', ')}\n`);
  const tables: Array<[number, MfsCosts]> = [];
  for (const t of list) {
    const c = calibrate(await measure(t, local, sizes, reps), connection);
    process.stdout.write(detail(c));
    tables.push([t.node, c.costs]);
  }
  const after = tables.length === 1 ? tables[0]![1] : medianCosts(tables.map(([, c]) => c));
  const rows: Array<[string, readonly number[]]> = [['before', before]];
  if (tables.length > 1) for (const [node, c] of tables) rows.push([`node ${node}`, costValues(c)]);
  rows.push([tables.length > 1 ? 'after (median)' : 'after', costValues(after)]);
  process.stdout.write(`\nmfscosts of node ${self} (µs; ${connection === 'call' ? 'CONN = a call on an open connection' : 'CONN = a new connection and its first call'}):\n${tableRows(rows)}`);
  if (tables.length > 1) process.stdout.write(`one table per node, as in openMosix: node ${self} keeps the median of the ${tables.length} nodes' tables, field by field\n`);
  if (dryRun) {
    process.stdout.write(`--dry-run: ${local.stateDir}/mfscosts not changed\n`);
    return 0;
  }
  try {
    await setTune(local.stateDir, 'costs', costValues(after).map(String));
  } catch (err) {
    if (err instanceof TableError) throw new Error(`calibrate: the measured table was refused: ${err.message}`);
    throw err;
  }
  process.stdout.write(`written to ${local.stateDir}/mfscosts (the daemon uses it from its next advice on)\n`);
  return 0;
}

/** mfsctl's entry for `calibrate`: the exit code (2 bad usage, 1 failure), messages written. */
export async function calibrateCommand(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`mfsctl: ${(err as Error).message}\n${usage ? `${CALIBRATE_USAGE}\n` : ''}`);
    return usage ? 2 : 1;
  }
}
