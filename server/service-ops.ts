// The operations of the file service, once, for every way a request arrives: a unary RPC
// (file-service.ts) or a frame on a session (session.ts). Each takes the Peer the request belongs
// to (a connection for unary calls, a session for session frames), a plain request object as
// decoded from the wire, and an AbortSignal that fires when the caller goes away; it returns the
// reply object. The peer decides whose open files the request sees and owns its locks.
//
// Read, Write and ReadDir are streams on the unary service (file-service.ts drives io.read,
// io.write and listing.readDir with stream callbacks); on a session they are one request and one
// reply each, through the adapters at the end of this table (readWhole, writeOne, readDirBatch),
// which call the same core functions.
import { Errno } from '../proto/errno.js';
import { ATTR, DATA, NAMES, type Callbacks, type Change } from './callbacks.js';
import { callbackRules, type EntryOut, type Op } from './ops-callbacks.js';
import type { LocalFs } from './local-fs.js';
import type { LockTable } from './locks.js';
import type { OpenFileTable, OpenFiles } from './open-files.js';
import * as extra from './ops-extra.js';
import * as io from './ops-io.js';
import * as copying from './ops-copy.js';
import * as locking from './ops-locks.js';
import * as meta from './ops-meta.js';
import * as names from './ops-names.js';
import * as listing from './ops-readdir.js';
import type { Peer } from './peers.js';
import { bigU64, callerOf, u64, type U64, type WireCaller } from './wire.js';

export interface OpsContext { lfs: LocalFs; locks: LockTable; table: OpenFileTable; callbacks: Callbacks }

type In<F extends (...args: never[]) => unknown, I extends number> = Parameters<F>[I];
export interface ReleaseIn { caller: WireCaller; fh: string | number; flush_locks: boolean; client_id: string; lock_owner: string | number }

/** Largest read or write one session request may carry (the unary service streams bigger ones). */
export const MAX_IO = 1 << 20;

/** The operation table with callbacks: replies register what they let a session cache, changes invalidate it (ops-callbacks.ts). */
// eslint-disable-next-line @typescript-eslint/explicit-function-return-type -- the table's type is its definition
export function makeOps(ctx: OpsContext) {
  const raw = makeRawOps(ctx);
  const { caching, changing, withAttrsAfter, childIno, appending, entryCaching, createdIn, inoOfHandle, attr, name, ino } = callbackRules(ctx);
  /** The reply also carries the directory's attributes after the change (ops-callbacks.ts withAttrsAfter). */
  const inDir = (r: { dir: Buffer }) => ({ dirs: [r.dir] });
  const handleIno = (r: { handle: Buffer }): bigint | undefined => inoOfHandle(r.handle);
  const range = (i: bigint | undefined, offset: U64 | number, length: U64 | number): Change | undefined =>
    i === undefined ? undefined : { kind: 'data', ino: i, offset: bigU64(offset), length: bigU64(length) };
  /** unlink, rmdir: the name, its directory's attributes and the removed file's. */
  const removing = <Q extends { dir: Buffer; name: Buffer }, R>(op: Op<Q, R>) =>
    changing<Q, R, bigint | undefined>(op, (r: Q, _reply, victim) => [...createdIn(r), victim === undefined ? undefined : attr(victim)], (r: Q): Promise<bigint | undefined> => childIno(r.dir, r.name));
  const made = <Q extends { dir: Buffer; name: Buffer }>(op: Op<Q, EntryOut>) =>
    caching(changing(op, (r: Q) => createdIn(r)), entryCaching);

  return {
    ...raw,
    root: caching(raw.root, (_r, e) => [[ino(e.attr.ino), ATTR | NAMES]]),
    lookup: caching(raw.lookup, entryCaching, (r) => [[inoOfHandle(r.dir), NAMES]]),
    getAttr: caching(raw.getAttr, (r, a) => [[ino(a.attr.ino), ATTR]]),
    setAttr: caching(changing(raw.setAttr, (r, a) => [
      attr(ino(a.attr.ino)), r.valid_size ? range(ino(a.attr.ino), r.size, 0) : undefined,
    ]), (_r, a) => [[ino(a.attr.ino), ATTR]]),
    readlink: caching(raw.readlink, (r) => [[handleIno(r), ATTR]]),
    open: caching(changing(raw.open, (r) => ((r.flags & O_TRUNC) !== 0 ? [attr(handleIno(r)!), range(handleIno(r), 0, 0)] : [])),
      (r) => [[handleIno(r), ATTR | DATA]]),
    create: withAttrsAfter(caching(changing(raw.create, (r, c) => [
      ...createdIn(r), ...((r.flags & O_TRUNC) !== 0 ? [attr(ino(c.entry.attr.ino)), range(ino(c.entry.attr.ino), 0, 0)] : []),
    ]), (r, c) => [...entryCaching(r, c.entry), [ino(c.entry.attr.ino), DATA]]), inDir),
    mkdir: withAttrsAfter(caching(made(raw.mkdir), (_r, e) => [[ino(e.attr.ino), NAMES]]), inDir),
    mknod: withAttrsAfter(made(raw.mknod), inDir),
    symlink: withAttrsAfter(made(raw.symlink), inDir),
    link: withAttrsAfter(caching(changing(raw.link, (r, e) => [name(inoOfHandle(r.new_dir)!, r.new_name), attr(inoOfHandle(r.new_dir)!), attr(ino(e.attr.ino))]), entryCaching),
      (r) => ({ dirs: [r.new_dir] })),
    unlink: withAttrsAfter(caching(removing(raw.unlink), (r) => [[inoOfHandle(r.dir), NAMES]]), inDir),
    rmdir: withAttrsAfter(caching(removing(raw.rmdir), (r) => [[inoOfHandle(r.dir), NAMES]]), inDir),
    rename: withAttrsAfter(caching(changing(raw.rename, (r, _reply, pre: { moved?: bigint; replaced?: bigint } | undefined) => {
      const from = inoOfHandle(r.old_dir)!;
      const to = inoOfHandle(r.new_dir)!;
      return [name(from, r.old_name), name(to, r.new_name), attr(from), to === from ? undefined : attr(to),
        pre?.moved === undefined ? undefined : attr(pre.moved), pre?.replaced === undefined ? undefined : attr(pre.replaced)];
    }, async (r) => ({ moved: await childIno(r.old_dir, r.old_name), replaced: await childIno(r.new_dir, r.new_name).catch(() => undefined) })),
    (r) => [[inoOfHandle(r.old_dir), NAMES], [inoOfHandle(r.new_dir), NAMES]]),
    (r) => ({ dirs: [r.old_dir, r.new_dir], child: { dir: r.new_dir, name: r.new_name } })),
    setXattr: changing(raw.setXattr, (r) => [attr(handleIno(r)!)]),
    removeXattr: changing(raw.removeXattr, (r) => [attr(handleIno(r)!)]),
    fallocate: changing(raw.fallocate, (r) => [attr(handleIno(r)!), range(handleIno(r), r.offset, r.length)]),
    copyFileRange: changing(raw.copyFileRange, (r, w) => [attr(inoOfHandle(r.handle_out)!), range(inoOfHandle(r.handle_out), r.offset_out, w.written)]),
    readWhole: caching(raw.readWhole, (r) => [[handleIno(r), DATA]]),
    writeOne: (p: Peer, r: io.WriteChunkIn, s?: AbortSignal) => {
      // Where an O_APPEND write landed is not its offset: everything from 0 on may have changed.
      const append = appending(p, r.fh, r.handle);
      return changing(raw.writeOne, (q: io.WriteChunkIn, w) => [
        attr(handleIno(q)!), append ? range(handleIno(q), 0, 0) : range(handleIno(q), q.offset, w.written),
      ])(p, r, s);
    },
    /** The unary Write stream: the whole file's data, as the chunks' offsets are gone by the end. */
    writeStream: async (p: Peer, chunks: AsyncIterable<io.WriteChunkIn>) => {
      let first: io.WriteChunkIn | undefined;
      const seen = (async function* () {
        for await (const c of chunks) {
          first ??= c;
          yield c;
        }
      })();
      const reply = await raw.writeStream(p, seen);
      const i = first ? handleIno(first) : undefined;
      if (i !== undefined && ctx.callbacks.active) await ctx.callbacks.invalidate([attr(i), range(i, 0, 0)!], p.key);
      return reply;
    },
    readDirBatch: async (p: Peer, r: In<typeof listing.readDir, 1>, max: number, signal: AbortSignal) => {
      const since = ctx.callbacks.now();
      const batch = await raw.readDirBatch(p, r, max, signal);
      const dir = inoOfHandle(r.dir);
      if (dir !== undefined) ctx.callbacks.registered(p.key, dir, NAMES, since);
      for (const e of batch.entries) if (e.entry) ctx.callbacks.registered(p.key, ino(e.entry.attr.ino), ATTR, since);
      return batch;
    },
  };
}

const O_TRUNC = 0o1000;

function makeRawOps(ctx: OpsContext) {
  const { lfs, locks, table } = ctx;
  const files = (peer: Peer): OpenFiles => table.forPeer(peer);
  /** Open/Create for `peer`: EMFILE before anything is opened or created when it is full. */
  const opening = async <T>(peer: Peer, fn: (files: OpenFiles) => Promise<T>): Promise<T> => {
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

  return {
    root: (_p: Peer, r: In<typeof meta.root, 1>) => meta.root(lfs, r),
    lookup: (_p: Peer, r: In<typeof meta.lookup, 1>) => meta.lookup(lfs, r),
    getAttr: (p: Peer, r: In<typeof meta.getAttr, 2>) => meta.getAttr(lfs, files(p), r),
    setAttr: (p: Peer, r: In<typeof meta.setAttr, 2>) => meta.setAttr(lfs, files(p), r),
    access: (_p: Peer, r: In<typeof meta.access, 1>) => meta.access(lfs, r),
    open: (p: Peer, r: In<typeof io.open, 2>) => opening(p, (mine) => io.open(lfs, mine, r)),
    create: (p: Peer, r: In<typeof io.create, 2>) => opening(p, (mine) => io.create(lfs, mine, r)),
    fsync: (p: Peer, r: In<typeof io.fsync, 2>) => io.fsync(lfs, files(p), r),
    release: async (p: Peer, r: ReleaseIn) => {
      callerOf(r.caller);
      const file = files(p).release(bigU64(r.fh));
      if (r.flush_locks && file) locking.unlockAll(locks, file.id.toString(), `${r.client_id}:${bigU64(r.lock_owner)}`, 0, p.key);
      return {};
    },
    mkdir: (_p: Peer, r: In<typeof names.mkdir, 1>) => names.mkdir(lfs, r),
    mknod: (_p: Peer, r: In<typeof names.mknod, 1>) => names.mknod(lfs, r),
    unlink: (_p: Peer, r: In<typeof names.unlink, 1>) => names.unlink(lfs, r),
    rmdir: (_p: Peer, r: In<typeof names.rmdir, 1>) => names.rmdir(lfs, r),
    rename: (_p: Peer, r: In<typeof names.rename, 1>) => names.rename(lfs, r),
    link: (_p: Peer, r: In<typeof names.link, 1>) => names.link(lfs, r),
    symlink: (_p: Peer, r: In<typeof names.symlink, 1>) => names.symlink(lfs, r),
    readlink: (_p: Peer, r: In<typeof meta.readlink, 1>) => meta.readlink(lfs, r),
    statFs: (p: Peer, r: In<typeof meta.statFs, 2>) => meta.statFs(lfs, files(p), r),
    getXattr: (p: Peer, r: In<typeof extra.getXattr, 2>) => extra.getXattr(lfs, files(p), r),
    setXattr: (p: Peer, r: In<typeof extra.setXattr, 2>) => extra.setXattr(lfs, files(p), r),
    listXattr: (p: Peer, r: In<typeof extra.listXattr, 2>) => extra.listXattr(lfs, files(p), r),
    removeXattr: (p: Peer, r: In<typeof extra.removeXattr, 2>) => extra.removeXattr(lfs, files(p), r),
    fallocate: (p: Peer, r: In<typeof io.fallocate, 2>) => io.fallocate(lfs, files(p), r),
    lseek: (p: Peer, r: In<typeof io.lseek, 2>) => io.lseek(lfs, files(p), r),
    copyFileRange: (p: Peer, r: copying.CopyIn) => copying.copyFileRange(lfs, files(p), r),
    getLk: (p: Peer, r: locking.LockIn) => locking.getLk(locks, lfs, r, p.key),
    setLk: (p: Peer, r: locking.LockIn) => locking.setLk(locks, lfs, r, p.key),
    /** Waits for the lock; `signal` (the caller went away) aborts the wait. */
    setLkW: (p: Peer, r: locking.LockIn, signal: AbortSignal) => locking.setLkW(locks, lfs, r, signal, p.key),

    // Streams on the unary service, driven by file-service.ts with its own callbacks.
    readStream: (p: Peer, r: In<typeof io.read, 2>, emit: (chunk: Buffer) => Promise<void>) => io.read(lfs, files(p), r, emit),
    writeStream: (p: Peer, chunks: AsyncIterable<io.WriteChunkIn>) => io.write(lfs, files(p), chunks),
    readDirStream: (_p: Peer, r: In<typeof listing.readDir, 1>, emit: listing.EmitEntry) => listing.readDir(lfs, r, emit),

    // Session adapters: one request, one reply.
    /** A read of at most MAX_IO bytes as one Buffer (short at end of file, empty past it). */
    readWhole: async (p: Peer, r: In<typeof io.read, 2>, signal: AbortSignal) => {
      if (u64(r.size, 'size') > MAX_IO) throw new Errno('EINVAL', `a session read moves at most ${MAX_IO} bytes per request`);
      const parts: Buffer[] = [];
      await io.read(lfs, files(p), r, async (chunk) => {
        if (signal.aborted) throw new Errno('EINTR', 'session ended');
        parts.push(chunk);
      });
      return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
    },
    /** One write of at most MAX_IO bytes. */
    writeOne: (p: Peer, r: io.WriteChunkIn) => {
      if (Buffer.isBuffer(r.data) && r.data.length > MAX_IO) throw new Errno('EINVAL', `a session write moves at most ${MAX_IO} bytes per request`);
      return io.write(lfs, files(p), [r] as unknown as AsyncIterable<io.WriteChunkIn>);
    },
    /**
     * At most `max` entries after the cookie, and whether the listing ended. Stopping inside a getdents
     * batch drops the rest of that batch (the next request reads it again from its cookie): bounded
     * memory per request over a little repeated work for directories larger than `max`.
     */
    readDirBatch: async (_p: Peer, r: In<typeof listing.readDir, 1>, max: number, signal: AbortSignal) => {
      const entries: listing.DirEntryOut[] = [];
      let eof = true;
      await listing.readDir(lfs, r, (e) => {
        if (signal.aborted) return false;
        entries.push(e);
        if (entries.length < max) return true;
        eof = false;
        return false;
      });
      if (signal.aborted) throw new Errno('EINTR', 'session ended');
      return { entries, eof };
    },
  };
}

export type Ops = ReturnType<typeof makeOps>;
