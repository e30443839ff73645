// The one opcode table: for each request kind, which FileSystem method serves it and how its
// result is encoded. A missing method answers ENOSYS; INIT, INTERRUPT and DESTROY are the
// session's own business and are not here.
import { constants } from 'node:os';
import type { Request, RequestOf } from './decode.js';
import {
  DirBuffer, encodeAttr, encodeCreate, encodeEntry, encodeLock, encodeLseek, encodeOpen, encodeStatfs,
  encodeWrite, encodeXattrSize, replyBuffer,
} from './encode.js';
import type { FileSystem, RequestContext } from './filesystem.js';

/** An errno raised by this layer itself (it imports nothing of the rest of omfs). */
export class KernelErrno extends Error {
  readonly errno: number;
  constructor(readonly code: keyof typeof constants.errno) {
    super(code);
    this.errno = constants.errno[code];
  }
}

/** What a handler gives back: reply bytes (one buffer or header+data pieces), or null for no reply. */
export type Reply = Buffer | Buffer[] | null;
type Handler<K extends Request['op']> = (fs: FileSystem, ctx: RequestContext, req: RequestOf<K>) => Promise<Reply>;

function missing(): never {
  throw new KernelErrno('ENOSYS');
}

const empty = (u: bigint): Buffer => replyBuffer(u, 0);

/** Data reply: the header and the payload as two pieces, written with one writev. */
function dataReply(unique: bigint, data: Buffer): Buffer[] {
  const header = replyBuffer(unique, 0);
  header.writeUInt32LE(16 + data.length, 0);
  return data.length === 0 ? [header] : [header, data];
}

/** getxattr/listxattr: size 0 asks for the length; a too-small buffer is ERANGE. */
function xattrReply(unique: bigint, askedSize: number, value: Buffer): Reply {
  if (askedSize === 0) return encodeXattrSize(unique, value.length);
  if (value.length > askedSize) throw new KernelErrno('ERANGE');
  return dataReply(unique, value);
}

type Table = { [K in Request['op']]?: Handler<K> };

export const operations: Table = {
  LOOKUP: async (fs, ctx, r) => encodeEntry(r.header.unique, await (fs.lookup ?? missing).call(fs, ctx, r)),
  GETATTR: async (fs, ctx, r) => encodeAttr(r.header.unique, await (fs.getattr ?? missing).call(fs, ctx, r)),
  SETATTR: async (fs, ctx, r) => encodeAttr(r.header.unique, await (fs.setattr ?? missing).call(fs, ctx, r)),
  READLINK: async (fs, ctx, r) => {
    const target = await (fs.readlink ?? missing).call(fs, ctx, r);
    return dataReply(r.header.unique, typeof target === 'string' ? Buffer.from(target) : target);
  },
  SYMLINK: async (fs, ctx, r) => encodeEntry(r.header.unique, await (fs.symlink ?? missing).call(fs, ctx, r)),
  MKNOD: async (fs, ctx, r) => encodeEntry(r.header.unique, await (fs.mknod ?? missing).call(fs, ctx, r)),
  MKDIR: async (fs, ctx, r) => encodeEntry(r.header.unique, await (fs.mkdir ?? missing).call(fs, ctx, r)),
  UNLINK: async (fs, ctx, r) => (await (fs.unlink ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  RMDIR: async (fs, ctx, r) => (await (fs.rmdir ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  RENAME: async (fs, ctx, r) => (await (fs.rename ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  LINK: async (fs, ctx, r) => encodeEntry(r.header.unique, await (fs.link ?? missing).call(fs, ctx, r)),
  OPEN: async (fs, ctx, r) => encodeOpen(r.header.unique, await (fs.open ?? missing).call(fs, ctx, r)),
  READ: async (fs, ctx, r) => dataReply(r.header.unique, await (fs.read ?? missing).call(fs, ctx, r)),
  WRITE: async (fs, ctx, r) => encodeWrite(r.header.unique, await (fs.write ?? missing).call(fs, ctx, r)),
  STATFS: async (fs, ctx, r) => encodeStatfs(r.header.unique, await (fs.statfs ?? missing).call(fs, ctx, r)),
  RELEASE: async (fs, ctx, r) => (await fs.release?.(ctx, r), empty(r.header.unique)),
  FSYNC: async (fs, ctx, r) => (await (fs.fsync ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  SETXATTR: async (fs, ctx, r) => (await (fs.setxattr ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  GETXATTR: async (fs, ctx, r) => xattrReply(r.header.unique, r.size, await (fs.getxattr ?? missing).call(fs, ctx, r)),
  LISTXATTR: async (fs, ctx, r) => xattrReply(r.header.unique, r.size, await (fs.listxattr ?? missing).call(fs, ctx, r)),
  REMOVEXATTR: async (fs, ctx, r) => (await (fs.removexattr ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  FLUSH: async (fs, ctx, r) => (await (fs.flush ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  OPENDIR: async (fs, ctx, r) => encodeOpen(r.header.unique, await (fs.opendir ?? missing).call(fs, ctx, r)),
  READDIR: async (fs, ctx, r) => {
    const out = new DirBuffer(r.header.unique, r.size);
    await (fs.readdir ?? missing).call(fs, ctx, r, out);
    return out.finish();
  },
  READDIRPLUS: async (fs, ctx, r) => {
    const out = new DirBuffer(r.header.unique, r.size);
    await (fs.readdirplus ?? missing).call(fs, ctx, r, out);
    return out.finish();
  },
  RELEASEDIR: async (fs, ctx, r) => (await fs.releasedir?.(ctx, r), empty(r.header.unique)),
  FSYNCDIR: async (fs, ctx, r) => (await (fs.fsyncdir ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  GETLK: async (fs, ctx, r) => encodeLock(r.header.unique, await (fs.getlk ?? missing).call(fs, ctx, r)),
  SETLK: async (fs, ctx, r) => (await (fs.setlk ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  SETLKW: async (fs, ctx, r) => (await (fs.setlk ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  ACCESS: async (fs, ctx, r) => (await (fs.access ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  CREATE: async (fs, ctx, r) => {
    const c = await (fs.create ?? missing).call(fs, ctx, r);
    return encodeCreate(r.header.unique, c.entry, c.open);
  },
  FALLOCATE: async (fs, ctx, r) => (await (fs.fallocate ?? missing).call(fs, ctx, r), empty(r.header.unique)),
  LSEEK: async (fs, ctx, r) => encodeLseek(r.header.unique, await (fs.lseek ?? missing).call(fs, ctx, r)),
  COPY_FILE_RANGE: async (fs, ctx, r) => encodeWrite(r.header.unique, await (fs.copyFileRange ?? missing).call(fs, ctx, r)),
  FORGET: async (fs, _ctx, r) => (fs.forget?.(r.header.nodeId, r.nlookup), null),
  BATCH_FORGET: async (fs, _ctx, r) => {
    for (const f of r.forgets) fs.forget?.(f.nodeId, f.nlookup);
    return null;
  },
};
