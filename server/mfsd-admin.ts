// What mfsd answers on its admin socket (server/admin-socket.ts), and the mounts it hosts:
// - mount {path, options, map?, node?}: mount.mfs hands `mount -t mfs` over to the node's running
//   mfsd, which mounts the cluster in process (its own node straight to disk, callbacks kept), as
//   the config's `mount` does at start, with the same checks: nothing is left mounted on failure.
//   `umount PATH` ends such a mount: the FUSE connection ends, mfsd drops the mount's state and
//   goes on serving its exports. A request for another node (node=N) is not this daemon's to serve:
//   its reply says so (fallback) and mount.mfs starts a standalone mount instead.
// - nomfs / mfs: refuse and allow again other nodes' access to this node (server/mfs-access.ts).
// - status: this node's access state and the mounts it hosts.
import { realpath } from 'node:fs/promises';
import type { MountConfig, MfsdConfig } from './config.js';
import { AdminSocketBusy, listenAdmin, type AdminReply, type AdminRequest, type AdminSocket } from './admin-socket.js';
import type { RunningDaemon } from './daemon.js';

/** A mount hosted by this mfsd (bin/mfsd.ts hostMount, passed in). */
export interface Hosted {
  /** The line logged once it answers. */
  line: string;
  /** Resolves once the FUSE connection ended (umount, or stop()) and the mount's state is dropped. */
  ended: Promise<void>;
  reloadMap(): Promise<string>;
  stop(graceMs: number): Promise<void>;
}

export class MfsdAdmin {
  private readonly mounts = new Map<string, Hosted>();
  /** Mount requests run one at a time: two for one path must not both pass the "not mounted" check. */
  private queue: Promise<unknown> = Promise.resolve();
  private socket: AdminSocket | null = null;

  constructor(
    private readonly cfg: MfsdConfig,
    private readonly daemon: RunningDaemon,
    private readonly mountNow: (m: MountConfig) => Promise<Hosted>,
    private readonly log: (line: string) => void,
  ) {}

  /** Keeps `m` (the config's mount, or one made on request) until its connection ends. */
  adopt(path: string, m: Hosted): void {
    this.mounts.set(path, m);
    // Keyed by the real path (what a new request is compared with); the lookup runs on the thread
    // pool, since this process itself answers the mount point's getattr.
    void realpath(path).then((real) => {
      if (real === path || this.mounts.get(path) !== m) return;
      this.mounts.delete(path);
      this.mounts.set(real, m);
    }, () => undefined);
    void m.ended.then(() => {
      for (const [p, x] of this.mounts) {
        if (x !== m) continue;
        this.mounts.delete(p);
        this.log(`mount ${p}: unmounted; still serving the exports`);
      }
    });
  }

  /**
   * Serves the admin socket. Another mfsd answering there is an error (the caller's to report);
   * any other failure (a path too long for a unix socket, a missing directory) leaves the daemon
   * serving without it, said in the log: mount.mfs then mounts standalone, mfsctl nomfs cannot reach it.
   */
  async listen(): Promise<void> {
    try {
      this.socket = await listenAdmin(this.cfg.adminSocket, (req) => this.handle(req));
    } catch (err) {
      if (err instanceof AdminSocketBusy) throw err;
      this.log(`WARNING: admin socket ${this.cfg.adminSocket}: ${err instanceof Error ? err.message : String(err)}; mount.mfs and mfsctl nomfs/mfs cannot reach this mfsd`);
    }
  }

  private async handle(req: AdminRequest): Promise<AdminReply> {
    const access = this.daemon.access;
    switch (req.op) {
      case 'status':
        return {
          ok: true, node: this.cfg.node, nomfs: access.refusing?.toISOString() ?? null,
          mounts: [...this.mounts.entries()].map(([path, m]) => ({ path, line: m.line })),
        };
      case 'nomfs': {
        const ended = access.refuse();
        this.log(`admin: nomfs: other nodes are refused access to this node's files (${ended} session stream(s) ended)`);
        return { ok: true, nomfs: access.refusing?.toISOString() ?? null, ended };
      }
      case 'mfs':
        access.allow();
        this.log('admin: mfs: other nodes may use this node\'s files again');
        return { ok: true, nomfs: null };
      case 'mount': {
        if (req.node !== undefined && req.node !== this.cfg.node) {
          return { ok: false, fallback: true, error: `this node's mfsd is node ${this.cfg.node}, node=${req.node} asks for another` };
        }
        const m: MountConfig = { path: req.path, map: req.map ?? this.cfg.mount?.map ?? null, options: req.options };
        const run = this.queue.then(() => this.mount(m));
        this.queue = run.catch(() => undefined);
        return run;
      }
    }
  }

  private async mount(asked: MountConfig): Promise<AdminReply> {
    // The mount point must not be (or be under) a mount this process serves: the mount's synchronous
    // checks (stat, realpath) would wait for an answer only this blocked event loop can give. So
    // resolve it asynchronously first and compare.
    let real: string;
    try {
      real = await realpath(asked.path);
    } catch (err) {
      return { ok: false, error: `mount: ${asked.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    for (const p of this.mounts.keys()) {
      if (real === p) return { ok: false, error: `mount: ${real} is already a mount point (mfs, mounted by this mfsd); unmount it first` };
      if (real.startsWith(`${p}/`)) return { ok: false, error: `mount: ${real} is inside ${p}, which this mfsd serves; mount elsewhere` };
    }
    const m: MountConfig = { ...asked, path: real };
    let hosted: Hosted;
    try {
      hosted = await this.mountNow(m);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.log(`admin: mount ${m.path} refused: ${error}`);
      return { ok: false, error };
    }
    this.adopt(m.path, hosted);
    this.log(`admin: ${hosted.line.replace(/^mfsd: /, '')}`);
    return { ok: true, line: hosted.line };
  }

  /** SIGHUP: every hosted mount re-reads its map; the lines to log. */
  reloadMaps(): Promise<string[]> {
    return Promise.all([...this.mounts.values()].map((m) => m.reloadMap()));
  }

  /** Daemon stop: no more requests, every hosted mount unmounted (their calls end before the file service closes). */
  async stop(graceMs: number): Promise<void> {
    await this.socket?.close();
    await Promise.all([...this.mounts.values()].map((m) => m.stop(graceMs)));
  }
}
