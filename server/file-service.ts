// The omfs FileService over gRPC: handlers only translate between the wire and the core (ops-*.ts),
// and every failure becomes a status carrying its errno (proto/errno.ts). A handler never throws
// out: bad input of any kind is an error reply and the daemon stays up.
import type * as grpc from '@grpc/grpc-js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { errnoToStatus } from '../proto/errno.js';
import { fileServiceDefinition } from '../proto/load.js';
import type { ExportSpec } from './export-spec.js';
import { HandleStore } from './handles.js';
import { LocalFs } from './local-fs.js';
import type { LockTable } from './locks.js';
import { OpenFiles } from './open-files.js';
import * as extra from './ops-extra.js';
import * as io from './ops-io.js';
import * as meta from './ops-meta.js';
import * as names from './ops-names.js';
import { bigU64 } from './wire.js';

export type { ExportSpec };
export interface FileServiceOptions { nodeId: number; exports: ExportSpec[]; stateDir: string; locks: LockTable }
export interface FileService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  close(): Promise<void>;
}

// Requests are typed by the core functions; the gRPC layer hands over whatever proto-loader decoded.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Decoded = any;

function unary(fn: (req: Decoded, call: grpc.ServerUnaryCall<Decoded, unknown>) => Promise<unknown>): grpc.handleUnaryCall<Decoded, unknown> {
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
  const files = new OpenFiles();
  const locks = opts.locks;

  const implementation: grpc.UntypedServiceImplementation = {
    Root: unary((r) => meta.root(lfs, r)),
    Lookup: unary((r) => meta.lookup(lfs, r)),
    GetAttr: unary((r) => meta.getAttr(lfs, r)),
    SetAttr: unary((r) => meta.setAttr(lfs, files, r)),
    Access: unary((r) => meta.access(lfs, r)),
    ReadDir: (call: grpc.ServerWritableStream<Decoded, unknown>) => {
      meta.readDir(lfs, call.request, (e) => !call.cancelled && (call.write(e), true))
        .then(() => call.end(), (err: unknown) => call.emit('error', errnoToStatus(err)));
    },
    Open: unary((r) => io.open(lfs, files, r)),
    Create: unary((r) => io.create(lfs, files, r)),
    Read: (call: grpc.ServerWritableStream<Decoded, unknown>) => {
      io.read(lfs, files, call.request, (data) => new Promise<void>((resolve) => {
        if (call.cancelled) throw Object.assign(new Error('cancelled'), { code: 'EINTR' });
        if (call.write({ data })) resolve();
        else call.once('drain', resolve);
      })).then(() => call.end(), (err: unknown) => call.emit('error', errnoToStatus(err)));
    },
    Write: (call: grpc.ServerReadableStream<Decoded, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      io.write(lfs, files, call).then((reply) => callback(null, reply), (err: unknown) => callback(errnoToStatus(err)));
    },
    Fsync: unary((r) => io.fsync(lfs, files, r)),
    Release: unary(async (r) => {
      const file = files.release(bigU64(r.fh));
      if (r.flush_locks && file) extra.unlockAll(locks, file.id.toString(), `${r.client_id}:${bigU64(r.lock_owner)}`, 0);
      return {};
    }),
    Mkdir: unary((r) => names.mkdir(lfs, r)),
    Mknod: unary((r) => names.mknod(lfs, r)),
    Unlink: unary((r) => names.unlink(lfs, r)),
    Rmdir: unary((r) => names.rmdir(lfs, r)),
    Rename: unary((r) => names.rename(lfs, r)),
    Link: unary((r) => names.link(lfs, r)),
    Symlink: unary((r) => names.symlink(lfs, r)),
    Readlink: unary((r) => meta.readlink(lfs, r)),
    StatFs: unary((r) => meta.statFs(lfs, r)),
    GetXattr: unary((r) => extra.getXattr(lfs, r)),
    SetXattr: unary((r) => extra.setXattr(lfs, r)),
    ListXattr: unary((r) => extra.listXattr(lfs, r)),
    RemoveXattr: unary((r) => extra.removeXattr(lfs, r)),
    Fallocate: unary((r) => io.fallocate(lfs, files, r)),
    GetLk: unary((r) => extra.getLk(locks, lfs, r)),
    SetLk: unary((r) => extra.setLk(locks, lfs, r)),
    SetLkW: unary((r, call) => {
      // A client cancelling its call (or going away) aborts the wait.
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      return extra.setLkW(locks, lfs, r, abort.signal);
    }),
  };

  return {
    definition: fileServiceDefinition(),
    implementation,
    async close() {
      files.closeAll();
      lfs.close();
      await store.close();
    },
  };
}
