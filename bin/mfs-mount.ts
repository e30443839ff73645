#!/usr/bin/env node
// mfs-mount --map FILE --node N --tls-ca F --tls-cert F --tls-key F [-o ...] MOUNTPOINT: mounts the
// whole cluster of the map at MOUNTPOINT (fuse/mfs), in the foreground. SIGINT/SIGTERM unmount and
// exit 0; `umount MOUNTPOINT` also ends it. Exit 2 on bad arguments or map, 1 if the mount fails
// (then nothing is mounted). A composition root for now: later mfsd hosts the mount itself.
import { credentials } from '@grpc/grpc-js';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dialTarget } from '../cluster/addresses.js';
import { Discovery } from '../cluster/discovery.js';
import { parseMap, type ClusterMap } from '../cluster/map-file.js';
import { mergeMembership } from '../cluster/membership.js';
import {
  cleanStaleMount, DEFAULT_BUSY_POLL_US, InitFlag, MFS_READAHEAD, mountAt, mountFuse, openFuseDevice, ROOT_ID, Session, setMountReadahead, unmountFuse,
} from '../fuse/kernel/index.js';
import { MfsFs } from '../fuse/mfs/mfs-fs.js';
import { MountArgsError, parseMountArgs, USAGE, type MountArgs } from '../fuse/mfs/mount-options.js';
import { NodeConn } from '../fuse/mfs/node-conn.js';
import { ProcessTable } from '../fuse/mfs/special/index.js';
import { IoAccounting } from '../fuse/mfs/io-accounting.js';
import { nodeReportSink } from '../fuse/mfs/io-report.js';
import { adminTables } from '../dfsa/admin-tables.js';
import type { NodeLink } from '../proto/node-link.js';
import { readNow, yieldCpu } from '../sys/index.js';
import { tryOpenProcEvents } from '../sys/proc-events.js';

/**
 * `--state-dir DIR` (the node's mfsd state directory): serve /mfs/.admin from its DFSA tables.
 * Taken out of argv here, before mount-options.ts sees the rest; without it there is no .admin
 * (a standalone mount does not know where its node keeps them).
 */
function takeStateDir(argv: string[]): { rest: string[]; stateDir: string | undefined } {
  const rest: string[] = [];
  let stateDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state-dir') {
      stateDir = argv[++i];
      if (!stateDir) fail(2, `--state-dir needs a directory\n${USAGE} [--state-dir DIR]`);
    } else if (a.startsWith('--state-dir=')) {
      stateDir = a.slice('--state-dir='.length);
    } else {
      rest.push(a);
    }
  }
  return { rest, stateDir };
}

/** How often the mount checks that it is still attached (mountinfo), for umount -l. */
const DETACH_POLL_MS = 1000;

function fail(code: number, message: string): never {
  process.stderr.write(`mfs-mount: ${message}\n`);
  process.exit(code);
}

function readInputs(args: MountArgs): { map: ClusterMap; ca: Buffer; cert: Buffer; key: Buffer } {
  try {
    const map = parseMap(readFileSync(args.map, 'utf8'), args.map);
    return { map, ca: readFileSync(args.tlsCa), cert: readFileSync(args.tlsCert), key: readFileSync(args.tlsKey) };
  } catch (err) {
    fail(2, err instanceof Error ? err.message : String(err));
  }
}

async function main(): Promise<void> {
  let args: MountArgs;
  try {
    args = parseMountArgs(takeStateDir(process.argv.slice(2)).rest);
  } catch (err) {
    if (err instanceof MountArgsError) fail(2, `${err.message}\n${USAGE}`);
    throw err;
  }
  const { map, ca, cert, key } = readInputs(args);
  cleanStaleMount(args.mountPoint); // a dead mount answers ENOTCONN: clear it first
  try {
    if (!statSync(args.mountPoint).isDirectory()) fail(2, `MOUNTPOINT ${args.mountPoint} is not a directory`);
  } catch (err) {
    fail(2, `MOUNTPOINT ${args.mountPoint}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const real = realpathSync(args.mountPoint);
  const already = mountAt(real);
  if (already) fail(1, `MOUNTPOINT ${real} is already a mount point (${already.fsType} ${already.source}); unmount it first`);

  // The client certificate names node<N>: every node's session checks it against Hello.node.
  const creds = credentials.createSsl(ca, key, cert);
  // One connection per node of the map; `previous` keeps those whose address did not change.
  const connect = (m: ClusterMap, previous: ReadonlyMap<number, NodeConn>): Map<number, NodeConn> => {
    const next = new Map<number, NodeConn>();
    for (const n of m.nodes.values()) {
      // Every address of the node, tried in order by the channel (an ALIAS when the first does not answer).
      const address = dialTarget(n.addresses);
      const old = previous.get(n.id);
      next.set(n.id, old?.address === address ? old : new NodeConn(n.id, address, {
        myNode: args.node, creds, tls: { ca, cert, key }, soft: args.soft, timeoMs: args.timeoMs, idleMs: args.idleMs,
        // DFSA: every operation counted for its process; links open only once mounted, after `accounting` is made.
        wrapLink: (link: NodeLink, node: number) => accounting.wrap(link, node),
      }));
    }
    return next;
  };
  let conns = connect(map, new Map());
  // The special directories' per-process state (/mfs/selected is inherited at fork, lastexec follows
  // exec, exits are forgotten) comes from the kernel's proc events; without them (a kernel that
  // refuses them to this user, or has none) the table finds parents through /proc and bounds
  // itself as an LRU.
  const procEvents = tryOpenProcEvents();
  if (!procEvents.events) process.stderr.write(`mfs-mount: no proc events (${procEvents.reason}): special directories without fork/exec/exit tracking\n`);
  const processes = new ProcessTable({ thisNode: args.node, ...(procEvents.events ? { events: procEvents.events } : {}) });
  // Per-process I/O statistics to this node's own mfsd (NodeService ReportProcessIo, node<N>'s
  // certificate), a batch a second at most. A map without this node: counted, reported nowhere.
  const ownNode = map.nodes.get(args.node);
  const reporter = ownNode ? nodeReportSink(dialTarget(ownNode.addresses), creds) : undefined;
  const accounting = new IoAccounting({
    sink: reporter ?? { report: () => undefined },
    ...(procEvents.events ? { events: procEvents.events } : {}),
    log: (line) => process.stderr.write(`mfs-mount: ${line}\n`),
  });
  const fs = new MfsFs(map, conns, {
    mountPoint: real, readOnly: args.readOnly, cacheSeconds: args.cacheSeconds, lockClientId: `mfs-mount:node${args.node}:${process.pid}`,
    thisNode: args.node, processes,
    ...(args.debug ? { log: (line: string) => process.stderr.write(line + '\n') } : {}),
  });
  const { stateDir } = takeStateDir(process.argv.slice(2));
  if (stateDir) fs.special.setAdmin(adminTables(stateDir), (line) => process.stderr.write(`mfs-mount: ${line}\n`));

  let fd: number;
  try {
    fd = openFuseDevice();
  } catch (err) {
    fail(1, `cannot open /dev/fuse: ${(err as Error).message}`);
  }
  const session = new Session(fd, fs, {
    debug: args.debug,
    // No "." / ".." lookups: not NFS-exportable yet.
    withoutFlags: InitFlag.EXPORT_SUPPORT,
    // A large WRITE's buffer serves later requests once its handler succeeded: nothing of the mount
    // keeps the data after (the session has sent it, the own files parse it to text).
    reuseWriteBuffers: true,
    busyPoll: { microseconds: DEFAULT_BUSY_POLL_US, readNow, idle: yieldCpu },
  });
  fs.cache.attach(session.notifier);

  let mounted = false;
  let stopRequested = false;
  const stop = (): void => {
    if (stopRequested) return;
    stopRequested = true;
    if (mounted) void unmountFuse(real);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // The map file's nodes; with -o discovery= the nodes the daemons announce on the LAN join them
  // (the map decides for the nodes it names). Listening only: this mount serves no node.
  let fileMap = map;
  const discovery = args.discovery ? new Discovery({ ...args.discovery, intervalMs: 1000, missed: 3 }, null) : null;
  const applyMembership = (why: string): void => {
    const next = mergeMembership(fileMap, discovery?.nodes() ?? []);
    const before = conns;
    conns = connect(next, before);
    void fs.setMembership(next, conns).then(() => {
      // After the kernel forgot them: retiring drops what was cached from each left or moved node.
      for (const [k, c] of before) if (conns.get(k) !== c) c.retire();
      process.stdout.write(`mfs-mount: ${why}: nodes ${[...conns.keys()].join(',')} of ${args.map}\n`);
    });
  };
  // SIGHUP: re-read the map, as openMosix's setpe did. A map that does not parse changes nothing.
  process.on('SIGHUP', () => {
    try {
      fileMap = parseMap(readFileSync(args.map, 'utf8'), args.map);
    } catch (err) {
      process.stderr.write(`mfs-mount: SIGHUP: map not changed: ${err instanceof Error ? err.message : String(err)}\n`);
      return;
    }
    applyMembership('SIGHUP');
  });
  if (discovery) {
    discovery.on('change', () => applyMembership('discovery'));
    discovery.on('error', (err: Error) => process.stderr.write(`mfs-mount: discovery: ${err.message}\n`));
    try {
      await discovery.start();
    } catch (err) {
      fail(1, `discovery on ${args.discovery!.group}:${args.discovery!.port}: ${(err as Error).message}`);
    }
  }

  try {
    // allow_other: every user of this machine sees /mfs; default_permissions: the kernel checks
    // mode bits against the owning node's attributes (kept fresh by callbacks), and the node checks
    // again as the caller.
    await mountFuse(fd, { source: 'mfs', mountPoint: real, allowOther: true, defaultPermissions: true, subtype: 'mfs' });
  } catch (err) {
    fail(1, (err as Error).message);
  }
  session.start();
  await session.initialized;
  mounted = true;
  setMountReadahead(real, MFS_READAHEAD);
  // The device's notify worker starts with the first notification and takes a while to come up:
  // start it now (a harmless drop of the root's attributes), not when the first invalidation of a
  // node is waiting for it.
  void session.notifier.invalInode(ROOT_ID, -1, 0);
  process.stdout.write(`mfs-mount: mounted nodes ${[...conns.keys()].join(',')} of ${args.map} on ${real} as node ${args.node}\n`);
  if (stopRequested) void unmountFuse(real);
  // umount -l detaches the mount while processes may still be inside it; the connection (and we)
  // live until the last of them is done. From then on no call may wait for an absent node.
  const watchDetach = setInterval(() => {
    if (mountAt(real)?.fsType === 'fuse.mfs') return;
    clearInterval(watchDetach);
    for (const c of conns.values()) c.detach();
  }, DETACH_POLL_MS);
  watchDetach.unref();
  const reason = await session.closed;
  clearInterval(watchDetach);
  discovery?.close();
  for (const c of conns.values()) c.retire();
  processes.close();
  await accounting.close();
  reporter?.close();
  procEvents.events?.close();
  await session.device.close();
  if (reason !== 'ENODEV' && reason !== 'ECONNABORTED') process.stderr.write(`mfs-mount: session ended: ${reason}\n`);
  process.exit(0);
}

main().catch((err: unknown) => fail(1, err instanceof Error ? (err.stack ?? err.message) : String(err)));
