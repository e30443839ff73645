// Per-process, per-target-node I/O profiles: calls, KB read and KB written, decayed as openMosix
// decayed its statistics (decay.ts), cleared when the process execs a new program (it is likely
// to change its nature), dropped when it exits. The /mfs mount feeds it from the FUSE requests
// that reach the daemon; reads the kernel serves from its page cache cost the network nothing
// and are not seen, so not counted.
//
// Decay is lazy: a process's counters carry the tick they were last brought up to date at, and
// any access first applies the whole intervals elapsed since, exactly value·(rate/1000)^ticks.
// Nothing runs on a timer, so idle processes cost nothing.
import { DEFAULT_DECAY, decayed, tickAt, type DecayMode, type DecaySettings } from './decay.js';

/** Identifies a process across pid reuse: its pid and start time, e.g. "1234:98765". */
export type ProcessKey = string;

export interface IoCounters {
  calls: number;
  readKB: number;
  writeKB: number;
}

/** A process's decayed counters per target node (node id -> counters). */
export type IoProfile = Map<number, IoCounters>;

interface ProcessRecord {
  mode: DecayMode;
  tick: number;
  perNode: Map<number, IoCounters>;
}

// Counters decayed below this are forgotten, so a profile does not keep every node it once
// touched: 1e-3 of a call or KB is far below anything the advisor can weigh.
const NEGLIGIBLE = 1e-3;

export class IoStatistics {
  private settings: DecaySettings;
  private readonly now: () => number;
  private readonly processes = new Map<ProcessKey, ProcessRecord>();

  constructor(opts: { settings?: DecaySettings; now?: () => number } = {}) {
    this.settings = opts.settings ?? DEFAULT_DECAY;
    this.now = opts.now ?? Date.now;
  }

  get decay(): DecaySettings {
    return this.settings;
  }

  /** New settings (setdecay): counters are first brought up to date under the old ones. */
  setDecay(settings: DecaySettings): void {
    for (const r of this.processes.values()) this.catchUp(r);
    this.settings = settings;
    const tick = tickAt(this.now(), settings);
    for (const r of this.processes.values()) r.tick = tick;
  }

  /** Adds I/O of `processKey` to node `node`. */
  recordIo(processKey: ProcessKey, node: number, io: Partial<IoCounters>): void {
    const r = this.record(processKey);
    let c = r.perNode.get(node);
    if (!c) r.perNode.set(node, (c = { calls: 0, readKB: 0, writeKB: 0 }));
    c.calls += io.calls ?? 0;
    c.readKB += io.readKB ?? 0;
    c.writeKB += io.writeKB ?? 0;
  }

  /** Slow (default), fast or no decay for this process (mosrun's slowdecay/fastdecay/nodecay). */
  setMode(processKey: ProcessKey, mode: DecayMode): void {
    this.record(processKey).mode = mode;
  }

  /** The process exec'd a new program: its statistics start again (its decay mode stays). */
  exec(processKey: ProcessKey): void {
    const r = this.processes.get(processKey);
    if (r) r.perNode.clear();
  }

  /** The process exited: forget it. */
  exit(processKey: ProcessKey): void {
    this.processes.delete(processKey);
  }

  /** The decayed profile now (a copy), or undefined for a process never seen. */
  profile(processKey: ProcessKey): IoProfile | undefined {
    const r = this.processes.get(processKey);
    if (!r) return undefined;
    this.catchUp(r);
    return new Map([...r.perNode].map(([n, c]) => [n, { ...c }]));
  }

  modeOf(processKey: ProcessKey): DecayMode | undefined {
    return this.processes.get(processKey)?.mode;
  }

  keys(): ProcessKey[] {
    return [...this.processes.keys()];
  }

  private record(processKey: ProcessKey): ProcessRecord {
    let r = this.processes.get(processKey);
    if (!r) {
      r = { mode: 'slow', tick: tickAt(this.now(), this.settings), perNode: new Map() };
      this.processes.set(processKey, r);
    } else {
      this.catchUp(r);
    }
    return r;
  }

  private catchUp(r: ProcessRecord): void {
    const tick = tickAt(this.now(), this.settings);
    const ticks = tick - r.tick;
    if (ticks <= 0) return;
    r.tick = tick;
    for (const [node, c] of r.perNode) {
      c.calls = decayed(c.calls, this.settings, r.mode, ticks);
      c.readKB = decayed(c.readKB, this.settings, r.mode, ticks);
      c.writeKB = decayed(c.writeKB, this.settings, r.mode, ticks);
      if (c.calls < NEGLIGIBLE && c.readKB < NEGLIGIBLE && c.writeKB < NEGLIGIBLE) r.perNode.delete(node);
    }
  }
}
