// What /mfs remembers about each calling process (issue 10, openMosix's per-task MFS state; facts
// in ../shared/docs/omfs-reference.md section 1): its home node, the node it selected, the node of
// its last exec and the node of its last magic create. Keyed by ProcessKey (tgid + start time,
// sys/process.ts), so a reused pid never inherits a dead process's state.
//
// When a record is made: the first time a process asks (any special directory or the control
// file), or, with proc events, when a process that has a record forks (the child copies the
// parent's values as they are at the fork, as openMosix's fork copied the task). A process first
// seen without a fork event inherits from the nearest ancestor with a record (parent, grandparent,
// ... through PPid), with the value the ancestor had when it forked that line: the table keeps
// when `selected` was last set and the value before, and compares with the start time of the
// process the ancestor forked.
//
// What is inherited: home (a child of a job the scheduler placed belongs to the same home),
// selected (openMosix: "inherited from an ancestor, set before fork") and lastexec (a child that
// has not exec'd yet last exec'd where its parent did). Not magic: the reference defines it as the
// node where THIS process last created a magic file.
//
// Forgetting: on the process's exit event; without events (not root, or events lost on overflow)
// the table is an LRU of maxProcesses records, and a record whose key no longer matches the live
// process of that tgid is replaced on sight. The exit of a main thread does not always end its
// process: a process whose main thread called pthread_exit lives on in its other threads, and an
// execve from a thread other than the main one kills the old main thread (exit event, pid == tgid)
// and takes over its pid. So an exited process's record goes to a small graveyard first, and comes
// back if the same ProcessKey is seen again (a dead process's key never is).
import { readFileSync } from 'node:fs';
import type { ProcessInfo, ProcessKey } from '../../../sys/process.js';
import { ProcessLookup } from '../../../sys/process.js';
import type { ExecEvent, ExitEvent, ForkEvent } from '../../../sys/proc-events.js';

export interface ProcessState {
  readonly key: ProcessKey;
  readonly tgid: number;
  /** Home node: this node unless the scheduler (DFSA) started the process for another. */
  home: number;
  /** Set through the `selected` control file, or inherited; undefined: never selected. */
  selected: number | undefined;
  /** When `selected` was last set (clock ticks since boot, as a process start time), and its value before. */
  selectedSetAt: number;
  selectedBefore: number | undefined;
  /** The node of the last successful execve (this node: a process runs where it exec'd). */
  lastexec: number;
  /** The node of this process's last successful create through magic/; undefined: none yet. */
  magic: number | undefined;
}

/** Thread → process (sys/process.ts's ProcessLookup, or a stand-in in tests). */
export interface ProcessSource {
  processOf(tid: number): ProcessInfo | undefined;
  forget?(tid: number): void;
}

/** The part of sys/proc-events.ts's ProcEvents the table uses. */
export interface ProcessEventSource {
  on(event: 'exec', listener: (e: ExecEvent) => void): unknown;
  on(event: 'exit', listener: (e: ExitEvent) => void): unknown;
  on(event: 'fork', listener: (e: ForkEvent) => void): unknown;
  off(event: 'exec', listener: (e: ExecEvent) => void): unknown;
  off(event: 'exit', listener: (e: ExitEvent) => void): unknown;
  off(event: 'fork', listener: (e: ForkEvent) => void): unknown;
  /** Applies the events queued so far (a request's own exec or fork is queued before the request). */
  drain(): void;
}

export interface ProcessTableOptions {
  thisNode: number;
  /** Records at most; the least recently used goes first. */
  maxProcesses?: number;
  /** How far up the parent chain a new process looks for a record to inherit. */
  maxAncestors?: number;
  lookup?: ProcessSource;
  /** Clock ticks since boot now (the unit of a process start time); /proc/uptime by default. */
  ticksNow?: () => number;
  /** Fork/exec/exit of every process; without it the table relies on the LRU bound. */
  events?: ProcessEventSource;
  /**
   * The home node of a process the scheduler started here for another node (mfsrun), asked when
   * the table first meets the process; undefined: this node.
   */
  homeOf?: (tgid: number) => number | undefined;
}

/** Records kept after their main thread's exit (see the header). */
const GRAVEYARD_SIZE = 1024;

export class ProcessTable {
  readonly thisNode: number;
  private readonly records = new Map<number, ProcessState>();
  /** Records of processes whose main thread exited, oldest first, in case the process lives on. */
  private readonly graveyard = new Map<number, ProcessState>();
  private readonly maxProcesses: number;
  private readonly maxAncestors: number;
  private readonly lookup: ProcessSource;
  private readonly events: ProcessEventSource | undefined;
  private readonly homeOf: ((tgid: number) => number | undefined) | undefined;
  private readonly ticksNow: () => number;
  private readonly onFork = (e: ForkEvent): void => this.forked(e);
  private readonly onExec = (e: ExecEvent): void => this.execed(e);
  private readonly onExit = (e: ExitEvent): void => this.exited(e);

  constructor(options: ProcessTableOptions) {
    this.thisNode = options.thisNode;
    this.maxProcesses = options.maxProcesses ?? 16384;
    this.maxAncestors = options.maxAncestors ?? 64;
    this.lookup = options.lookup ?? new ProcessLookup();
    this.events = options.events;
    this.homeOf = options.homeOf;
    this.ticksNow = options.ticksNow ?? ticksSinceBoot;
    this.events?.on('fork', this.onFork);
    this.events?.on('exec', this.onExec);
    this.events?.on('exit', this.onExit);
  }

  /**
   * The state of the process of thread `tid`, made on first sight. A thread that is gone (or tid 0,
   * a request the kernel made on its own) gets fresh defaults that are not kept.
   */
  stateOf(tid: number): ProcessState {
    this.events?.drain();
    const info = this.lookup.processOf(tid);
    if (info === undefined) return this.fresh('0:0', 0);
    const known = this.liveRecord(info);
    if (known) return known;
    const state = this.fresh(info.key, info.tgid);
    const found = this.nearestAncestor(info);
    if (found) inherit(state, found.ancestor, found.forked.startTime);
    this.keep(state);
    return state;
  }

  /** The record of process `tgid` if there is one (no /proc read, no new record). */
  peek(tgid: number): ProcessState | undefined {
    return this.records.get(tgid);
  }

  /** For the scheduler: the process of `tid` belongs to home node `node`. */
  setHome(tid: number, node: number): void {
    this.stateOf(tid).home = node;
  }

  /** The control file's write: `node` for the caller's process, undefined to clear. */
  setSelected(tid: number, node: number | undefined): void {
    const state = this.stateOf(tid);
    state.selectedBefore = state.selected;
    state.selected = node;
    state.selectedSetAt = this.ticksNow();
  }

  /** The mount calls this once a create through magic/ succeeded on `node`. */
  noteMagicCreate(tid: number, node: number): void {
    this.stateOf(tid).magic = node;
  }

  /** Process `tgid` exec'd on this node. */
  noteExec(tgid: number): void {
    const state = this.records.get(tgid) ?? this.revive(tgid);
    if (state) state.lastexec = this.thisNode;
  }

  /** Process `tgid`'s main thread exited: its record goes to the graveyard (see the header). */
  forget(tgid: number): void {
    const state = this.records.get(tgid);
    if (!state) return;
    this.records.delete(tgid);
    this.graveyard.delete(tgid);
    if (this.graveyard.size >= GRAVEYARD_SIZE) this.graveyard.delete(this.graveyard.keys().next().value!);
    this.graveyard.set(tgid, state);
  }

  /** A forgotten record back, if the live process of `tgid` is still the one it was about. */
  private revive(tgid: number, live?: ProcessInfo): ProcessState | undefined {
    const state = this.graveyard.get(tgid);
    if (!state) return undefined;
    this.graveyard.delete(tgid);
    const info = live ?? this.lookup.processOf(tgid);
    if (info?.key !== state.key) return undefined;
    this.keep(state);
    return state;
  }

  get size(): number {
    return this.records.size;
  }

  /** Stops listening to the events (the caller owns and closes the event source). */
  close(): void {
    this.events?.off('fork', this.onFork);
    this.events?.off('exec', this.onExec);
    this.events?.off('exit', this.onExit);
  }

  private fresh(key: ProcessKey, tgid: number): ProcessState {
    return {
      key, tgid, home: this.homeOf?.(tgid) ?? this.thisNode, selected: undefined, selectedSetAt: 0, selectedBefore: undefined, lastexec: this.thisNode, magic: undefined,
    };
  }

  /** The record of this very process (not of an earlier one with the same pid), marked as just used. */
  private liveRecord(info: ProcessInfo): ProcessState | undefined {
    const state = this.records.get(info.tgid);
    if (!state) return this.revive(info.tgid, info);
    this.records.delete(info.tgid);
    if (state.key !== info.key) return undefined; // a dead process's record: its pid was reused
    this.records.set(info.tgid, state);
    return state;
  }

  /** The nearest ancestor with a record, and the process on the path that it forked (the one whose start time decides what it got). */
  private nearestAncestor(start: ProcessInfo): { ancestor: ProcessState; forked: ProcessInfo } | undefined {
    let below = start;
    for (let depth = 0; below.ppid > 0 && depth < this.maxAncestors; depth++) {
      const info = this.lookup.processOf(below.ppid);
      if (info === undefined) return undefined;
      const state = this.liveRecord(info);
      if (state) return { ancestor: state, forked: below };
      below = info;
    }
    return undefined;
  }

  private keep(state: ProcessState): void {
    this.records.delete(state.tgid);
    while (this.records.size >= this.maxProcesses) {
      const oldest = this.records.keys().next();
      if (oldest.done) break;
      this.records.delete(oldest.value);
    }
    this.records.set(state.tgid, state);
  }

  private forked(e: ForkEvent): void {
    if (e.child.pid !== e.child.tgid) return; // a new thread, not a new process
    const parent = this.records.get(e.parent.tgid);
    if (!parent) return; // only descendants of processes that used the special state are tracked
    const parentInfo = this.lookup.processOf(e.parent.tgid);
    if (parentInfo?.key !== parent.key) return; // stale record (an exit we did not see)
    const child = this.lookup.processOf(e.child.pid);
    if (child === undefined) return; // already gone
    const state = this.fresh(child.key, child.tgid);
    inherit(state, parent, child.startTime);
    this.keep(state);
  }

  private execed(e: ExecEvent): void {
    // A thread other than the leader that execs takes over the leader's pid; its own tid is gone.
    if (e.pid !== e.tgid) this.lookup.forget?.(e.pid);
    this.noteExec(e.tgid);
  }

  private exited(e: ExitEvent): void {
    this.lookup.forget?.(e.pid);
    if (e.pid === e.tgid) this.forget(e.tgid);
  }
}

/**
 * `forkedAt`: start time of the process the ancestor forked on the way to `child`. openMosix's
 * child got the value of the fork's moment, so a line forked before the ancestor's last set gets
 * the value before it (the same clock tick counts as after: ticks are 10 ms).
 */
function inherit(child: ProcessState, ancestor: ProcessState, forkedAt: number): void {
  child.home = ancestor.home;
  child.selected = forkedAt >= ancestor.selectedSetAt ? ancestor.selected : ancestor.selectedBefore;
  child.lastexec = ancestor.lastexec;
}

/** Clock ticks (USER_HZ, 100 on Linux) since boot, the clock of /proc/<pid>/stat's start time. */
function ticksSinceBoot(): number {
  // "12345.67 ...": whole seconds and hundredths, read as integers (12345.67 * 100 is 1234566.99...).
  const [sec, hundredths] = readFileSync('/proc/uptime', 'latin1').split(' ')[0].split('.');
  return Number(sec) * 100 + Number(hundredths ?? 0);
}
