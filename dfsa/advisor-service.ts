// The Advisor gRPC service (proto/advisor.proto) on top of the model (advisor.ts), the I/O
// statistics (io-profile.ts) and whatever tells it loads, tables and a process's CPU use. Not
// wired into mfsd here: the daemon passes its own sources in `AdvisorSources`.
import type { ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from '@grpc/grpc-js';
import { Errno, errnoToStatus } from '../proto/errno.js';
import type { AdviceMsg, AdviseReplyMsg, AdviseRequestMsg, IoProfileMsg, WatchRequestMsg } from '../proto/advisor.js';
import { Advisor, DEFAULT_POLICY, ratesOf, type Advice, type AdvicePolicy, type NodeLoad } from './advisor.js';
import type { MfsCosts, MigrationOverheads } from './costs.js';
import type { IoCounters, IoStatistics, ProcessKey } from './io-profile.js';

export interface AdvisorSources {
  /** This node's id: where tracked processes run, and `here` of a profile that names none. */
  self: number;
  stats: IoStatistics;
  /** The current tables (they change with setcosts/settune). */
  tables: () => { costs: MfsCosts; migration: MigrationOverheads };
  /** Candidate nodes and their loads (this node's own, and dissemination's window). */
  loads: () => ReadonlyMap<number, NodeLoad>;
  /**
   * Called by Advise before weighing: make loads() include these nodes (the ones the process does
   * I/O with) if it can, e.g. by asking a node outside dissemination's window directly. A node
   * whose load stays unknown is no candidate.
   */
  ensureLoads?: (nodes: number[]) => Promise<void>;
  /** A tracked process's CPU use and dirty pages; undefined = unknown (taken as 0 and 0). */
  processInfo?: (key: ProcessKey) => { cpu: number; dirtyPages: number } | undefined;
  policy?: AdvicePolicy;
  advisor?: Advisor;
}

const MIN_WATCH_MS = 100;

/** The handlers to add with `server.addService(loadAdvisorConstructor().service, implementation)`, and the advisor (call `advisor.moved(key)` when a process is moved). */
export function createAdvisorService(src: AdvisorSources): { implementation: UntypedServiceImplementation; advisor: Advisor } {
  const advisor = src.advisor ?? new Advisor();
  const policy = src.policy ?? DEFAULT_POLICY;

  const forProcess = (key: ProcessKey): AdviceMsg | undefined => {
    const profile = src.stats.profile(key);
    if (!profile) return undefined;
    const info = src.processInfo?.(key);
    const rates = ratesOf(profile, src.stats.decay, src.stats.modeOf(key) ?? 'slow');
    const a = advisor.advise(key, { here: src.self, rates, cpu: info?.cpu ?? 0, dirtyPages: info?.dirtyPages ?? 0, loads: src.loads(), policy, ...src.tables() });
    return toMessage(a, key, src.self);
  };

  const forProfile = (p: IoProfileMsg): AdviceMsg => {
    const rates = new Map<number, IoCounters>();
    for (const io of p.io) {
      const c = rates.get(io.node) ?? { calls: 0, readKB: 0, writeKB: 0 };
      rates.set(io.node, { calls: c.calls + io.calls, readKB: c.readKB + io.read_kb, writeKB: c.writeKB + io.write_kb });
    }
    const here = p.here || src.self;
    const dirtyPages = Number(p.dirty_pages);
    if (![p.cpu, dirtyPages, ...p.io.flatMap((io) => [io.calls, io.read_kb, io.write_kb])].every((v) => Number.isFinite(v) && v >= 0)) {
      throw new Errno('EINVAL', 'a profile holds only finite, non-negative numbers');
    }
    // An explicit profile has no history: no minimum time between moves applies to it.
    const a = new Advisor().advise('', { here, rates, cpu: p.cpu, dirtyPages, loads: src.loads(), policy, ...src.tables() });
    return toMessage(a, '', here);
  };

  const implementation: UntypedServiceImplementation = {
    async Advise(call: ServerUnaryCall<AdviseRequestMsg, AdviseReplyMsg>, callback: sendUnaryData<AdviseReplyMsg>) {
      try {
        const r = call.request;
        if (src.ensureLoads) {
          const nodes = r.subject === 'profile' ? (r.profile?.io ?? []).map((io) => io.node)
            : r.subject === 'process' && r.process !== undefined ? [...(src.stats.profile(r.process)?.keys() ?? [])] : [];
          await src.ensureLoads([...new Set(nodes)]);
        }
        if (r.subject === 'process' && r.process !== undefined) {
          const advice = forProcess(r.process);
          if (!advice) throw new Errno('ESRCH', `process ${r.process} is not tracked on node ${src.self}`);
          callback(null, { advice });
        } else if (r.subject === 'profile' && r.profile) {
          callback(null, { advice: forProfile(r.profile) });
        } else {
          throw new Errno('EINVAL', 'AdviseRequest names neither a process nor a profile');
        }
      } catch (err) {
        callback(errnoToStatus(err));
      }
    },
    Watch(call: ServerWritableStream<WatchRequestMsg, AdviceMsg>) {
      const every = call.request.interval_ms === 0 ? 1000 : Math.max(MIN_WATCH_MS, call.request.interval_ms);
      const named = call.request.processes;
      // What was last sent per process, so a decision is streamed only when it changes.
      const sent = new Map<ProcessKey, string>();
      const evaluate = () => {
        const keys = named.length > 0 ? named : src.stats.keys();
        for (const key of keys) {
          const advice = forProcess(key);
          if (!advice) {
            sent.delete(key);
            continue;
          }
          const decision = advice.move ? `move ${advice.to}` : 'stay';
          if (sent.get(key) === decision) continue;
          sent.set(key, decision);
          call.write(advice);
        }
      };
      evaluate();
      const timer = setInterval(evaluate, every);
      const end = () => clearInterval(timer);
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
    },
  };
  return { implementation, advisor };
}

function toMessage(a: Advice, process: string, here: number): AdviceMsg {
  return {
    process,
    here,
    move: a.kind === 'move',
    to: a.kind === 'move' ? a.to : 0,
    ranked: a.ranked.map((n) => ({ node: n.node, io_us: n.io, cpu_us: n.cpu, total_us: n.total })),
    saving_us_per_s: a.kind === 'move' ? a.savingPerS : 0,
    migration_us: a.kind === 'move' ? a.migrationUs : 0,
    reason: a.reason,
  };
}
