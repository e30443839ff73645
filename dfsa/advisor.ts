// The advisor's model: for one process, the expected cost of running it on each node, and the
// advice to stay or to move. Our design (omfs-reference.md section 4 marks it [INF]: how
// openMosix weighed these tables is not recorded).
//
// Costs are microseconds per second of the process's current activity:
// - I/O on X: every call and KB to a node n other than X pays the remote costs of both sides,
//   calls_n·(CONN_S+CONN_C) + readKB_n·(INKB_S+INKB_C) + writeKB_n·(OUTKB_S+OUTKB_C); I/O to X
//   itself is local and costs nothing extra (it would cost the same on any node that holds
//   the data, so only the difference matters). No deputy term: omfs moves a process by
//   restarting it, there is no home-node deputy serving its system calls.
// - CPU on X: cpu·1e6·slowdown(X)/speed(X). `cpu` is the CPU-seconds per second the process
//   uses; slowdown(X) = max(1, others(X) + 1/cpus(X)), where others(X) is X's load (runnable
//   tasks per CPU) without this process: on a node with a free CPU it runs at full speed, on a
//   busy one it shares. CPU-only work on equally idle nodes costs the same everywhere, so it is
//   never pulled toward its data; a loaded node costs more, so it is avoided.
// Advice: move to the cheapest node X (not here) only when all of these hold:
// - the saving over the horizon pays for the move: (cost(here)−cost(X))·horizon > 8141 +
//   351·dirty pages (the overheads' migration costs);
// - the saving is more than `margin` of cost(here): near-equal nodes never trade a process back
//   and forth as its profile wobbles;
// - the process has not moved in the last `minMoveIntervalMs`.
import type { IoCounters, IoProfile } from './io-profile.js';
import type { MfsCosts, MigrationOverheads } from './costs.js';
import type { DecayMode, DecaySettings } from './decay.js';

/** What the advisor needs to know of a node's load (from load dissemination). */
export interface NodeLoad {
  /** Runnable tasks per CPU, 0 = idle, 1 = every CPU busy. */
  load: number;
  cpus: number;
  /** CPU speed relative to a standard CPU (1). */
  speed: number;
}

export interface AdvicePolicy {
  /** Seconds over which a saving is expected to last (a process's recent past predicts this much future). */
  horizonS: number;
  /** Fraction of cost(here) a move must save. */
  margin: number;
  /** A process moved less than this long ago stays. */
  minMoveIntervalMs: number;
}

// The horizon matches slow decay's memory (1/(1−0.975) = 40 intervals of 1 s): the profile
// summarises about that much past, so that is as far as it can be trusted to predict.
export const DEFAULT_POLICY: AdvicePolicy = { horizonS: 40, margin: 0.2, minMoveIntervalMs: 30_000 };

export interface AdviceInput {
  here: number;
  /** I/O per second to each node (node id -> calls/s, KB read/s, KB written/s). */
  rates: ReadonlyMap<number, IoCounters>;
  /** CPU-seconds per second the process uses (1 = one CPU busy). */
  cpu: number;
  /** Candidate nodes and their loads; `here` should be among them. Nodes absent are not candidates. */
  loads: ReadonlyMap<number, NodeLoad>;
  costs: MfsCosts;
  migration: MigrationOverheads;
  dirtyPages: number;
  policy?: AdvicePolicy;
  /** When the process last moved (ms), and now (ms), for the minimum time between moves. */
  lastMoveAt?: number;
  now?: number;
}

export interface NodeCost {
  node: number;
  io: number;
  cpu: number;
  total: number;
}

export type Advice =
  | { kind: 'stay'; ranked: NodeCost[]; reason: string }
  | { kind: 'move'; to: number; ranked: NodeCost[]; savingPerS: number; migrationUs: number; reason: string };

/** Steady-state rates from decayed counters: a constant rate R per second settles at R·I/(1−r). */
export function ratesOf(profile: IoProfile, settings: DecaySettings, mode: DecayMode = 'slow'): Map<number, IoCounters> {
  // With no decay the counters are totals, not rates; slow decay's factor is the least wrong.
  const keep = (mode === 'fast' ? settings.fast : settings.slow) / 1000;
  const f = (1 - keep) / settings.interval;
  return new Map([...profile].map(([n, c]) => [n, { calls: c.calls * f, readKB: c.readKB * f, writeKB: c.writeKB * f }]));
}

export function ioCost(x: number, rates: ReadonlyMap<number, IoCounters>, c: MfsCosts): number {
  let sum = 0;
  for (const [n, r] of rates) {
    if (n === x) continue;
    sum += r.calls * (c.connS + c.connC) + r.readKB * (c.inKbS + c.inKbC) + r.writeKB * (c.outKbS + c.outKbC);
  }
  return sum;
}

export function cpuCost(x: number, input: Pick<AdviceInput, 'here' | 'cpu' | 'loads'>): number {
  const l = input.loads.get(x) ?? { load: 0, cpus: 1, speed: 1 };
  const cpus = Math.max(1, l.cpus);
  const others = Math.max(0, l.load - (x === input.here ? input.cpu / cpus : 0));
  const slowdown = Math.max(1, others + 1 / cpus);
  return (input.cpu * 1e6 * slowdown) / (l.speed > 0 ? l.speed : 1);
}

/** Every candidate's cost, cheapest first (ties: here first, then the lower node id). */
export function rankNodes(input: AdviceInput): NodeCost[] {
  const nodes = new Set(input.loads.keys());
  nodes.add(input.here);
  const ranked = [...nodes].map((node) => {
    const io = ioCost(node, input.rates, input.costs);
    const cpu = cpuCost(node, input);
    return { node, io, cpu, total: io + cpu };
  });
  const rank = (n: NodeCost) => (n.node === input.here ? -1 : n.node);
  return ranked.sort((a, b) => a.total - b.total || rank(a) - rank(b));
}

export function advise(input: AdviceInput): Advice {
  const policy = input.policy ?? DEFAULT_POLICY;
  const ranked = rankNodes(input);
  const best = ranked[0]!;
  const here = ranked.find((n) => n.node === input.here)!;
  if (best.node === input.here) return { kind: 'stay', ranked, reason: 'this node is the cheapest' };
  const savingPerS = here.total - best.total;
  const migrationUs = input.migration.migrateEmpty + input.migration.perDirtyPage * input.dirtyPages;
  if (savingPerS * policy.horizonS <= migrationUs) {
    return { kind: 'stay', ranked, reason: `node ${best.node} saves ${fmt(savingPerS * policy.horizonS)} us over ${policy.horizonS} s, not more than the ${fmt(migrationUs)} us a move costs` };
  }
  if (savingPerS <= policy.margin * here.total) {
    return { kind: 'stay', ranked, reason: `node ${best.node} saves ${fmt((100 * savingPerS) / here.total)}% of the cost here, within the ${fmt(100 * policy.margin)}% margin` };
  }
  const now = input.now ?? Date.now();
  if (input.lastMoveAt !== undefined && now - input.lastMoveAt < policy.minMoveIntervalMs) {
    return { kind: 'stay', ranked, reason: `moved ${fmt((now - input.lastMoveAt) / 1000)} s ago, less than ${fmt(policy.minMoveIntervalMs / 1000)} s` };
  }
  return { kind: 'move', to: best.node, ranked, savingPerS, migrationUs, reason: `node ${best.node} saves ${fmt(savingPerS)} us per second, the move costs ${fmt(migrationUs)} us` };
}

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** The advisor with memory: when each process last moved, for the minimum time between moves. */
export class Advisor {
  private readonly lastMove = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  advise(processKey: string, input: Omit<AdviceInput, 'lastMoveAt' | 'now'>): Advice {
    const last = this.lastMove.get(processKey);
    return advise({ ...input, now: this.now(), ...(last !== undefined ? { lastMoveAt: last } : {}) });
  }

  /** The process was moved (by the scheduler acting on advice, or by an admin). */
  moved(processKey: string): void {
    this.lastMove.set(processKey, this.now());
  }

  forget(processKey: string): void {
    this.lastMove.delete(processKey);
  }
}
