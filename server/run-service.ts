// mfsrun in mfsd (issue 11, "The scheduler that acts on it"). Three parts:
// - the unix socket (server/run-socket.ts) where a user's mfsrun asks its LOCAL mfsd to run a
//   command: this node is then the job's HOME; it places the job (-h, -N, -j, or the advisor with
//   the nodes of the paths the command names and earlier runs of the same command), starts it here
//   or on the target's mfsd over mutual TLS (Runner.Run), and streams it back (server/run-home.ts);
// - Runner.Run for other nodes' home mfsds (server/run-target.ts), cluster certificates only;
// - restarts of --restartable jobs: `mfsctl migrate` (over the same socket: root may move any
//   job, a user only their own) and the scheduler, which watches the advisor of the node each
//   restartable, unlocked job runs on and restarts the job where the advice says.
//
// API for the rest of mfsd: homeOf(pid) is the home node of a process running on THIS node that
// mfsrun started (or a descendant of one); undefined for any other process (its home is here).
import type * as grpc from '@grpc/grpc-js';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { Errno, toErrno } from '../proto/errno.js';
import { loadAdvisorConstructor, type AdviceMsg, type AdviseReplyMsg, type IoProfileMsg } from '../proto/advisor.js';
import { Placement as Where, loadRunnerConstructor, type JobMsg, type RunInputMsg, type RunStartMsg, type RunWeightMsg } from '../proto/run.js';
import { HomeJob, type Placement } from './run-home.js';
import { listenRunSocket, type Caller, type ConnectionHandler, type RunSocketServer, type SocketConnection } from './run-socket.js';
import { LocalJobs, runnerImplementation } from './run-target.js';
import type { ClusterView } from './load-cluster.js';
import type { TlsMaterial } from './tls.js';

/** Commands whose earlier runs are remembered for placement (the least recent forgotten first). */
const HISTORY = 256;
/** How often the scheduler's advisor streams re-evaluate a job. */
const WATCH_MS = 2000;
const ADVISE_MS = 5000;
/**
 * The scheduler leaves a job alone this long after restarting it. The advisor damps flapping per
 * process, but a restarted job is a new process to it, so the job's own history counts here.
 */
const SCHEDULED_RESTART_MIN_MS = 30_000;

export interface RunServiceOptions {
  self: number;
  cluster: ClusterView;
  /** This node's /mfs mount, where mount-relative paths land. */
  mount: () => string;
  /** The unix socket mfsrun connects to. */
  socket: string;
  /** This daemon's certificate and the cluster CA, to call other nodes' mfsd; null: --insecure. */
  tls: TlsMaterial | null;
  log: (line: string) => void;
}

export class RunService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Jobs running on this node (whatever their home). */
  readonly local = new LocalJobs();
  /** Jobs whose home is this node, by id. */
  private readonly jobs = new Map<string, HomeJob>();
  private readonly history = new Map<string, RunWeightMsg[]>();
  private readonly watches = new Map<string, grpc.ClientReadableStream<AdviceMsg>>();
  private readonly Runner = loadRunnerConstructor();
  private readonly Advisor = loadAdvisorConstructor();
  private readonly clients = new Map<string, grpc.Client>();
  private server: RunSocketServer | undefined;
  private readonly placement: Placement;

  constructor(private readonly o: RunServiceOptions) {
    this.definition = this.Runner.service;
    const target = { self: o.self, mount: o.mount };
    this.implementation = runnerImplementation(target, this.local);
    this.placement = { o: target, jobs: this.local, runner: (n) => this.client(n, 'runner') };
  }

  async listen(): Promise<void> {
    this.server = await listenRunSocket(this.o.socket, (c) => this.accept(c), this.o.log);
  }

  /** Home node of process `pid` running on this node (see the header). */
  homeOf(pid: number): number | undefined {
    return this.local.homeOf(pid);
  }

  /** The jobs whose home is this node. */
  list(): JobMsg[] {
    return [...this.jobs.values()].map((j) => ({
      job: j.init.id, home: j.init.home, node: j.running?.node ?? 0, pid: j.running?.pid ?? 0, client_pid: j.init.clientPid,
      uid: j.start.uid, argv: j.start.argv, restartable: j.start.restartable, locked: j.start.locked, restarts: j.restarts,
    }));
  }

  /**
   * Restarts a --restartable job on `to` (a node, "home" or "balance": where the advisor ranks
   * cheapest). `pid`: the mfsrun client's pid on this node, or the job's pid where it runs.
   */
  async migrate(by: { uid: number }, which: { pid: number; job: string }, to: string): Promise<string> {
    const job = [...this.jobs.values()].find((j) => (which.job !== '' && j.init.id === which.job)
      || (which.pid !== 0 && (j.init.clientPid === which.pid || j.running?.pid === which.pid)));
    if (!job) throw new Errno('ESRCH', `no mfsrun job ${which.job || `with pid ${which.pid}`} has this node as its home`);
    if (by.uid !== 0 && by.uid !== job.start.uid) throw new Errno('EPERM', 'only root may move another user\'s job');
    let node: number;
    if (to === 'home') node = this.o.self;
    else if (to === 'balance') node = await this.pick(job.start, job.running?.node ?? this.o.self);
    else if (/^\d+$/.test(to) && Number(to) >= 1 && Number(to) <= 65535) node = Number(to);
    else throw new Errno('EINVAL', `"${to}" is not a node number, "home" or "balance"`);
    if (node !== this.o.self && !this.o.cluster.has(node)) throw new Errno('ENOENT', `node ${node} is not in the map`);
    job.restartOn(node, to === 'balance' ? 'mfsctl migrate balance' : `mfsctl migrate ${to}`);
    return `job ${job.init.id} (pid ${job.running?.pid} on node ${job.running?.node}): restarting on node ${node} (SIGTERM, then the same command there; not a live migration)`;
  }

  async close(): Promise<void> {
    for (const w of this.watches.values()) w.cancel();
    this.watches.clear();
    for (const j of this.jobs.values()) j.hangup();
    this.local.hangupAll();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    const s = this.server;
    this.server = undefined;
    await s?.close();
  }

  /**
   * A client of `node` (at the map's first address) with this daemon's certificate. Its own
   * channel, not the cluster's: that one backs off for up to minutes after the node was down
   * (dissemination keeps trying it), and a user waiting on mfsrun should not wait that long.
   */
  private client(node: number, kind: 'runner' | 'advisor'): grpc.Client | undefined {
    const address = this.o.cluster.addresses(node)[0];
    if (!address) return undefined;
    const key = `${kind}:${address}`;
    let c = this.clients.get(key);
    if (!c) {
      const Ctor = kind === 'runner' ? this.Runner : this.Advisor;
      const host = /^\[?([^\]]+?)\]?:\d+$/.exec(address)?.[1] ?? '';
      // As load-cluster.ts: a certificate is checked against the IP itself, and TLS given a fixed name.
      const byIp = this.o.tls !== null && isIP(host) !== 0;
      const creds = this.o.tls
        ? grpcCredentials.createSsl(this.o.tls.ca, this.o.tls.key, this.o.tls.cert, byIp ? { checkServerIdentity: (_n, cert) => checkServerIdentity(host, cert) } : {})
        : grpcCredentials.createInsecure();
      c = new Ctor(address, creds, {
        ...(byIp ? { 'grpc.ssl_target_name_override': 'omfs-node' } : {}),
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2000,
      });
      this.clients.set(key, c);
    }
    return c;
  }

  private accept(c: SocketConnection): ConnectionHandler {
    let job: HomeJob | undefined;
    let first = true;
    let gone = false;
    // Input that arrives while the job is being placed (the advisor is asked) waits for it.
    const early: RunInputMsg[] = [];
    return {
      message: (m) => {
        if (!first) {
          if (!job) return void early.push(m);
          // Input the job does not read waits in the client's socket, not in this daemon.
          if (!job.input(m)) {
            c.pauseInput();
            job.whenInputDrained(() => c.resumeInput());
          }
          return;
        }
        first = false;
        if (m.what === 'start') {
          this.begin(c, m.start).then((j) => {
            job = j;
            for (const e of early.splice(0)) j.input(e);
            if (gone) j.hangup();
          }, (err: unknown) => {
            const e = toErrno(err);
            c.send({ what: 'failed', failed: { errno: e.code, message: e.message } });
            c.close();
          });
        } else if (m.what === 'migrate') {
          this.migrate(c.caller, m.migrate, m.migrate.to).then(
            (line) => c.send({ what: 'migrated', migrated: line }),
            (err: unknown) => {
              const e = toErrno(err);
              c.send({ what: 'failed', failed: { errno: e.code, message: e.message } });
            },
          ).finally(() => c.close());
        } else if (m.what === 'jobs') {
          const all = this.list();
          c.send({ what: 'jobs', jobs: { jobs: c.caller.uid === 0 ? all : all.filter((j) => j.uid === c.caller.uid) } });
          c.close();
        } else {
          c.close();
        }
      },
      gone: () => {
        gone = true;
        job?.hangup();
      },
    };
  }

  /** A start from a local client: its credentials from the kernel, placed, launched. */
  private async begin(c: SocketConnection, asked: RunStartMsg): Promise<HomeJob> {
    const caller: Caller = c.caller;
    const id = `${this.o.self}-${randomBytes(6).toString('hex')}`;
    const start: RunStartMsg = {
      ...asked,
      uid: caller.uid, gid: caller.gid, groups: caller.groups, home: this.o.self, job: id,
      ...this.resolveHere(asked),
    };
    const node = await this.target(start);
    const job = new HomeJob(this.placement, {
      id, home: this.o.self, clientPid: caller.pid, start,
      send: (m) => c.send(m),
      whenDrained: (cb) => c.whenDrained(cb),
      done: () => {
        this.jobs.delete(id);
        this.unwatch(id);
        c.close();
      },
      log: this.o.log,
    });
    this.jobs.set(id, job);
    this.remember(start);
    job.launch(node, start.fallback);
    if (start.restartable && !start.locked) this.schedule(job);
    return job;
  }

  /**
   * `here/...` and `home/...` in mount-relative paths name the caller's node (this one) for the
   * caller; on the target they would name the target. Weights of node 0 ("this node") too.
   */
  private resolveHere(s: RunStartMsg): Pick<RunStartMsg, 'argv' | 'cwd' | 'weights'> {
    const fix = (b: Buffer): Buffer => {
      const m = /^(here|home)(\/.*)?$/.exec(b.toString('utf8'));
      return m ? Buffer.from(`${this.o.self}${m[2] ?? ''}`) : b;
    };
    const inMount = new Set(s.mount_args);
    return {
      argv: s.argv.map((a, i) => (inMount.has(i) ? fix(a) : a)),
      cwd: s.cwd_in_mount ? fix(s.cwd) : s.cwd,
      weights: s.weights.map((w) => (w.node === 0 ? { ...w, node: this.o.self } : w)),
    };
  }

  private async target(s: RunStartMsg): Promise<number> {
    switch (s.placement) {
      case Where.HOME:
        return this.o.self;
      case Where.NODE: {
        const n = s.nodes[0];
        if (n === undefined) throw new Errno('EINVAL', '-N needs a node');
        return n;
      }
      case Where.LIST: {
        if (s.nodes.length === 0) throw new Errno('EINVAL', '-j needs a list of nodes');
        return s.nodes[Math.floor(Math.random() * s.nodes.length)]!;
      }
      case Where.ADVISOR:
        return this.pick(s, this.o.self);
      default:
        throw new Errno('EINVAL', `unknown placement ${s.placement}`);
    }
  }

  /**
   * The advisor's choice for a process with no profile of its own yet: the nodes of its paths
   * (and of earlier runs of the same command, at half weight) as an explicit profile, asked of
   * this node's Advisor as running on `here`. Stays at `here` when the advice is to stay or the
   * advisor cannot be asked.
   */
  private async pick(s: RunStartMsg, here: number): Promise<number> {
    const io = new Map<number, { calls: number; read_kb: number }>();
    const add = (w: RunWeightMsg, f: number) => {
      const c = io.get(w.node) ?? { calls: 0, read_kb: 0 };
      io.set(w.node, { calls: c.calls + f * w.calls, read_kb: c.read_kb + f * w.read_kb });
    };
    for (const w of s.weights) add(w, 1);
    for (const w of this.history.get(commandKey(s)) ?? []) add(w, 0.5);
    if (io.size === 0) return here;
    const profile: IoProfileMsg = { io: [...io].map(([node, v]) => ({ node, calls: v.calls, read_kb: v.read_kb, write_kb: 0 })), cpu: 0, dirty_pages: 0, here };
    const advisor = this.client(this.o.self, 'advisor');
    if (!advisor) return here;
    try {
      const reply = await new Promise<AdviseReplyMsg>((resolve, reject) => {
        (advisor as unknown as { Advise(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: AdviseReplyMsg) => void): void })
          .Advise({ profile }, { deadline: Date.now() + ADVISE_MS }, (e, v) => (e ? reject(e) : resolve(v)));
      });
      return reply.advice.move ? reply.advice.to : here;
    } catch (err) {
      this.o.log(`run: the advisor could not be asked (${(err as Error).message}); the job stays on node ${here}`);
      return here;
    }
  }

  private remember(s: RunStartMsg): void {
    if (s.weights.length === 0) return;
    const key = commandKey(s);
    this.history.delete(key);
    this.history.set(key, s.weights);
    if (this.history.size > HISTORY) this.history.delete(this.history.keys().next().value!);
  }

  /**
   * The scheduler for one restartable, unlocked job: each time it (re)starts, watch the advisor of
   * the node it runs on for that process; on advice to move, restart it there.
   */
  private schedule(job: HomeJob): void {
    let watchedPid = 0;
    const tick = setInterval(() => {
      const r = job.running;
      if (!this.jobs.has(job.init.id)) return clearInterval(tick);
      if (!r || r.pid === watchedPid) return;
      watchedPid = r.pid;
      this.unwatch(job.init.id);
      const advisor = this.client(r.node, 'advisor');
      if (!advisor) return;
      const stream = (advisor as unknown as { Watch(r: object): grpc.ClientReadableStream<AdviceMsg> })
        .Watch({ processes: [`${r.pid}:${r.starttime}`], interval_ms: WATCH_MS });
      stream.on('data', (a: AdviceMsg) => {
        if (!a.move || a.to === r.node) return;
        if (job.lastRestartAt && Date.now() - job.lastRestartAt < SCHEDULED_RESTART_MIN_MS) return;
        try {
          job.restartOn(a.to, `the advisor: saves ${Math.round(a.saving_us_per_s)} us/s, ${a.reason}`);
        } catch (err) {
          this.o.log(`run: job ${job.init.id}: advice to move to node ${a.to} not followed (${(err as Error).message})`);
        }
      });
      stream.on('error', () => undefined); // the job ended, or the node is gone: nothing to act on
      this.watches.set(job.init.id, stream);
    }, 500);
    tick.unref();
  }

  private unwatch(id: string): void {
    this.watches.get(id)?.cancel();
    this.watches.delete(id);
  }
}

/** Earlier runs of "the same command": the same program name. */
function commandKey(s: RunStartMsg): string {
  return basename(s.argv[0]?.toString('utf8') ?? '');
}

