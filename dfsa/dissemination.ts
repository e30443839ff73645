// Load dissemination, after openMosix's probabilistic scheme (seed 003): at regular intervals each
// node sends its load to a randomly chosen subset of the other nodes and keeps a small window
// with the most recently arrived information. No central control, and no node tries to know the
// whole cluster.
//
// What we do, precisely:
// - Every `intervalMs` a node measures itself and sends one message to each of `fanout` distinct
//   peers picked uniformly at random. The message carries its own report first, then the
//   `forward` freshest reports of its window (gossip: what a node heard spreads on, as MOSIX's
//   load vector did, so information also reaches nodes its origin did not pick).
// - A receiver merges every report about another node: the newest per node wins; then it keeps
//   only the `window` freshest reports.
// - Reports carry their age (ms since measured) rather than a timestamp, and the receiver turns it
//   into its own clock (now - age): nodes' clocks need not agree. Transit time is not counted, so
//   ages are understated by the network latency (milliseconds against intervals of seconds).
//
// Guarantees (N nodes, interval I, fan-out f, window w, forward g; measured for N = 1000 in
// test/dfsa/dissemination.test.ts):
// - traffic per node is independent of N: exactly f messages sent per interval, f received per
//   interval on average (each node is a uniform pick of the others), each message at most 1 + g
//   reports. Growing the cluster changes nothing a node sends or receives.
// - a node knows w other nodes (a fraction w/(N-1) of the cluster), each of them on average
//   known by w nodes; which ones changes every interval.
// - everything a node holds is fresh: the w freshest of the f·(1+g) reports it receives per
//   interval. With the defaults, measured at N = 1000 and at N = 100 alike: 1.4 intervals old on
//   average, 3.8 at most (the test asserts 2 and 5). Without forwarding (g = 0) the window is
//   the last w/f intervals of direct reports and its oldest entry was 10 intervals old:
//   forwarding is what keeps a small window fresh.
// A node that needs the load of a node outside its window (the advisor weighing a data node)
// asks that node directly; the window is for picking lightly loaded candidates.

export interface LoadSample {
  /** Runnable tasks per CPU: 0 = idle, 1 = every CPU busy. */
  load: number;
  cpus: number;
  /** CPU speed relative to a standard CPU (1). */
  speed: number;
  freeMemKB: number;
  readKBps: number;
  writeKBps: number;
}

/** A node's load as sent: the sample and how long ago it was measured. */
export interface WireReport extends LoadSample {
  node: number;
  ageMs: number;
}

/** A report as held: `at` is when it was measured, on this node's clock. */
export interface LoadReport extends LoadSample {
  node: number;
  at: number;
}

export interface GossipMessage {
  from: number;
  /** The sender's own report first, then what it forwards from its window. */
  reports: WireReport[];
}

export interface DisseminationSettings {
  intervalMs: number;
  fanout: number;
  window: number;
  forward: number;
}

// 1 s, 3 peers, 16 held, half the window forwarded: per node 3 messages of at most 9 reports
// (about 500 bytes) per second, whatever the cluster's size.
export const DEFAULT_DISSEMINATION: DisseminationSettings = { intervalMs: 1000, fanout: 3, window: 16, forward: 8 };

export interface DisseminatorOptions {
  self: number;
  settings?: DisseminationSettings;
  /** The other nodes of the cluster (the map), read at every interval. */
  peers: () => readonly number[];
  measure: () => LoadSample;
  send: (to: number, message: GossipMessage) => void;
  now?: () => number;
  /** Uniform in [0, 1); injected so a simulation is reproducible. */
  random?: () => number;
}

export class LoadDisseminator {
  readonly settings: DisseminationSettings;
  private readonly window = new Map<number, LoadReport>();
  private readonly now: () => number;
  private readonly random: () => number;
  private own: LoadReport | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DisseminatorOptions) {
    this.settings = opts.settings ?? DEFAULT_DISSEMINATION;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  /** One interval's work: measure, then send to `fanout` random peers. */
  tick(): void {
    const now = this.now();
    this.own = { node: this.opts.self, at: now, ...this.opts.measure() };
    const reports = [toWire(this.own, now), ...this.freshest(this.settings.forward).map((r) => toWire(r, now))];
    for (const to of this.pick(this.settings.fanout)) this.opts.send(to, { from: this.opts.self, reports });
  }

  receive(message: GossipMessage): void {
    const now = this.now();
    for (const w of message.reports) {
      if (w.node === this.opts.self || !(w.ageMs >= 0)) continue;
      const at = now - w.ageMs;
      const held = this.window.get(w.node);
      if (held && held.at >= at) continue;
      const { ageMs: _age, ...sample } = w;
      this.window.set(w.node, { ...sample, at });
    }
    if (this.window.size > this.settings.window) {
      for (const r of [...this.window.values()].sort(byNewest).slice(this.settings.window)) this.window.delete(r.node);
    }
  }

  /** What this node holds about others, newest first. */
  view(): LoadReport[] {
    return this.freshest(this.window.size);
  }

  /** What this node holds about `node`; its own latest measurement for itself. */
  get(node: number): LoadReport | undefined {
    return node === this.opts.self ? this.own : this.window.get(node);
  }

  /** Runs tick() every interval, the first at a random phase so nodes do not send in step. */
  start(): void {
    if (this.timer) return;
    const first = Math.floor(this.random() * this.settings.intervalMs);
    this.timer = setTimeout(() => {
      this.tick();
      this.timer = setInterval(() => this.tick(), this.settings.intervalMs);
      this.timer.unref();
    }, first);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private freshest(n: number): LoadReport[] {
    return [...this.window.values()].sort(byNewest).slice(0, n);
  }

  /** Up to k distinct peers, uniformly (rejection sampling: k is small, the map large). */
  private pick(k: number): number[] {
    const peers = this.opts.peers().filter((p) => p !== this.opts.self);
    if (peers.length <= k) return peers;
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(peers[Math.floor(this.random() * peers.length)]!);
    return [...chosen];
  }
}

const byNewest = (a: LoadReport, b: LoadReport) => b.at - a.at || a.node - b.node;

function toWire(r: LoadReport, now: number): WireReport {
  const { at, ...rest } = r;
  return { ...rest, ageMs: Math.max(0, now - at) };
}
