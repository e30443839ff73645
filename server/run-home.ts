// A job as its HOME node (the node of the user who typed mfsrun) holds it: where it runs now (an
// Attempt: here, or a Runner.Run stream to another node's mfsd), what the client's stream has seen,
// and, for a job started with --restartable, restarting it elsewhere: SIGTERM to the running one,
// then the same command, directory (translated by the target) and environment again on the new
// node, the client's output stream going on. A RESTART, not a live migration: the job starts over,
// and input it had already read is not given again.
import * as grpc from '@grpc/grpc-js';
import { Errno, statusToErrno, toErrno } from '../proto/errno.js';
import type { ExitedMsg, RunInputMsg, RunOutputMsg, RunStartMsg, StartedMsg } from '../proto/run.js';
import { runHere, type LocalJobs, type TargetOptions } from './run-target.js';
import { countMigration } from './metrics.js';

const SIGTERM = 15;
const SIGKILL = 9;
/** A job that outlives SIGTERM by this much when asked to restart is killed. */
export const RESTART_KILL_MS = 10_000;
/** How long a target node may take to accept the connection before it counts as down. */
const CONNECT_MS = 5_000;

export interface AttemptEvents {
  started(s: StartedMsg): void;
  /** False when the client is behind: hold further output until whenDrained. */
  output(m: RunOutputMsg): boolean;
  whenDrained(cb: () => void): void;
  exited(e: ExitedMsg): void;
  /** It never started (target down, refused, bad request) or its stream broke. */
  failed(err: Errno, beforeStart: boolean): void;
}

export interface Attempt {
  node: number;
  /** False when the job is behind on its input: send no more until whenDrained. */
  send(m: RunInputMsg): boolean;
  whenDrained(cb: () => void): void;
  /** The client is gone: hang up. */
  cancel(): void;
}

export interface Placement {
  o: TargetOptions;
  jobs: LocalJobs;
  /** A Runner client for another node (undefined: not in the map). */
  runner(node: number): grpc.Client | undefined;
}

/** Starts `start` on `node` (this node in process, another through its mfsd). */
export function attempt(p: Placement, node: number, start: RunStartMsg, ev: AttemptEvents): Attempt {
  let started = false;
  const onOut = (m: RunOutputMsg): boolean => {
    if (m.what === 'started') {
      started = true;
      ev.started(m.started);
    } else if (m.what === 'exited') ev.exited(m.exited);
    else return ev.output(m);
    return true;
  };
  if (node === p.o.self) {
    try {
      const d = runHere(p.o, p.jobs, start, { send: onOut, whenDrained: ev.whenDrained }, () => undefined);
      return { node, send: (m) => d.input(m), whenDrained: (cb) => d.whenDrained(cb), cancel: () => d.hangup() };
    } catch (err) {
      // Reported after the caller holds the attempt, as a remote failure would be.
      queueMicrotask(() => ev.failed(toErrno(err), true));
      return gone(node);
    }
  }
  const client = p.runner(node);
  if (!client) {
    queueMicrotask(() => ev.failed(new Errno('ENOENT', `node ${node} is not in the map`), true));
    return gone(node);
  }
  // The channel is shared with the daemon's other calls to that node and may be backing off
  // after an earlier failure (the node was down): wait until it connects, within a bound, so a
  // node that is up is used and one that is down is known as down (then -F applies).
  let over = false;
  let run: grpc.ClientDuplexStream<RunInputMsg, RunOutputMsg> | undefined;
  const queued: RunInputMsg[] = [];
  const waiting: (() => void)[] = [];
  client.waitForReady(Date.now() + CONNECT_MS, (err) => {
    if (over) return;
    if (err) {
      over = true;
      ev.failed(new Errno('EHOSTDOWN', `node ${node} does not answer: ${err.message}`), true);
      return;
    }
    run = open();
    for (const m of queued.splice(0)) run.write(m);
    for (const w of waiting.splice(0)) w();
  });
  const open = (): grpc.ClientDuplexStream<RunInputMsg, RunOutputMsg> => {
    const r = (client as unknown as { Run(): grpc.ClientDuplexStream<RunInputMsg, RunOutputMsg> }).Run();
    let paused = false;
    r.on('data', (m: RunOutputMsg) => {
      if (m.what === 'exited') over = true;
      // A client behind on its output holds the stream, and HTTP/2 flow control the job.
      if (onOut(m) || paused) return;
      paused = true;
      r.pause();
      ev.whenDrained(() => {
        paused = false;
        r.resume();
      });
    });
    r.on('error', (e: grpc.ServiceError) => {
      if (over || e.code === grpc.status.CANCELLED) return;
      over = true;
      ev.failed(statusToErrno(e), !started);
    });
    r.on('end', () => {
      if (!over) ev.failed(new Errno('EPIPE', `node ${node} ended the run without an exit status`), !started);
      over = true;
    });
    r.write({ what: 'start', start });
    return r;
  };
  return {
    node,
    send: (m) => {
      if (over) return true;
      if (run) return run.write(m);
      queued.push(m);
      // Until the node answers, one chunk of input is all a client may get ahead.
      return queued.length < 2;
    },
    whenDrained: (cb) => {
      const go = () => {
        if (run && !over) run.once('drain', cb);
        else cb();
      };
      if (run) go();
      else waiting.push(go);
    },
    cancel: () => {
      over = true;
      run?.cancel();
    },
  };
}

/** An attempt that never ran: takes nothing, holds nothing back. */
function gone(node: number): Attempt {
  return { node, send: () => true, whenDrained: (cb) => cb(), cancel: () => undefined };
}

export interface HomeJobInit {
  id: string;
  home: number;
  clientPid: number;
  start: RunStartMsg;
  /** To the mfsrun client. */
  send(m: RunOutputMsg): boolean;
  whenDrained(cb: () => void): void;
  /** The job is over (exited or failed for good). */
  done(): void;
  log(line: string): void;
}

export class HomeJob {
  current: Attempt | undefined;
  running: StartedMsg | undefined;
  restarts = 0;
  /** When the job was last restarted (0: never). */
  lastRestartAt = 0;
  private stdinEnded = false;
  private moving: { to: number; why: string } | undefined;
  private over = false;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(private readonly p: Placement, readonly init: HomeJobInit) {}

  get start(): RunStartMsg {
    return this.init.start;
  }

  /** Starts on `node`; with `fallbackHome`, a target that is down makes it run on the home node. */
  launch(node: number, fallbackHome: boolean): void {
    this.current = attempt(this.p, node, this.init.start, {
      started: (s) => {
        const first = this.running === undefined;
        this.running = s;
        this.init.send(first ? { what: 'started', started: s } : { what: 'restarted', restarted: s });
        if (this.stdinEnded) this.current?.send({ what: 'stdin_eof', stdin_eof: true });
      },
      output: (m) => this.init.send(m),
      whenDrained: (cb) => this.init.whenDrained(cb),
      exited: (e) => this.onExit(e),
      failed: (err, beforeStart) => {
        const down = err.code === 'EHOSTDOWN' || err.code === 'ETIMEDOUT' || err.code === 'ENOENT';
        if (beforeStart && down && node !== this.init.home && (fallbackHome || this.running !== undefined)) {
          this.init.send({ what: 'notice', notice: `node ${node} cannot run it (${err.message}); running it on the home node ${this.init.home}` });
          this.launch(this.init.home, false);
          return;
        }
        this.finish({ what: 'failed', failed: { errno: err.code, message: err.message } });
      },
    });
  }

  /** False when the job is behind on its input: read no more of the client until whenInputDrained. */
  input(m: RunInputMsg): boolean {
    if (m.what === 'stdin_eof') this.stdinEnded = true;
    if (m.what === 'signal' && this.moving) return true; // the job being restarted already has its SIGTERM
    return this.current?.send(m) ?? true;
  }

  whenInputDrained(cb: () => void): void {
    if (this.current) this.current.whenDrained(cb);
    else cb();
  }

  /** The client went away: hang the job up wherever it runs. */
  hangup(): void {
    this.over = true;
    clearTimeout(this.killTimer);
    this.current?.cancel();
  }

  /** Restart on `to` (SIGTERM now, the same command there once it has exited). */
  restartOn(to: number, why: string): void {
    if (!this.init.start.restartable) throw new Errno('EPERM', 'the job was not started with --restartable: it cannot be restarted elsewhere');
    if (!this.running || this.over) throw new Errno('EAGAIN', 'the job is not running yet');
    if (this.moving) throw new Errno('EBUSY', `the job is already being restarted on node ${this.moving.to}`);
    if (to === this.running.node) throw new Errno('EEXIST', `the job already runs on node ${to}`);
    this.moving = { to, why };
    this.init.log(`run: job ${this.init.id} (${this.describe()}): restart on node ${to} (${why}): SIGTERM on node ${this.running.node}`);
    this.current?.send({ what: 'signal', signal: SIGTERM });
    this.killTimer = setTimeout(() => this.current?.send({ what: 'signal', signal: SIGKILL }), RESTART_KILL_MS);
    this.killTimer.unref();
  }

  describe(): string {
    return this.init.start.argv.map((a) => a.toString()).join(' ').slice(0, 200);
  }

  private onExit(e: ExitedMsg): void {
    clearTimeout(this.killTimer);
    const moving = this.moving;
    this.moving = undefined;
    if (moving && !this.over) {
      this.restarts += 1;
      this.lastRestartAt = Date.now();
      countMigration(moving.to);
      this.init.send({ what: 'notice', notice: `restarting the job on node ${moving.to} (${moving.why}): it was stopped with SIGTERM on node ${this.running?.node} and starts over; this is a restart, not a live migration` });
      this.launch(moving.to, true);
      return;
    }
    this.finish({ what: 'exited', exited: e });
  }

  private finish(m: RunOutputMsg): void {
    if (this.over) return;
    this.over = true;
    this.init.send(m);
    this.init.done();
  }
}
