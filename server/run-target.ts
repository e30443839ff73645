// The target side of a run: Runner.Run (proto/run.proto) as another node's mfsd calls it, and
// the same driving of a local job when the home node runs it itself. Only a peer that presented
// a cluster certificate may ask (EACCES otherwise: an mfsd serving --insecure runs nothing for
// anyone over the network). The credentials in the RunStart are the ones the home node took from
// the kernel (SO_PEERCRED) for the user who typed mfsrun; a cluster node is trusted to say them
// truly, as NFS trusts a client's uid.
// Every job started here is recorded with its home node (homeOf), so the mount can answer
// /mfs/home for the job and its children.
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { Errno, errnoToStatus, toErrno } from '../proto/errno.js';
import type { RunInputMsg, RunOutputMsg, RunStartMsg } from '../proto/run.js';
import { checkCredentials, jobSpecOf, spawnJob, type LocalJob } from './run-spawn.js';

/** A job that ignores SIGHUP after its peer went away is killed this long after. */
const HANGUP_KILL_MS = 10_000;
const SIGHUP = 1;
const SIGKILL = 9;

export interface TargetOptions {
  self: number;
  /** This node's /mfs mount (where mount-relative paths land). */
  mount: () => string;
}

/** Jobs this node runs at once, whoever asks (a runaway or hostile caller cannot fork-bomb it through mfsd). */
export const MAX_LOCAL_JOBS = 4096;

/** Jobs running on this node, by pid, with their home node. */
export class LocalJobs {
  private readonly byPid = new Map<number, { home: number; job: string; local: LocalJob }>();

  get size(): number {
    return this.byPid.size;
  }

  add(pid: number, home: number, job: string, local: LocalJob): void {
    this.byPid.set(pid, { home, job, local });
  }

  remove(pid: number): void {
    this.byPid.delete(pid);
  }

  /**
   * The home node of process `pid` on this node: the one recorded for the mfsrun job it is, or
   * descends from (parents followed through /proc, at most 64 levels); undefined for any other.
   */
  homeOf(pid: number): number | undefined {
    let p = pid;
    for (let depth = 0; depth < 64 && p > 1; depth++) {
      const hit = this.byPid.get(p);
      if (hit) return hit.home;
      const next = parentOf(p);
      if (next === undefined) return undefined;
      p = next;
    }
    return undefined;
  }

  /** Every job still running here: SIGHUP (the hangup a closed terminal sends). */
  hangupAll(): void {
    for (const { local } of this.byPid.values()) local.signal(SIGHUP);
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** The driving end of one job, whatever carries its messages. */
export interface JobDriver {
  /** False when the job is not reading its input: take no more until whenDrained. */
  input(m: RunInputMsg): boolean;
  whenDrained(cb: () => void): void;
  /** The peer is gone: hang the job up (SIGHUP, SIGKILL later if it stays). */
  hangup(): void;
}

/** Where a job's messages go; send is false when the reader is behind (then whenDrained). */
export interface OutputSink {
  send(m: RunOutputMsg): boolean;
  whenDrained(cb: () => void): void;
}

/**
 * Starts `start` here and reports to `sink`: started, output, exited (then `done`). The job's
 * output is read only as fast as the sink takes it, so a job writing faster than its mfsrun
 * reads blocks on its pipe, as it would on a terminal. Throws Errno when it cannot start (bad
 * request, no such user rights, ...).
 */
export function runHere(o: TargetOptions, jobs: LocalJobs, start: RunStartMsg, sink: OutputSink, done: () => void): JobDriver {
  const cred = { uid: start.uid, gid: start.gid, groups: start.groups };
  checkCredentials(cred);
  if (jobs.size >= MAX_LOCAL_JOBS) throw new Errno('EAGAIN', `node ${o.self} already runs ${MAX_LOCAL_JOBS} mfsrun jobs`);
  const spec = jobSpecOf(start, o.mount());
  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  let paused = false;
  const send = (m: RunOutputMsg) => sink.send(m);
  const flow = (ok: boolean) => {
    if (ok || paused) return;
    paused = true;
    local.pause();
    sink.whenDrained(() => {
      paused = false;
      local.resume();
    });
  };
  const local = spawnJob(spec, cred, {
    stdout: (b) => flow(send({ what: 'stdout', stdout: b })),
    stderr: (b) => flow(send({ what: 'stderr', stderr: b })),
    exited: (e) => {
      exited = true;
      clearTimeout(killTimer);
      jobs.remove(local.pid);
      send({ what: 'exited', exited: e });
      done();
    },
  });
  if (local.pid) jobs.add(local.pid, start.home || o.self, start.job, local);
  send({ what: 'started', started: { node: o.self, pid: local.pid, job: start.job, home: start.home || o.self, starttime: local.starttime } });
  return {
    whenDrained: (cb) => local.whenStdinDrained(cb),
    input(m) {
      if (m.what === 'stdin') return local.stdin(m.stdin);
      if (m.what === 'stdin_eof') local.endStdin();
      else if (m.what === 'signal' && Number.isInteger(m.signal) && m.signal >= 1 && m.signal <= 64) local.signal(m.signal);
      return true;
    },
    hangup() {
      if (exited) return;
      local.signal(SIGHUP);
      killTimer = setTimeout(() => local.signal(SIGKILL), HANGUP_KILL_MS);
      killTimer.unref();
    },
  };
}

/** Runner's handlers for `server.addService(loadRunnerConstructor().service, ...)`. */
export function runnerImplementation(o: TargetOptions, jobs: LocalJobs): grpc.UntypedServiceImplementation {
  return {
    Run(call: grpc.ServerDuplexStream<RunInputMsg, RunOutputMsg>) {
      const fail = (err: unknown) => call.emit('error', errnoToStatus(err));
      if (!call.getAuthContext().sslPeerCertificate?.subject) {
        fail(new Errno('EACCES', 'only a node of the cluster (a peer with a cluster certificate) may start commands here'));
        return;
      }
      let driver: JobDriver | undefined;
      let ended = false;
      call.on('data', (m: RunInputMsg) => {
        if (ended) return;
        if (driver) {
          // Input the job does not read waits in the HTTP/2 window, not in this daemon.
          if (!driver.input(m)) {
            call.pause();
            driver.whenDrained(() => call.resume());
          }
          return;
        }
        if (m.what !== 'start') {
          fail(new Errno('EINVAL', 'a run begins with start'));
          return;
        }
        try {
          driver = runHere(o, jobs, m.start, {
            send: (out) => (ended ? true : call.write(out)),
            whenDrained: (cb) => void call.once('drain', cb),
          }, () => {
            ended = true;
            call.end();
          });
        } catch (err) {
          ended = true;
          fail(toErrno(err));
        }
      });
      const gone = () => {
        if (!ended) driver?.hangup();
      };
      call.on('cancelled', gone);
      call.on('end', gone);
      call.on('error', gone);
    },
  };
}
