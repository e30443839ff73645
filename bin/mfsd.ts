#!/usr/bin/env node
// mfsd: serve this node's exports to the cluster, and with `mount` configured (--mount PATH) also
// mount the cluster there in this same process (issue 10, "One daemon per node"): its own node is
// reached in process (server/local-link.ts: no socket, callbacks kept), the others through
// sessions with this node's certificate. SIGHUP re-reads the map (the daemon's and the mount's).
// Its admin socket (server/admin-socket.ts, server/mfsd-admin.ts) takes the mounts mount.mfs hands
// over (the same hostMount, at runtime) and mfsctl nomfs / mfs (server/mfs-access.ts).
// Exit codes: 0 after a clean stop, 1 when it cannot start (port in use, file service, the mount
// failed: then nothing is left mounted), 2 for a bad config or usage.
import * as grpc from '@grpc/grpc-js';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { relative, isAbsolute } from 'node:path';
import { format } from 'node:util';
import { dialTarget } from '../cluster/addresses.js';
import { parseMap, type ClusterMap } from '../cluster/map-file.js';
import { mergeMembership } from '../cluster/membership.js';
import {
  cleanStaleMount, DEFAULT_BUSY_POLL_US, InitFlag, MFS_READAHEAD, mountAt, mountFuse, openFuseDevice, ROOT_ID, Session, setMountReadahead, unmountFuse,
} from '../fuse/kernel/index.js';
import { MfsFs } from '../fuse/mfs/mfs-fs.js';
import { MountArgsError, parseMountArgs, type MountArgs } from '../fuse/mfs/mount-options.js';
import { NodeConn } from '../fuse/mfs/node-conn.js';
import { ProcessTable } from '../fuse/mfs/special/index.js';
import { IoAccounting } from '../fuse/mfs/io-accounting.js';
import { adminTables } from '../dfsa/admin-tables.js';
import type { NodeLink } from '../proto/node-link.js';
import { ConfigError, USAGE, loadConfig, type MfsdConfig, type MountConfig } from '../server/config.js';
import { MfsdAdmin } from '../server/mfsd-admin.js';
import { StartupError, startDaemon, type RunningDaemon } from '../server/daemon.js';
import { omfsVersion } from '../server/node-service.js';
import { readNow, yieldCpu } from '../sys/index.js';
import { tryOpenProcEvents } from '../sys/proc-events.js';

// grpc-js logs its own errors bare on stderr; say whose they are. While starting, its lines are
// held back: a failed bind makes it log "No address added out of total 1 resolved" just before our
// own "cannot listen on ...: address in use", which says it better. Held lines are dropped when
// the start fails with such a message of ours, written otherwise; GRPC_VERBOSITY (asking for
// grpc's own logs) turns the holding off.
let held: string[] | null = process.env.GRPC_VERBOSITY ? null : [];
const grpcLine = (...args: unknown[]): void => {
  const line = `mfsd: grpc: ${format(...args)}\n`;
  if (held) held.push(line);
  else process.stderr.write(line);
};
grpc.setLogger({ error: grpcLine, info: grpcLine, debug: grpcLine });
function releaseGrpcLines(write: boolean): void {
  if (write) for (const line of held ?? []) process.stderr.write(line);
  held = null;
}

/** The mount's options (mfs-mount's -o list), checked before anything starts. */
function mountArgs(cfg: MfsdConfig): MountArgs | null {
  const m = cfg.mount;
  if (!m) return null;
  // The exports are served by this very process: a mount inside one (or one inside the mount)
  // would have the daemon look up its own mount from its event loop, which only it can answer.
  for (const e of cfg.exports) {
    const inside = (outer: string, inner: string): boolean => {
      const r = relative(outer, inner);
      return r === '' || (!r.startsWith('..') && !isAbsolute(r));
    };
    if (inside(e.path, m.path) || inside(m.path, e.path)) {
      throw new ConfigError(`mount.path ${m.path}: overlaps export ${e.path}; this mfsd would serve its own mount to itself`);
    }
  }
  try {
    const parsed = parseMountArgs([
      '--map', m.map ?? cfg.map ?? '/dev/null', '--node', String(cfg.node),
      '--tls-ca', cfg.tls.ca, '--tls-cert', cfg.tls.cert, '--tls-key', cfg.tls.key, ...(m.options ? ['-o', m.options] : []), m.path,
    ]);
    // A hosted mount follows the daemon's own discovery (config "discovery"); the option would be ignored.
    if (parsed.discovery) throw new ConfigError('mount.options: discovery=: the mounts mfsd hosts follow its own "discovery" config; set that instead');
    return parsed;
  } catch (err) {
    if (err instanceof MountArgsError) throw new ConfigError(`mount.options: ${err.message}`);
    throw err;
  }
}

/** The mount hosted by this mfsd. */
interface HostedMount {
  /** The line printed once it answers. */
  line: string;
  /** SIGHUP: re-read the map; resolves with the line to log. */
  reloadMap(): Promise<string>;
  /** Resolves once the FUSE connection ended (umount, or stop()) and the mount's links are released. */
  ended: Promise<void>;
  /** Unmount (lazily if busy), wait up to `graceMs` for the kernel to let go, drop every link. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Mounts the cluster at cfg.mount.path: this node through the daemon's local link, the others
 * through sessions. Any failure is a StartupError with nothing left mounted.
 */
async function hostMount(cfg: MfsdConfig, args: MountArgs, daemon: RunningDaemon): Promise<HostedMount> {
  const mapPath = cfg.mount!.map ?? cfg.map;
  const readMap = (): ClusterMap => {
    // The nodes discovery heard (config "discovery") join the map's; the map decides for its own.
    const discovered = daemon.discovery?.nodes() ?? [];
    // No map: this node alone, at its own address (never dialed: it is reached in process).
    if (mapPath === null) return mergeMembership({ nodes: new Map([[cfg.node, { id: cfg.node, addresses: [{ host: '127.0.0.1', port: daemon.port }] }]]) }, discovered);
    return mergeMembership(parseMap(readFileSync(mapPath, 'utf8'), mapPath), discovered);
  };
  let map: ClusterMap;
  try {
    map = readMap();
  } catch (err) {
    throw new StartupError(`mount: ${err instanceof Error ? err.message : String(err)}`, 2);
  }
  const where = args.mountPoint;
  cleanStaleMount(where); // a dead mount answers ENOTCONN: clear it first
  let real: string;
  try {
    if (!statSync(where).isDirectory()) throw new StartupError(`mount: ${where} is not a directory`, 1);
    real = realpathSync(where);
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError(`mount: ${where}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 1);
  }
  const already = mountAt(real);
  if (already) throw new StartupError(`mount: ${real} is already a mount point (${already.fsType} ${already.source}); unmount it first`, 1);

  const connOptions = {
    myNode: cfg.node, creds: daemon.clientCredentials, ...(daemon.tlsMaterial ? { tls: daemon.tlsMaterial } : {}), soft: args.soft, timeoMs: args.timeoMs, idleMs: args.idleMs,
    // DFSA: every operation counted for its process (io-accounting.ts); links open only once mounted, after `accounting` is made.
    wrapLink: (link: NodeLink, node: number) => accounting.wrap(link, node),
  };
  // One connection per node of the map; `previous` keeps those whose address did not change.
  const connect = (m: ClusterMap, previous: ReadonlyMap<number, NodeConn>): Map<number, NodeConn> => {
    const next = new Map<number, NodeConn>();
    for (const n of m.nodes.values()) {
      // Every address of the node, tried in order by the channel (an ALIAS when the first does not answer).
      const address = dialTarget(n.addresses);
      const old = previous.get(n.id);
      // dfsa=0 turns the short-circuit off: this node is dialed like any other (a session to itself).
      const local = n.id === cfg.node && args.dfsa ? daemon.localNode : undefined;
      next.set(n.id, old?.address === address ? old : new NodeConn(n.id, address, { ...connOptions, ...(local ? { local } : {}) }));
    }
    return next;
  };
  let conns = connect(map, new Map());
  const procEvents = tryOpenProcEvents();
  if (!procEvents.events) process.stderr.write(`mfsd: mount: no proc events (${procEvents.reason}): special directories without fork/exec/exit tracking\n`);
  // /mfs/home of a job mfsrun started here for another node is that node (run-service.ts homeOf).
  const processes = new ProcessTable({
    thisNode: cfg.node, homeOf: (pid) => daemon.run.homeOf(pid), ...(procEvents.events ? { events: procEvents.events } : {}),
  });
  // Per-process I/O into this daemon's advisor statistics, in process (no RPC), every 500 ms.
  const accounting = new IoAccounting({
    sink: { report: (b) => daemon.reportProcessIo(b) }, flushMs: 500, ...(procEvents.events ? { events: procEvents.events } : {}),
  });
  const fs = new MfsFs(map, conns, {
    mountPoint: real, readOnly: args.readOnly, cacheSeconds: args.cacheSeconds, lockClientId: `mfsd:node${cfg.node}:${process.pid}`,
    thisNode: cfg.node, processes,
  });
  // /mfs/.admin: this node's DFSA tables (the state dir mfsctl set* writes too).
  fs.special.setAdmin(adminTables(cfg.stateDir), (line) => process.stderr.write(`mfsd: mount: ${line}\n`));
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    for (const c of conns.values()) c.retire();
    processes.close();
    void accounting.close();
    procEvents.events?.close();
  };
  let fd: number;
  try {
    fd = openFuseDevice();
  } catch (err) {
    release();
    throw new StartupError(`mount: cannot open /dev/fuse: ${(err as Error).message}`, 1);
  }
  // reuseWriteBuffers: as mfs-mount (nothing of the mount keeps a WRITE's data after its handler).
  // busyPoll: as mfs-mount; a spin holds the daemon's event loop for 2 ms at most.
  const session = new Session(fd, fs, {
    withoutFlags: InitFlag.EXPORT_SUPPORT, reuseWriteBuffers: true, busyPoll: { microseconds: DEFAULT_BUSY_POLL_US, readNow, idle: yieldCpu },
  });
  fs.cache.attach(session.notifier);
  try {
    // As mfs-mount: every user sees the mount; the kernel checks mode bits, the node checks again.
    await mountFuse(fd, { source: 'mfs', mountPoint: real, allowOther: true, defaultPermissions: true, subtype: 'mfs' });
  } catch (err) {
    release();
    await session.device.close();
    throw new StartupError(`mount: ${(err as Error).message}`, 1);
  }
  session.start();
  await session.initialized;
  setMountReadahead(real, MFS_READAHEAD);
  // Start the device's notify worker now, not when the first invalidation waits for it.
  void session.notifier.invalInode(ROOT_ID, -1, 0);
  // umount -l detaches the mount while processes may still use it: no call may wait for an absent node then.
  const watchDetach = setInterval(() => {
    if (mountAt(real)?.fsType === 'fuse.mfs') return;
    clearInterval(watchDetach);
    for (const c of conns.values()) c.detach();
  }, 1000);
  watchDetach.unref();
  const ended = session.closed.then(async (reason) => {
    clearInterval(watchDetach);
    release();
    await session.device.close();
    if (reason !== 'ENODEV' && reason !== 'ECONNABORTED') process.stderr.write(`mfsd: mount ${real}: session ended: ${reason}\n`);
  });
  return {
    ended,
    line: `mfsd: mounted nodes ${[...conns.keys()].join(',')} on ${real} as node ${cfg.node} (node ${cfg.node} ${args.dfsa ? 'in process' : 'through a session: dfsa=0'})`,
    async reloadMap() {
      let next: ClusterMap;
      try {
        next = readMap();
      } catch (err) {
        return `mount map not changed: ${err instanceof Error ? err.message : String(err)}`;
      }
      const before = conns;
      conns = connect(next, before);
      await fs.setMembership(next, conns);
      // After the kernel forgot them: retiring drops what was cached from each left or moved node.
      for (const [k, c] of before) if (conns.get(k) !== c) c.retire();
      return `mount ${real}: nodes ${[...conns.keys()].join(',')}`;
    },
    async stop(graceMs: number) {
      if (mountAt(real)?.fsType === 'fuse.mfs') await unmountFuse(real);
      // A lazy unmount ends the connection once its last user is gone: wait for that only so long.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, Math.max(graceMs, 1000))))]);
      clearTimeout(timer);
      clearInterval(watchDetach);
      release();
    },
  };
}

async function main(): Promise<number> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mfsd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (loaded.version || !loaded.config) {
    process.stdout.write(`mfsd ${omfsVersion()}\n`);
    return 0;
  }
  const cfg = loaded.config;
  let args: MountArgs | null;
  try {
    args = mountArgs(cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mfsd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  let mount: HostedMount | null = null;
  let admin: MfsdAdmin;
  try {
    daemon = await startDaemon(cfg);
    const running = daemon;
    // mount.mfs hands `mount -t mfs` to this daemon (admin socket): the same checks and code as the config's mount.
    const mountNow = async (m: MountConfig): Promise<HostedMount> => {
      const c: MfsdConfig = { ...cfg, mount: m };
      let a: MountArgs;
      try {
        a = mountArgs(c)!;
      } catch (err) {
        if (err instanceof ConfigError) throw new StartupError(err.message.replace(/^mount\.options: /, ''), 2);
        throw err;
      }
      return hostMount(c, a, running);
    };
    admin = new MfsdAdmin(cfg, daemon, mountNow, (line) => process.stderr.write(`mfsd: ${line}\n`));
    try {
      if (args) {
        mount = await hostMount(cfg, args, daemon);
        admin.adopt(cfg.mount!.path, mount);
      }
      await admin.listen().catch((err: unknown) => {
        throw new StartupError(err instanceof Error ? err.message : String(err), 1);
      });
    } catch (err) {
      await mount?.stop(0);
      await daemon.stop(0);
      throw err;
    }
  } catch (err) {
    if (err instanceof StartupError) {
      releaseGrpcLines(false);
      process.stderr.write(`mfsd: ${err.message}\n`);
      return err.exitCode;
    }
    releaseGrpcLines(true);
    throw err;
  }
  releaseGrpcLines(true);
  if (cfg.insecure) process.stderr.write('mfsd: WARNING: --insecure: plaintext, and any peer is accepted without a certificate\n');
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals += 1;
      if (signals === 1) {
        process.stderr.write(`mfsd: ${sig}: draining in-flight calls (up to ${cfg.shutdownGraceMs} ms)\n`);
        // The mount first: its calls to this node end before the file service closes.
        admin.stop(cfg.shutdownGraceMs).then(() => daemon.stop()).then(() => {
          process.stderr.write('mfsd: stopped\n');
          resolve(0);
        }, (err: unknown) => {
          process.stderr.write(`mfsd: error while stopping: ${String(err)}\n`);
          resolve(1);
        });
      } else {
        process.stderr.write(`mfsd: ${sig} again: cancelling in-flight calls\n`);
        void daemon.stop(0);
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP re-reads the openMosix map (the cluster changed); nothing else is reloaded: the
    // DFSA tables are re-read on use when mfsctl set* changes them.
    process.on('SIGHUP', () => {
      void daemon.reloadMap().then((line) => process.stderr.write(`mfsd: SIGHUP: ${line}\n`));
      void admin.reloadMaps().then((lines) => lines.forEach((line) => process.stderr.write(`mfsd: SIGHUP: ${line}\n`)));
    });
    // Discovery: a node heard joining or going silent changes the mounts' membership as a SIGHUP would.
    daemon.discovery?.on('change', () => {
      void admin.reloadMaps().then((lines) => lines.forEach((line) => process.stderr.write(`mfsd: discovery: ${line}\n`)));
    });
    // Ready only once the handlers are in place: whoever waits for this line may signal at once
    // (a SIGHUP before its handler would kill the daemon).
    if (mount) process.stdout.write(`${mount.line}\n`);
    process.stdout.write(`${daemon.readyLine}\n`);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mfsd: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
