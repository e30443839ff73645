// The one opcode table: for each request kind, which FileSystem method serves it and how its
// result is encoded. A missing method answers ENOSYS; INIT, INTERRUPT and DESTROY are the
// session's own business and are not here.
import { constants } from 'node:os';
import type { Request, RequestOf } from './decode.js';
import {
  DirBuffer, encodeAttr, encodeCreate, encodeEntry, encodeLock, encodeLseek, encodeOpen, encodeStatfs,
  encodeWrite, encodeXattrSize, replyBuffer,
} from './encode.js';
import { ANSWERED_ELSEWHERE, type FileSystem, type RequestContext } from './filesystem.js';

const nameByErrno = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The E-name of an errno number ('ENOENT' for 2), or undefined for a number Linux does not define. */
export function errnoName(errno: number): string | undefined {
  return nameByErrno.get(errno);
}

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
/** A reply now when the filesystem answered synchronously, else a promise of one. */
export type MaybeReply = Reply | Promise<Reply>;
type Handler<K extends Request['op']> = (fs: FileSystem, ctx: RequestContext, req: RequestOf<K>) => MaybeReply;

/**
 * Encode the filesystem's answer now if it gave one synchronously, else when its promise settles.
 * Most passthrough operations are synchronous syscalls: answering them without a promise and a
 * microtask per request is measurably cheaper (bench/fuse-passthrough.ts, stat and unlink).
 */
function then<T>(answer: T | Promise<T>, encode: (value: T) => Reply): MaybeReply {
  return answer instanceof Promise ? answer.then(encode) : encode(answer);
}

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
  LOOKUP: (fs, ctx, r) => then((fs.lookup ?? missing).call(fs, ctx, r), (v) => encodeEntry(r.header.unique, v)),
  GETATTR: (fs, ctx, r) => then((fs.getattr ?? missing).call(fs, ctx, r), (v) => encodeAttr(r.header.unique, v)),
  SETATTR: (fs, ctx, r) => then((fs.setattr ?? missing).call(fs, ctx, r), (v) => encodeAttr(r.header.unique, v)),
  READLINK: (fs, ctx, r) => then((fs.readlink ?? missing).call(fs, ctx, r), (target) =>
    dataReply(r.header.unique, typeof target === 'string' ? Buffer.from(target) : target)),
  SYMLINK: (fs, ctx, r) => then((fs.symlink ?? missing).call(fs, ctx, r), (v) => encodeEntry(r.header.unique, v)),
  MKNOD: (fs, ctx, r) => then((fs.mknod ?? missing).call(fs, ctx, r), (v) => encodeEntry(r.header.unique, v)),
  MKDIR: (fs, ctx, r) => then((fs.mkdir ?? missing).call(fs, ctx, r), (v) => encodeEntry(r.header.unique, v)),
  UNLINK: (fs, ctx, r) => then((fs.unlink ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  RMDIR: (fs, ctx, r) => then((fs.rmdir ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  RENAME: (fs, ctx, r) => then((fs.rename ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  LINK: (fs, ctx, r) => then((fs.link ?? missing).call(fs, ctx, r), (v) => encodeEntry(r.header.unique, v)),
  OPEN: (fs, ctx, r) => then((fs.open ?? missing).call(fs, ctx, r), (v) => encodeOpen(r.header.unique, v)),
  READ: (fs, ctx, r) => then((fs.read ?? missing).call(fs, ctx, r), (v) => (v === ANSWERED_ELSEWHERE ? null : dataReply(r.header.unique, v))),
  WRITE: (fs, ctx, r) => then((fs.write ?? missing).call(fs, ctx, r), (v) => encodeWrite(r.header.unique, v)),
  STATFS: (fs, ctx, r) => then((fs.statfs ?? missing).call(fs, ctx, r), (v) => encodeStatfs(r.header.unique, v)),
  RELEASE: (fs, ctx, r) => then(fs.release?.(ctx, r), () => empty(r.header.unique)),
  FSYNC: (fs, ctx, r) => then((fs.fsync ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  SETXATTR: (fs, ctx, r) => then((fs.setxattr ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  GETXATTR: (fs, ctx, r) => then((fs.getxattr ?? missing).call(fs, ctx, r), (v) => xattrReply(r.header.unique, r.size, v)),
  LISTXATTR: (fs, ctx, r) => then((fs.listxattr ?? missing).call(fs, ctx, r), (v) => xattrReply(r.header.unique, r.size, v)),
  REMOVEXATTR: (fs, ctx, r) => then((fs.removexattr ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  FLUSH: (fs, ctx, r) => then((fs.flush ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  OPENDIR: (fs, ctx, r) => then((fs.opendir ?? missing).call(fs, ctx, r), (v) => encodeOpen(r.header.unique, v)),
  READDIR: (fs, ctx, r) => {
    const out = new DirBuffer(r.header.unique, r.size);
    return then((fs.readdir ?? missing).call(fs, ctx, r, out), () => out.finish());
  },
  READDIRPLUS: (fs, ctx, r) => {
    const out = new DirBuffer(r.header.unique, r.size);
    return then((fs.readdirplus ?? missing).call(fs, ctx, r, out), () => out.finish());
  },
  RELEASEDIR: (fs, ctx, r) => then(fs.releasedir?.(ctx, r), () => empty(r.header.unique)),
  FSYNCDIR: (fs, ctx, r) => then((fs.fsyncdir ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  GETLK: (fs, ctx, r) => then((fs.getlk ?? missing).call(fs, ctx, r), (v) => encodeLock(r.header.unique, v)),
  SETLK: (fs, ctx, r) => then((fs.setlk ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  SETLKW: (fs, ctx, r) => then((fs.setlk ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  ACCESS: (fs, ctx, r) => then((fs.access ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  CREATE: (fs, ctx, r) => then((fs.create ?? missing).call(fs, ctx, r), (c) => encodeCreate(r.header.unique, c.entry, c.open)),
  FALLOCATE: (fs, ctx, r) => then((fs.fallocate ?? missing).call(fs, ctx, r), () => empty(r.header.unique)),
  LSEEK: (fs, ctx, r) => then((fs.lseek ?? missing).call(fs, ctx, r), (v) => encodeLseek(r.header.unique, v)),
  COPY_FILE_RANGE: (fs, ctx, r) => then((fs.copyFileRange ?? missing).call(fs, ctx, r), (v) => encodeWrite(r.header.unique, v)),
  FORGET: (fs, _ctx, r) => (fs.forget?.(r.header.nodeId, r.nlookup), null),
  BATCH_FORGET: (fs, _ctx, r) => {
    for (const f of r.forgets) fs.forget?.(f.nodeId, f.nlookup);
    return null;
  },
};
