// The omfs FileService over gRPC: handlers only translate between the wire and the core (ops-*.ts),
// and every failure becomes a status carrying its errno (proto/errno.ts). A handler never throws
// out: bad input of any kind is an error reply and the daemon stays up.
//
// Decisions and known limits (details at each definition):
// - Handles, file ids and inode numbers: server/handles.ts. Confinement: server/local-fs.ts.
// - Names and symlink targets are bytes end to end (any bytes but '/' and NUL, not only UTF-8), from
//   the wire to the *at syscalls of sys/ (a directory fd plus one name); ReadDir sends them as stored.
// - Peers (server/peers.ts): every call belongs to the peer (connection) it came on. Each peer may
//   hold limits.openFilesPerPeer open files (then Open/Create fail EMFILE for that peer only) and
//   have limits.requestsPerPeer calls in flight (then EAGAIN, Peers.interceptor). When the peer
//   ends (its connection closes: server/transport.ts), its open files are closed and its locks and
//   lock waiters dropped. Without trackConnections() on the grpc.Server nothing would end a peer.
// - I/O: Open/Create return an fh: an open fd usable only by the peer that opened it and the uid it
//   was opened for. fh 0 = stateless I/O (opened for the call, closed after). Any other fh the
//   peer does not hold is EBADF, never reopened (a made-up fh must not cost an fd), so an fh does
//   not survive a daemon restart: the client opens again. Reads and writes stream 1 MiB chunks.
//   GetAttr, SetAttr, Fallocate, Fsync, StatFs and the xattr calls go through the caller's fh when
//   the request carries one the server knows: an open file keeps working after its name is removed.
// - Rename is renameat2(2): RENAME_NOREPLACE and RENAME_EXCHANGE are the kernel's, atomic.
// - New files are created by root then chowned/chmodded to the caller: for an instant they are root's.
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
import { fileServiceDefinition } from '../proto/load.js';
import type { ExportSpec } from './export-spec.js';
import { HandleStore } from './handles.js';
import { LocalFs } from './local-fs.js';
import type { LockTable } from './locks.js';
import { OpenFileTable, type OpenFiles } from './open-files.js';
import * as extra from './ops-extra.js';
import * as io from './ops-io.js';
import * as locking from './ops-locks.js';
import * as meta from './ops-meta.js';
import * as names from './ops-names.js';
import * as listing from './ops-readdir.js';
import { Peers, type Peer } from './peers.js';
import { bigU64, callerOf, type WireCaller } from './wire.js';

export type { ExportSpec };
export interface FileServiceOptions {
  nodeId: number; exports: ExportSpec[]; stateDir: string; locks: LockTable;
  /** Who calls, and their limits; default: a private registry with the default limits. */
  peers?: Peers;
}
export interface FileService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  peers: Peers;
  /** Open files of every peer (tests and diagnostics). */
  openFiles: OpenFileTable;
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
  try {
    lfs = await LocalFs.open(opts.nodeId, opts.exports, store);
  } catch (err) {
    await store.close();
    throw err;
  }
  const peers = opts.peers ?? new Peers();
  const table = new OpenFileTable(peers.limits.openFilesPerPeer);
  const locks = opts.locks;
  peers.whenEnded((peer) => {
    table.releasePeer(peer);
    locks.releasePeer(peer.key);
  });
  const files = (call: { getPeer(): string }): OpenFiles => table.forPeer(peers.of(call));
  /** Open/Create for the calling peer: EMFILE before anything is opened or created when it is full. */
  const opening = async <T>(call: { getPeer(): string }, fn: (files: OpenFiles) => Promise<T>): Promise<T> => {
    const peer: Peer = peers.of(call);
    table.checkRoom(peer);
    peer.opening += 1;
    try {
      return await fn(table.forPeer(peer));
    } finally {
      peer.opening -= 1;
      // The peer went away while this call ran: what the call just opened goes with it.
      if (peer.gone) table.releasePeer(peer);
    }
  };

  const implementation: grpc.UntypedServiceImplementation = {
    Root: unary((r: Parameters<typeof meta.root>[1]) => meta.root(lfs, r)),
    Lookup: unary((r: Parameters<typeof meta.lookup>[1]) => meta.lookup(lfs, r)),
    GetAttr: unary((r: Parameters<typeof meta.getAttr>[2], call) => meta.getAttr(lfs, files(call), r)),
    SetAttr: unary((r: Parameters<typeof meta.setAttr>[2], call) => meta.setAttr(lfs, files(call), r)),
    Access: unary((r: Parameters<typeof meta.access>[1]) => meta.access(lfs, r)),
    ReadDir: (call: grpc.ServerWritableStream<Parameters<typeof listing.readDir>[1], unknown>) => {
      listing.readDir(lfs, call.request, (e) => {
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
    Open: unary((r: Parameters<typeof io.open>[2], call) => opening(call, (mine) => io.open(lfs, mine, r))),
    Create: unary((r: Parameters<typeof io.create>[2], call) => opening(call, (mine) => io.create(lfs, mine, r))),
    Read: (call: grpc.ServerWritableStream<Parameters<typeof io.read>[2], unknown>) => {
      io.read(lfs, files(call), call.request, (data) => new Promise<void>((resolve) => {
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
    Write: (call: grpc.ServerReadableStream<io.WriteChunkIn, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      io.write(lfs, files(call), call).then((reply) => callback(null, reply), (err: unknown) => callback(errnoToStatus(err)));
    },
    Fsync: unary((r: Parameters<typeof io.fsync>[2], call) => io.fsync(lfs, files(call), r)),
    Release: unary(async (r: { caller: WireCaller; fh: string; flush_locks: boolean; client_id: string; lock_owner: string }, call) => {
      callerOf(r.caller);
      const file = files(call).release(bigU64(r.fh));
      if (r.flush_locks && file) locking.unlockAll(locks, file.id.toString(), `${r.client_id}:${bigU64(r.lock_owner)}`, 0, peers.of(call).key);
      return {};
    }),
    Mkdir: unary((r: Parameters<typeof names.mkdir>[1]) => names.mkdir(lfs, r)),
    Mknod: unary((r: Parameters<typeof names.mknod>[1]) => names.mknod(lfs, r)),
    Unlink: unary((r: Parameters<typeof names.unlink>[1]) => names.unlink(lfs, r)),
    Rmdir: unary((r: Parameters<typeof names.rmdir>[1]) => names.rmdir(lfs, r)),
    Rename: unary((r: Parameters<typeof names.rename>[1]) => names.rename(lfs, r)),
    Link: unary((r: Parameters<typeof names.link>[1]) => names.link(lfs, r)),
    Symlink: unary((r: Parameters<typeof names.symlink>[1]) => names.symlink(lfs, r)),
    Readlink: unary((r: Parameters<typeof meta.readlink>[1]) => meta.readlink(lfs, r)),
    StatFs: unary((r: Parameters<typeof meta.statFs>[2], call) => meta.statFs(lfs, files(call), r)),
    GetXattr: unary((r: Parameters<typeof extra.getXattr>[2], call) => extra.getXattr(lfs, files(call), r)),
    SetXattr: unary((r: Parameters<typeof extra.setXattr>[2], call) => extra.setXattr(lfs, files(call), r)),
    ListXattr: unary((r: Parameters<typeof extra.listXattr>[2], call) => extra.listXattr(lfs, files(call), r)),
    RemoveXattr: unary((r: Parameters<typeof extra.removeXattr>[2], call) => extra.removeXattr(lfs, files(call), r)),
    Fallocate: unary((r: Parameters<typeof io.fallocate>[2], call) => io.fallocate(lfs, files(call), r)),
    GetLk: unary((r: Parameters<typeof locking.getLk>[2], call) => locking.getLk(locks, lfs, r, peers.of(call).key)),
    SetLk: unary((r: Parameters<typeof locking.setLk>[2], call) => locking.setLk(locks, lfs, r, peers.of(call).key)),
    SetLkW: unary((r: locking.LockIn, call) => {
      // A client cancelling its call (or going away) aborts the wait.
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      return locking.setLkW(locks, lfs, r, abort.signal, peers.of(call).key);
    }),
  };

  return {
    definition: fileServiceDefinition(),
    implementation,
    peers,
    openFiles: table,
    async close() {
      table.closeAll();
      lfs.close();
      await store.close();
    },
  };
}
