// Per-process I/O accounting for DFSA (issue 11): every operation the mount sends to node K is
// counted for the process that made it, so the advisor knows which processes work on which
// node's data. Two parts:
//
// - accountLink(link, node, ops): a NodeLink decorator (node-conn.ts's wrapLink) that reports each
//   operation as {thread id, node, 1 call, bytes in, bytes out} to an OpSink. Bytes in are what a
//   read or readlink returned (counted when it answers), bytes out what a write sent; every other
//   operation is one call and no data. The thread id is the FUSE request's (Caller.pid).
// - IoAccounting, the OpSink the mount's host uses: maps the thread to its process (ProcessKey,
//   tgid plus start time, sys/process.ts), sums per process and node, and hands a batch to a
//   ProcessIoSink every flushMs: the hosting mfsd applies it to its statistics in process, a
//   standalone mfs-mount sends it to its node's mfsd (one RPC a second at most, not one per read).
//
// Cost on the hot path: one Map lookup for the thread (ProcessLookup's cache; a /proc read only on
// a thread's first request, ~20-30 us, and again after its ttl) and one or two Map lookups to add
// the counts. With proc events the ttl is long (a minute): a thread's process never changes, and
// the exit event of a thread drops its entry at once, so a reused tid is never misattributed.
// Without events the ttl is 1 s (see sys/process.ts why that is safe).
//
// Exec and exit (proc events): an exec clears the process's statistics (openMosix: a new program
// is likely another kind of work); counts of the old program still pending here are dropped and
// the batch says `exec` before any count of the new one. An exit of the main thread (pid == tgid)
// forgets the process: pending counts are dropped and the batch says `exit`. Without proc events
// (mfs-mount not root) execs go unseen, and exits are found by a sweep every sweepMs that checks
// whether each accounted process still lives (/proc/<tgid>/stat with the same start time).
// Limits: a process whose main thread called pthread_exit while others go on is taken as exited
// (its later I/O starts a new record); reads the kernel answers from its page cache never reach
// the mount and are not counted (they cost the network nothing).
//
// fuse/mfs may not import dfsa or server: the sink is a plain interface, bin/ connects it.
import type { Caller } from '../../proto/session-client.js';
import type { NodeLink } from '../../proto/node-link.js';
import type { ExecEvent, ExitEvent } from '../../sys/proc-events.js';
import { ProcessLookup, readStat, type ProcessKey } from '../../sys/process.js';
import type { ProcessIo, ProcessIoBatch } from '../../proto/process-io.js';

/** Where each operation is reported: the decorator's only dependency. */
export interface OpSink {
  op(tid: number, node: number, bytesIn: number, bytesOut: number): void;
}

export type { ProcessIo, ProcessIoBatch };

export interface ProcessIoSink {
  report(batch: ProcessIoBatch): void | Promise<void>;
}

/** Thread → process, as sys/process.ts's ProcessLookup answers (a stand-in in tests). */
export interface ThreadLookup {
  processOf(tid: number): { tgid: number; key: ProcessKey } | undefined;
  forget?(tid: number): void;
}

/** The part of sys/proc-events.ts's ProcEvents used here. */
export interface ExecExitEvents {
  on(event: 'exec', listener: (e: ExecEvent) => void): unknown;
  on(event: 'exit', listener: (e: ExitEvent) => void): unknown;
  off(event: 'exec', listener: (e: ExecEvent) => void): unknown;
  off(event: 'exit', listener: (e: ExitEvent) => void): unknown;
}

export interface IoAccountingOptions {
  sink: ProcessIoSink;
  events?: ExecExitEvents;
  lookup?: ThreadLookup;
  /** How often pending counts are handed to the sink (ms). */
  flushMs?: number;
  /** Without events: how often accounted processes are checked for having exited (ms). */
  sweepMs?: number;
  /** Whether process `tgid` with start time `startTime` still runs (default: /proc). */
  alive?: (tgid: number, startTime: number) => boolean;
  /** A failed report (the local mfsd not answering): said once until one succeeds again. */
  log?: (line: string) => void;
}

interface Counts { calls: number; readBytes: number; writeBytes: number }

const defaultAlive = (tgid: number, startTime: number): boolean => {
  const st = readStat(tgid);
  return st !== undefined && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
};

export class IoAccounting implements OpSink {
  private readonly lookup: ThreadLookup;
  private pending = new Map<ProcessKey, Map<number, Counts>>();
  private execs = new Set<ProcessKey>();
  private exits = new Set<ProcessKey>();
  /** Processes that did I/O through the mount and have not exited: tgid → key. */
  private readonly known = new Map<number, ProcessKey>();
  private readonly timers: NodeJS.Timeout[] = [];
  private failing = false;
  private closed = false;

  constructor(private readonly o: IoAccountingOptions) {
    this.lookup = o.lookup ?? new ProcessLookup({ ttlMs: o.events ? 60_000 : 1000 });
    if (o.events) {
      o.events.on('exec', this.onExec);
      o.events.on('exit', this.onExit);
    }
    const flush = setInterval(() => void this.flush(), o.flushMs ?? 1000);
    flush.unref();
    this.timers.push(flush);
    if (!o.events) {
      const sweep = setInterval(() => this.sweep(), o.sweepMs ?? 10_000);
      sweep.unref();
      this.timers.push(sweep);
    }
  }

  /** A wrapLink for node-conn.ts's ConnOptions. */
  readonly wrap = (link: NodeLink, node: number): NodeLink => accountLink(link, node, this);

  op(tid: number, node: number, bytesIn: number, bytesOut: number): void {
    if (tid <= 0) return; // the kernel's own requests (release after exit, writeback) belong to no process
    const p = this.lookup.processOf(tid);
    if (!p) return; // gone already
    if (this.known.get(p.tgid) !== p.key) this.seen(p.tgid, p.key);
    let perNode = this.pending.get(p.key);
    if (!perNode) this.pending.set(p.key, (perNode = new Map()));
    const c = perNode.get(node);
    if (c) {
      c.calls++;
      c.readBytes += bytesIn;
      c.writeBytes += bytesOut;
    } else {
      perNode.set(node, { calls: 1, readBytes: bytesIn, writeBytes: bytesOut });
    }
  }

  /** Hands what is pending to the sink now (also done every flushMs). */
  async flush(): Promise<void> {
    if (this.pending.size === 0 && this.execs.size === 0 && this.exits.size === 0) return;
    const io: ProcessIo[] = [];
    for (const [process, perNode] of this.pending) {
      for (const [node, c] of perNode) io.push({ process, node, calls: c.calls, readKB: c.readBytes / 1024, writeKB: c.writeBytes / 1024 });
    }
    const batch: ProcessIoBatch = { exec: [...this.execs], io, exit: [...this.exits] };
    this.pending = new Map();
    this.execs = new Set();
    this.exits = new Set();
    try {
      await this.o.sink.report(batch);
      this.failing = false;
    } catch (err) {
      // Statistics are advice: a batch the node did not take is dropped, not retried forever.
      if (!this.failing) this.o.log?.(`per-process I/O statistics not reported: ${(err as Error).message}`);
      this.failing = true;
    }
  }

  /** Stops the timers and the event listeners, after a last flush. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.o.events) {
      this.o.events.off('exec', this.onExec);
      this.o.events.off('exit', this.onExit);
    }
    await this.flush();
  }

  /** A process seen for the first time; a tgid that meant another process before: that one is gone. */
  private seen(tgid: number, key: ProcessKey): void {
    const before = this.known.get(tgid);
    if (before !== undefined) this.gone(before);
    this.known.set(tgid, key);
  }

  private readonly onExec = (e: ExecEvent): void => {
    this.lookup.forget?.(e.pid);
    const key = this.known.get(e.tgid);
    if (key === undefined) return;
    // Counts made before the exec belong to the old program, which the exec clears anyway.
    this.pending.delete(key);
    this.execs.add(key);
  };

  private readonly onExit = (e: ExitEvent): void => {
    this.lookup.forget?.(e.pid);
    if (e.pid !== e.tgid) return; // a thread, not the process
    const key = this.known.get(e.tgid);
    if (key === undefined) return;
    this.known.delete(e.tgid);
    this.gone(key);
  };

  private gone(key: ProcessKey): void {
    this.pending.delete(key);
    this.execs.delete(key);
    this.exits.add(key);
  }

  private sweep(): void {
    const alive = this.o.alive ?? defaultAlive;
    for (const [tgid, key] of this.known) {
      const startTime = Number(key.slice(key.indexOf(':') + 1));
      if (alive(tgid, startTime)) continue;
      this.known.delete(tgid);
      this.gone(key);
    }
  }
}

/** `link` with every operation reported to `sink` for `node`; events and state are the link's own. */
export function accountLink(link: NodeLink, node: number, sink: OpSink): NodeLink {
  return new AccountedLink(link, node, sink);
}

class AccountedLink implements NodeLink {
  constructor(private readonly inner: NodeLink, private readonly node: number, private readonly sink: OpSink) {}

  get epoch(): number {
    return this.inner.epoch;
  }
  get status(): NodeLink['status'] {
    return this.inner.status;
  }
  get inFlight(): number {
    return this.inner.inFlight;
  }

  on(event: string, listener: (arg: never) => unknown): this {
    (this.inner.on as (e: string, l: (arg: never) => unknown) => NodeLink)(event, listener);
    return this;
  }
  off(event: string, listener: (arg: never) => unknown): this {
    (this.inner.off as (e: string, l: (arg: never) => unknown) => NodeLink)(event, listener);
    return this;
  }
  removeAllListeners(event?: string): this {
    this.inner.removeAllListeners(event);
    return this;
  }
  close(): void {
    this.inner.close();
  }

  /** One call, no data. */
  private call<T>(c: Caller, p: Promise<T>): Promise<T> {
    this.sink.op(c.pid, this.node, 0, 0);
    return p;
  }

  /** One call whose data comes back: counted when it answers (a short read counts what came). */
  private incoming(c: Caller, p: Promise<Buffer>): Promise<Buffer> {
    const tid = c.pid;
    p.then((b) => this.sink.op(tid, this.node, b.length, 0), () => this.sink.op(tid, this.node, 0, 0));
    return p;
  }

  root: NodeLink['root'] = (c, ...a) => this.call(c, this.inner.root(c, ...a));
  lookup: NodeLink['lookup'] = (c, ...a) => this.call(c, this.inner.lookup(c, ...a));
  getAttr: NodeLink['getAttr'] = (c, ...a) => this.call(c, this.inner.getAttr(c, ...a));
  setAttr: NodeLink['setAttr'] = (c, ...a) => this.call(c, this.inner.setAttr(c, ...a));
  access: NodeLink['access'] = (c, ...a) => this.call(c, this.inner.access(c, ...a));
  mkdir: NodeLink['mkdir'] = (c, ...a) => this.call(c, this.inner.mkdir(c, ...a));
  mknod: NodeLink['mknod'] = (c, ...a) => this.call(c, this.inner.mknod(c, ...a));
  create: NodeLink['create'] = (c, ...a) => this.call(c, this.inner.create(c, ...a));
  open: NodeLink['open'] = (c, ...a) => this.call(c, this.inner.open(c, ...a));
  release: NodeLink['release'] = (c, ...a) => this.call(c, this.inner.release(c, ...a));
  unlink: NodeLink['unlink'] = (c, ...a) => this.call(c, this.inner.unlink(c, ...a));
  rmdir: NodeLink['rmdir'] = (c, ...a) => this.call(c, this.inner.rmdir(c, ...a));
  rename: NodeLink['rename'] = (c, ...a) => this.call(c, this.inner.rename(c, ...a));
  link: NodeLink['link'] = (c, ...a) => this.call(c, this.inner.link(c, ...a));
  symlink: NodeLink['symlink'] = (c, ...a) => this.call(c, this.inner.symlink(c, ...a));
  readlink: NodeLink['readlink'] = (c, ...a) => this.incoming(c, this.inner.readlink(c, ...a));
  statFs: NodeLink['statFs'] = (c, ...a) => this.call(c, this.inner.statFs(c, ...a));
  fsync: NodeLink['fsync'] = (c, ...a) => this.call(c, this.inner.fsync(c, ...a));
  fallocate: NodeLink['fallocate'] = (c, ...a) => this.call(c, this.inner.fallocate(c, ...a));
  lseek: NodeLink['lseek'] = (c, ...a) => this.call(c, this.inner.lseek(c, ...a));
  copyFileRange: NodeLink['copyFileRange'] = (c, ...a) => this.call(c, this.inner.copyFileRange(c, ...a));
  getXattr: NodeLink['getXattr'] = (c, ...a) => this.incoming(c, this.inner.getXattr(c, ...a));
  setXattr: NodeLink['setXattr'] = (c, h, name, value, ...a) => {
    this.sink.op(c.pid, this.node, 0, value.length);
    return this.inner.setXattr(c, h, name, value, ...a);
  };
  listXattr: NodeLink['listXattr'] = (c, ...a) => this.call(c, this.inner.listXattr(c, ...a));
  removeXattr: NodeLink['removeXattr'] = (c, ...a) => this.call(c, this.inner.removeXattr(c, ...a));
  getLk: NodeLink['getLk'] = (c, ...a) => this.call(c, this.inner.getLk(c, ...a));
  setLk: NodeLink['setLk'] = (c, ...a) => this.call(c, this.inner.setLk(c, ...a));
  setLkW: NodeLink['setLkW'] = (c, ...a) => this.call(c, this.inner.setLkW(c, ...a));
  read: NodeLink['read'] = (c, ...a) => this.incoming(c, this.inner.read(c, ...a));
  write: NodeLink['write'] = (c, h, fh, offset, data, ...a) => {
    this.sink.op(c.pid, this.node, 0, data.length);
    return this.inner.write(c, h, fh, offset, data, ...a);
  };
  readDirBatch: NodeLink['readDirBatch'] = (c, ...a) => this.call(c, this.inner.readDirBatch(c, ...a));
}
