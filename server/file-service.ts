// The omfs FileService over gRPC: handlers only translate between the wire and the core (ops-*.ts,
// through the one operation table of service-ops.ts), and every failure becomes a status carrying
// its errno (proto/errno.ts). A handler never throws out: bad input of any kind is an error reply
// and the daemon stays up. The same table serves the session service (session.ts): one stream per
// client over which every operation is a frame; the unary RPCs stay for tools and tests.
//
// Decisions and known limits (details at each definition):
// - Handles, file ids and inode numbers: server/handles.ts. Confinement: server/local-fs.ts.
// - Names and symlink targets are bytes end to end (any bytes but '/' and NUL, not only UTF-8), from
//   the wire to the *at syscalls of sys/ (a directory fd plus one name); ReadDir sends them as stored.
// - Peers (server/peers.ts): every unary call belongs to the peer (connection) it came on, every
//   session frame to its session's peer. Each peer may hold limits.openFilesPerPeer open files
//   (then Open/Create fail EMFILE for that peer only) and have limits.requestsPerPeer calls in
//   flight (then EAGAIN: Peers.interceptor for connections, session.ts for sessions). When the peer
//   ends (its connection closes: server/transport.ts; its session's lease expires: session.ts), its
//   open files are closed and its locks and lock waiters dropped. Without trackConnections() on the
//   grpc.Server nothing would end a connection's peer. A session's peer outlives its stream for its
//   lease, and a daemon restart: its open files and locks are persisted in <stateDir>/sessions
//   (session-store.ts) and reinstated at start (session-restore.ts).
// - I/O: Open/Create return an fh: an open fd usable only by the peer that opened it and the uid it
//   was opened for. fh 0 = stateless I/O (opened for the call, closed after). Any other fh the
//   peer does not hold is EBADF, never reopened (a made-up fh must not cost an fd), so a
//   connection's fh does not survive a daemon restart: the client opens again. A session's fhs do
//   (reopened at start from its persisted record, same numbers). Reads and writes stream 1 MiB chunks
//   (on a session: one request of at most 1 MiB each).
//   GetAttr, SetAttr, Fallocate, Fsync, StatFs and the xattr calls go through the caller's fh when
//   the request carries one the server knows: an open file keeps working after its name is removed.
// - Rename is renameat2(2): RENAME_NOREPLACE and RENAME_EXCHANGE are the kernel's, atomic.
// - New files are created as the caller, with its umask (as-caller.ts): never root's for an instant.
// - xattrs by syscall, never on symlinks; XATTR_CREATE/REPLACE are the kernel's (atomic).
//   Fallocate: every mode the kernel accepts, on the blocking-call worker. Mknod: mknodat(2)
//   (fifo, socket; devices for root only). No child processes.
// - Times are reported (statx) and set (utimensat) to the nanosecond.
// - A file or directory moved by a local process (not through the service) makes handles below
//   it ESTALE until looked up again; a file reusing an inode number is told apart by birth time,
//   and gets a new handle generation: an old handle to the number is ESTALE (handles.ts).
// - ReadDir: cookies are the backing filesystem's d_off; entries go out one getdents batch at a time,
//   waiting while the client does not take them (ops-readdir.ts).
//   A file with several hard links is found under any of the last 8 names it was seen under.
import type * as grpc from '@grpc/grpc-js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { errnoToStatus } from '../proto/errno.js';
import { SESSION_DIR_BATCH } from '../proto/session-codec.js';
import { fileServiceDefinition } from '../proto/load.js';
import { DEFAULT_SESSIONS, type SessionSettings } from './config.js';
import type { ExportSpec } from './export-spec.js';
import { Callbacks } from './callbacks.js';
import { watchDirectChanges } from './direct-changes.js';
import { HandleStore } from './handles.js';
import { LocalLink } from './local-link.js';
import { LocalFs } from './local-fs.js';
import type { LockTable } from './locks.js';
import { OpenFileTable } from './open-files.js';
import type { WriteChunkIn } from './ops-io.js';
import type * as locking from './ops-locks.js';
import { Peers, type Peer } from './peers.js';
import { makeOps } from './service-ops.js';
import { createSessionService, type SessionService } from './session.js';
import type { SessionGate } from './mfs-access.js';
import { restoreSessions } from './session-restore.js';
import { SessionStore } from './session-store.js';

export type { ExportSpec };
export interface FileServiceOptions {
  nodeId: number; exports: ExportSpec[]; stateDir: string; locks: LockTable;
  /** Who calls, and their limits; default: a private registry with the default limits. */
  peers?: Peers;
  /** Mutual TLS is on: a session's Hello must claim the node its client certificate names (CN node<N>). */
  tls?: boolean;
  /** Leases, callbacks, direct changes, slow exports; default DEFAULT_SESSIONS. */
  sessions?: Partial<SessionSettings>;
  /** Who may open or resume a session (mfsctl nomfs: server/mfs-access.ts); default: everyone. */
  gate?: SessionGate;
}
export interface FileService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** The session service (proto/session.proto): every operation above over one stream per client. */
  session: SessionService;
  /** Who may cache what (sessions' callbacks), and the invalidations that keep them right. */
  callbacks: Callbacks;
  peers: Peers;
  /** Open files of every peer (tests and diagnostics). */
  openFiles: OpenFileTable;
  /**
   * A link to this node's exports that runs every operation in this process (server/local-link.ts):
   * the mount hosted by this mfsd reaches its own node through it, callbacks included.
   */
  openLocalLink(): LocalLink;
  close(): Promise<void>;
}

// Request types come from the core functions (the shapes proto-loader decodes); the core checks
// every field it uses, so a garbage value is an errno, never a crash.
function unary<Req>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => Promise<unknown>): grpc.handleUnaryCall<Req, unknown> {
  return (call, callback) => {
    let done: Promise<unknown>;
    try {
      done = fn(call.request, call);
    } catch (err) {
      done = Promise.reject(err);
    }
    done.then((reply) => callback(null, reply), (err: unknown) => callback(errnoToStatus(err)));
  };
}

export async function createFileService(opts: FileServiceOptions): Promise<FileService> {
  if (!Number.isInteger(opts.nodeId) || opts.nodeId < 0 || opts.nodeId > 0xffff) throw new RangeError('nodeId must be 0..65535');
  const dbDir = join(opts.stateDir, 'handles');
  mkdirSync(dbDir, { recursive: true });
  const store = await HandleStore.open(dbDir);
  let lfs: LocalFs;
  let sessionStore: SessionStore;
  try {
    lfs = await LocalFs.open(opts.nodeId, opts.exports, store, { slowCallMs: opts.sessions?.slowCallMs ?? DEFAULT_SESSIONS.slowCallMs });
  } catch (err) {
    await store.close();
    throw err;
  }
  try {
    const sessionDir = join(opts.stateDir, 'sessions');
    mkdirSync(sessionDir, { recursive: true });
    sessionStore = await SessionStore.open(sessionDir);
  } catch (err) {
    lfs.close();
    await store.close();
    throw err;
  }
  const peers = opts.peers ?? new Peers();
  const table = new OpenFileTable(peers.limits.openFilesPerPeer);
  const locks = opts.locks;
  const release = (peer: Peer): void => {
    table.releasePeer(peer);
    locks.releasePeer(peer.key);
  };
  peers.whenEnded(release);
  const settings: SessionSettings = { ...DEFAULT_SESSIONS, ...opts.sessions };
  const callbacks = new Callbacks(opts.nodeId, settings.callbacksPerSession);
  const ops = makeOps({ lfs, locks, table, callbacks });
  const direct = watchDirectChanges(lfs, callbacks, settings);
  const peerOf = (call: { getPeer(): string }): Peer => peers.of(call);
  /** A unary RPC that is `op` for the calling connection's peer. */
  const rpc = <Req>(op: (peer: Peer, req: Req) => Promise<unknown>) => unary((r: Req, call) => op(peerOf(call), r));

  const implementation: grpc.UntypedServiceImplementation = {
    Root: rpc(ops.root),
    Lookup: rpc(ops.lookup),
    GetAttr: rpc(ops.getAttr),
    SetAttr: rpc(ops.setAttr),
    Access: rpc(ops.access),
    ReadDir: (call: grpc.ServerWritableStream<Parameters<typeof ops.readDirStream>[1], unknown>) => {
      ops.readDirStream(peerOf(call), call.request, (e) => {
        if (call.cancelled) return false;
        if (call.write(e)) return true;
        // The stream's buffer is full: the listing waits until the client takes it or goes away.
        return new Promise<boolean>((resolve) => {
          const go = (): void => {
            call.off('drain', go);
            call.off('cancelled', go);
            resolve(!call.cancelled);
          };
          call.once('drain', go);
          call.once('cancelled', go);
        });
      }).then(() => call.end(), (err: unknown) => call.emit('error', errnoToStatus(err)));
    },
    Open: rpc(ops.open),
    Create: rpc(ops.create),
    Read: (call: grpc.ServerWritableStream<Parameters<typeof ops.readStream>[1], unknown>) => {
      ops.readStream(peerOf(call), call.request, (data) => new Promise<void>((resolve) => {
        if (call.cancelled) throw Object.assign(new Error('cancelled'), { code: 'EINTR' });
        if (call.write({ data })) return resolve();
        // Wait for the client to take more, or for it to go away (the next chunk then stops the read).
        const go = (): void => {
          call.off('drain', go);
          call.off('cancelled', go);
          resolve();
        };
        call.once('drain', go);
        call.once('cancelled', go);
      })).then(() => call.end(), (err: unknown) => call.emit('error', errnoToStatus(err)));
    },
    Write: (call: grpc.ServerReadableStream<WriteChunkIn, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      ops.writeStream(peerOf(call), call).then((reply) => callback(null, reply), (err: unknown) => callback(errnoToStatus(err)));
    },
    Fsync: rpc(ops.fsync),
    Release: rpc(ops.release),
    Mkdir: rpc(ops.mkdir),
    Mknod: rpc(ops.mknod),
    Unlink: rpc(ops.unlink),
    Rmdir: rpc(ops.rmdir),
    Rename: rpc(ops.rename),
    Link: rpc(ops.link),
    Symlink: rpc(ops.symlink),
    Readlink: rpc(ops.readlink),
    StatFs: rpc(ops.statFs),
    GetXattr: rpc(ops.getXattr),
    SetXattr: rpc(ops.setXattr),
    ListXattr: rpc(ops.listXattr),
    RemoveXattr: rpc(ops.removeXattr),
    Fallocate: rpc(ops.fallocate),
    GetLk: rpc(ops.getLk),
    SetLk: rpc(ops.setLk),
    SetLkW: unary((r: locking.LockIn, call) => {
      // A client cancelling its call (or going away) aborts the wait.
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      return ops.setLkW(peerOf(call), r, abort.signal);
    }),
  };
  // The sessions of the last run: their locks and open files back, each away with a fresh lease.
  const restored = await restoreSessions(await sessionStore.load(), { lfs, peers, table, locks });
  const session = createSessionService({ ops, peers, nodeId: opts.nodeId, checkNodeCertificate: opts.tls ?? false, releaseLeftovers: release,
    callbacks, settings, store: sessionStore, locks, restored, ...(opts.gate ? { gate: opts.gate } : {}),
  });

  const localLinks = new Set<LocalLink>();
  const openLocalLink = (): LocalLink => {
    const link = new LocalLink({
      ops, peers, callbacks, nodeId: opts.nodeId, ackTimeoutMs: settings.leaseMs, dirBatch: SESSION_DIR_BATCH,
      releaseLeftovers: release, onClose: (l) => localLinks.delete(l),
    });
    localLinks.add(link);
    return link;
  };

  return {
    definition: fileServiceDefinition(),
    implementation,
    session,
    callbacks,
    peers,
    openFiles: table,
    openLocalLink,
    async close() {
      // The hosted mount is unmounted before this; a link still open ends with the service.
      for (const link of [...localLinks]) link.close();
      direct.close();
      // Sessions stay held on disk for the next start (a clean stop writes everything first).
      session.shutdown();
      await sessionStore.close();
      table.closeAll();
      lfs.close();
      await store.close();
    },
  };
}
