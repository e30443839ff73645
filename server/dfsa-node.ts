// DFSA in the daemon: this node's load measured and disseminated to random peers of the map
// (dfsa/dissemination.ts over NodeService.Gossip), the load view mfsctl asks for, and the Advisor
// service (dfsa/advisor-service.ts) with the cost tables of the state directory and the loads
// dissemination gathered.
//
// What a load report holds here:
// - load: the 1-minute load average over the CPUs (os.loadavg()[0] / os.availableParallelism()),
//   the run-queue length per CPU as openMosix weighed it;
// - speed: config dfsa.speed / 1000, the admin's figure (1 = a standard CPU);
// - free memory: os.freemem() (MemAvailable);
// - I/O: this daemon's storage reads and writes (/proc/self/io read_bytes, write_bytes) per second
//   over the last interval: what serving the node's exports costs its disks (page-cache hits are
//   free and not counted; 0 where the kernel keeps no task I/O accounting).
// Tables: mfscosts, overheads and decay are read from the state directory on use and re-read when
// `mfsctl setcosts|settune|setdecay` replaces them (dfsa/state-dir.ts TableFile): no SIGHUP needed.
// `stats` is fed by the /mfs mount (fuse/mfs/io-accounting.ts): in process by the mount this mfsd
// hosts (RunningDaemon.reportProcessIo), over NodeService ReportProcessIo by a standalone mfs-mount
// (server/process-io.ts). Advise for a process never seen, or exited, answers ESRCH.
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { availableParallelism, freemem, loadavg } from 'node:os';
import { createAdvisorService } from '../dfsa/advisor-service.js';
import type { NodeLoad } from '../dfsa/advisor.js';
import { MFSCOSTS, OVERHEADS, costsOf, migrationOf } from '../dfsa/costs.js';
import { DECAY, decayOf } from '../dfsa/decay.js';
import { LoadDisseminator, type GossipMessage, type LoadReport, type LoadSample, type WireReport } from '../dfsa/dissemination.js';
import { IoStatistics } from '../dfsa/io-profile.js';
import { ratesOf } from '../dfsa/advisor.js';
import { TableFile } from '../dfsa/state-dir.js';
import { Errno } from '../proto/errno.js';
import { loadAdvisorConstructor } from '../proto/advisor.js';
import type { AdviceMsg, AdviseReplyMsg } from '../proto/advisor.js';
import { omfs } from './metrics.js';
import type { LoadMessageMsg, LoadReplyMsg, LoadReportMsg, ProcessProfileMsg, ProcessesReplyMsg } from '../proto/node.js';
import type { DfsaSettings } from './config.js';
import { callNode, type ClusterView } from './load-cluster.js';
import { ProcessCpu } from './process-cpu.js';

/** Reports older than this many intervals are not weighed by the advisor (the node may be gone). */
const STALE_INTERVALS = 10;
/** At most this many process profiles in one Processes reply (the busiest). */
const MAX_PROFILES = 4096;
/** At most this many reports in one Gossip message: more is no peer of ours. */
const MAX_REPORTS = 4096;

export interface DfsaNodeOptions {
  self: number;
  settings: DfsaSettings;
  stateDir: string;
  cluster: ClusterView;
  log: (line: string) => void;
}

function storageBytes(): { read: number; write: number } | undefined {
  try {
    const text = readFileSync('/proc/self/io', 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const read = field('read_bytes');
    const write = field('write_bytes');
    return Number.isFinite(read) && Number.isFinite(write) ? { read, write } : undefined;
  } catch {
    return undefined;
  }
}

/** Measures this node; I/O rates are over the time since the previous measurement. */
export function loadMeter(speedPerMille: number, now: () => number = Date.now): () => LoadSample {
  let last = { at: now(), io: storageBytes() };
  return () => {
    const at = now();
    const io = storageBytes();
    const seconds = Math.max(0.001, (at - last.at) / 1000);
    const rate = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? 0 : Math.max(0, b - a) / 1024 / seconds);
    const sample: LoadSample = {
      load: loadavg()[0]! / availableParallelism(),
      cpus: availableParallelism(),
      speed: speedPerMille / 1000,
      freeMemKB: Math.floor(freemem() / 1024),
      readKBps: rate(last.io?.read, io?.read),
      writeKBps: rate(last.io?.write, io?.write),
    };
    last = { at, io };
    return sample;
  };
}

export function toWireMsg(r: WireReport): LoadReportMsg {
  return {
    node: r.node, load: r.load, cpus: r.cpus, speed: r.speed, free_mem_kb: Math.round(r.freeMemKB),
    read_kbps: r.readKBps, write_kbps: r.writeKBps, age_ms: Math.round(r.ageMs),
  };
}

function fromWireMsg(m: LoadReportMsg): WireReport {
  const r: WireReport = {
    node: m.node, load: m.load, cpus: m.cpus, speed: m.speed, freeMemKB: Number(m.free_mem_kb),
    readKBps: m.read_kbps, writeKBps: m.write_kbps, ageMs: Number(m.age_ms),
  };
  const numbers = [r.load, r.cpus, r.speed, r.freeMemKB, r.readKBps, r.writeKBps, r.ageMs];
  if (!(r.node >= 1 && r.node <= 65535) || !numbers.every((n) => Number.isFinite(n) && n >= 0)) {
    throw new Errno('EINVAL', `a load report holds a node 1..65535 and finite, non-negative numbers (node ${m.node})`);
  }
  return r;
}

export class DfsaNode {
  readonly disseminator: LoadDisseminator;
  readonly stats: IoStatistics;
  private readonly processCpu = new ProcessCpu();
  readonly advisor: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation };
  private readonly measure: () => LoadSample;
  private readonly tables: { costs: TableFile; overheads: TableFile; decay: TableFile };

  constructor(private readonly o: DfsaNodeOptions) {
    this.measure = loadMeter(o.settings.speed);
    const { intervalMs, fanout, window, forward } = o.settings;
    this.disseminator = new LoadDisseminator({
      self: o.self,
      settings: { intervalMs, fanout, window, forward },
      peers: () => o.cluster.peers(),
      measure: this.measure,
      send: (to, message) => this.send(to, message),
    });
    const warn = (m: string) => o.log(`dfsa: ${m}`);
    this.tables = { costs: new TableFile(o.stateDir, MFSCOSTS, warn), overheads: new TableFile(o.stateDir, OVERHEADS, warn), decay: new TableFile(o.stateDir, DECAY, warn) };
    this.stats = new IoStatistics({ settings: this.decay() });
    const { implementation } = createAdvisorService({
      self: o.self,
      stats: this.stats,
      tables: () => {
        const decay = this.decay();
        const d = this.stats.decay;
        if (decay.interval !== d.interval || decay.slow !== d.slow || decay.fast !== d.fast) this.stats.setDecay(decay);
        return { costs: costsOf(this.tables.costs.values()), migration: migrationOf(this.tables.overheads.values()) };
      },
      loads: () => this.candidateLoads(),
      ensureLoads: (nodes) => this.ensureLoads(nodes),
      // The process's own CPU and memory, from /proc: tracked processes run on this node.
      processInfo: (key) => this.processCpu.sample(key),
    });
    this.advisor = { definition: loadAdvisorConstructor().service, implementation: countingDecisions(implementation) };
  }

  start(): void {
    this.disseminator.start();
  }

  stop(): void {
    this.disseminator.stop();
  }

  /** A peer's Gossip. Throws EINVAL for a malformed message (nothing of it is taken). */
  receive(m: LoadMessageMsg): void {
    if (m.reports.length > MAX_REPORTS) throw new Errno('EINVAL', `more than ${MAX_REPORTS} reports in one message`);
    const reports = m.reports.map(fromWireMsg);
    this.disseminator.receive({ from: m.from, reports });
  }

  /** This node's own report: the last one sent, or measured now before the first interval. */
  own(): LoadReport {
    return this.disseminator.get(this.o.self) ?? { node: this.o.self, at: Date.now(), ...this.measure() };
  }

  /** This node's view: its own report first, then the window, newest first. */
  view(): LoadReplyMsg {
    const now = Date.now();
    const reports = [this.own(), ...this.disseminator.view()].map((r) => toWireMsg(wireOf(r, now)));
    return { self: this.o.self, reports, asked_directly: false };
  }

  /**
   * Node N's load: from this node's own knowledge, else (unless `localOnly`) by asking N
   * directly, which also puts N's answer into the window. ENOENT when N is unknown.
   */
  async load(node: number, localOnly: boolean): Promise<LoadReplyMsg> {
    const now = Date.now();
    const held = node === this.o.self ? this.own() : this.disseminator.get(node);
    if (held) return { self: this.o.self, reports: [toWireMsg(wireOf(held, now))], asked_directly: false };
    if (localOnly || !this.o.cluster.has(node)) {
      throw new Errno('ENOENT', `node ${node} is ${this.o.cluster.has(node) ? 'not in this node\'s window' : 'not in the map'}`);
    }
    const r = await this.askDirectly(node);
    return { self: this.o.self, reports: [toWireMsg(r)], asked_directly: true };
  }

  /** The tracked processes' profiles as rates per second, the busiest (KB, then calls) first (mfsctl mon). */
  processes(): ProcessesReplyMsg {
    const keys = this.stats.keys();
    const all: Array<ProcessProfileMsg & { weight: number }> = [];
    for (const key of keys) {
      const profile = this.stats.profile(key);
      if (!profile) continue;
      const decay = this.stats.modeOf(key) ?? 'slow';
      const io = [...ratesOf(profile, this.stats.decay, decay)].map(([node, r]) => ({ node, calls: r.calls, read_kb: r.readKB, write_kb: r.writeKB }));
      io.sort((a, b) => a.node - b.node);
      const weight = io.reduce((w, r) => w + r.read_kb + r.write_kb + r.calls / 1000, 0);
      all.push({ process: key, decay, io, weight });
    }
    all.sort((a, b) => b.weight - a.weight);
    return { self: this.o.self, processes: all.slice(0, MAX_PROFILES).map(({ weight: _w, ...p }) => p), tracked: keys.length };
  }

  private decay() {
    return decayOf(this.tables.decay.values());
  }

  private async askDirectly(node: number): Promise<WireReport> {
    const client = this.o.cluster.client(node);
    if (!client) throw new Errno('ENOENT', `node ${node} is not in the map`);
    let reply: LoadReplyMsg;
    try {
      reply = await callNode<LoadReplyMsg>(client, 'Load', { node, local_only: true }, Math.max(2000, this.o.settings.intervalMs));
    } catch (err) {
      throw new Errno('EHOSTDOWN', `node ${node} did not answer: ${(err as grpc.ServiceError).details ?? String(err)}`);
    }
    const first = reply.reports.find((r) => r.node === node);
    if (!first) throw new Errno('EHOSTDOWN', `node ${node} did not report its load`);
    const r = fromWireMsg(first);
    this.disseminator.receive({ from: node, reports: [r] });
    return r;
  }

  private async ensureLoads(nodes: number[]): Promise<void> {
    const missing = nodes.filter((n) => n !== this.o.self && this.o.cluster.has(n) && !this.fresh(this.disseminator.get(n), Date.now()));
    // A node that does not answer is simply no candidate.
    await Promise.all(missing.map((n) => this.askDirectly(n).catch(() => undefined)));
  }

  private fresh(r: LoadReport | undefined, now: number): boolean {
    return r !== undefined && now - r.at <= STALE_INTERVALS * this.o.settings.intervalMs;
  }

  /**
   * This node and every node of the map whose report is fresh enough to weigh. Reports of nodes
   * outside this node's map (a peer with another map) are shown by getload but never advised:
   * this node could not reach them.
   */
  private candidateLoads(): Map<number, NodeLoad> {
    const now = Date.now();
    const out = new Map<number, NodeLoad>();
    for (const r of [this.own(), ...this.disseminator.view()]) {
      if (r.node === this.o.self || (this.fresh(r, now) && this.o.cluster.has(r.node))) out.set(r.node, { load: r.load, cpus: r.cpus, speed: r.speed });
    }
    return out;
  }

  private send(to: number, message: GossipMessage): void {
    const client = this.o.cluster.client(to);
    if (!client) return;
    const wire: LoadMessageMsg = { from: message.from, reports: message.reports.map(toWireMsg) };
    // Fire and forget: a peer that is down misses this interval's report, nothing more; the
    // others' reports still reach us.
    callNode(client, 'Gossip', wire, this.o.settings.intervalMs).catch(() => undefined);
  }
}

/** The Advisor's handlers, each advice given counted in omfs_advisor_decisions_total (server/metrics.ts). */
function countingDecisions(impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const count = (a: AdviceMsg | undefined, via: string): void => {
    if (a) omfs.advisorDecisions.inc({ decision: a.move ? 'move' : 'stay', via });
  };
  const advise = impl['Advise'] as grpc.handleUnaryCall<unknown, AdviseReplyMsg>;
  const watch = impl['Watch'] as grpc.handleServerStreamingCall<unknown, AdviceMsg>;
  return {
    ...impl,
    Advise: (call: grpc.ServerUnaryCall<unknown, AdviseReplyMsg>, cb: grpc.sendUnaryData<AdviseReplyMsg>) => advise(call, (err, reply, ...rest) => {
      if (!err) count(reply?.advice, 'advise');
      cb(err, reply, ...rest);
    }),
    Watch: (call: grpc.ServerWritableStream<unknown, AdviceMsg>) => {
      const write = call.write.bind(call) as (a: AdviceMsg, ...rest: unknown[]) => boolean;
      // Each advice streamed is a decision that changed.
      call.write = ((a: AdviceMsg, ...rest: unknown[]) => {
        count(a, 'watch');
        return write(a, ...rest);
      }) as typeof call.write;
      watch(call);
    },
  };
}

function wireOf(r: LoadReport, now: number): WireReport {
  const { at, ...rest } = r;
  return { ...rest, ageMs: Math.max(0, now - at) };
}
