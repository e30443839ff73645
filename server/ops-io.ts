// Open files and data: open, create, read, write, fsync, release, fallocate.
import * as fs from 'node:fs';
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { reopenAs, withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { checkName } from './names.js';
import { asCaller } from './as-caller.js';
import { modeAfterWrite } from './permissions.js';
import { openForWriting, type OpenFiles, type OpenFile } from './open-files.js';
import { entryOf } from './ops-meta.js';
import { writableDir } from './ops-names.js';
import { bigU64, callerOf, u64, type Entry, type WireCaller } from './wire.js';

const C = fs.constants;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const O_ACCMODE = 3;
/** Open flags the server passes on; O_CREAT/O_EXCL are handled by Create, and O_NOFOLLOW is always added. */
const PASSED_FLAGS = O_ACCMODE | C.O_APPEND | C.O_TRUNC | C.O_SYNC | C.O_DSYNC | C.O_NOATIME | C.O_DIRECTORY;
export const CHUNK = 1 << 20;

const wantsWrite = (flags: number): boolean => (flags & O_ACCMODE) !== C.O_RDONLY || (flags & C.O_TRUNC) !== 0;

/**
 * Opens a resolved file for the caller, as the caller: the kernel makes the open(2) checks (read
 * and write permission with ACLs, O_NOATIME for the owner only) and, for O_TRUNC, clears the
 * set-id bits as it would for the caller.
 */
export function openNode(node: Node, flags: number): OpenFile {
  // Synchronous, so on the event loop whatever the export: openNodeAsync is the export-aware one.
  const how = openHow(node, flags);
  const fd = asCaller(node.caller, () => sys.openat(node.dirFd, node.name, how));
  const opened = sys.fstat(fd);
  if (opened.dev !== node.st.dev || opened.ino !== node.st.ino) {
    fs.closeSync(fd);
    throw new Errno('ESTALE', 'file was replaced');
  }
  return { fd, id: node.id, flags, uid: node.caller.uid };
}

/** openNode through the export's io (on its own threads when it is off-thread). */
export async function openNodeAsync(node: Node, flags: number): Promise<OpenFile> {
  const how = openHow(node, flags);
  const io = node.exp.io;
  const fd = await io.call(node.caller, 'openat', node.dirFd, node.name, how);
  try {
    const opened = await io.call(null, 'fstat', fd);
    if (opened.dev !== node.st.dev || opened.ino !== node.st.ino) throw new Errno('ESTALE', 'file was replaced');
  } catch (err) {
    io.close(fd);
    throw err;
  }
  return { fd: io.adopt(fd), id: node.id, flags, uid: node.caller.uid };
}

/** The open(2) flags for opening a resolved file for the caller, after mfsd's own checks. */
function openHow(node: Node, flags: number): number {
  const st = node.st;
  const isDir = sys.isDir(st.mode);
  if (sys.isLnk(st.mode)) throw new Errno('ELOOP', 'the server never follows symlinks');
  if ((flags & O_ACCMODE) === O_ACCMODE) throw new Errno('EINVAL', 'bad access mode');
  if (isDir && wantsWrite(flags)) throw new Errno('EISDIR', 'is a directory');
  if ((flags & C.O_DIRECTORY) && !isDir) throw new Errno('ENOTDIR', 'not a directory');
  if (wantsWrite(flags) && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  const fifo = (st.mode & S_IFMT) === S_IFIFO;
  return (flags & PASSED_FLAGS) | C.O_NOFOLLOW | (fifo ? C.O_NONBLOCK : 0);
}

/** Data is written as root (libuv's pool or the export's threads), so the set-id bits a write by the caller drops are dropped here. */
async function clearSetIdAfterWrite(fd: number, node: Node): Promise<void> {
  const mode = modeAfterWrite(await node.exp.io.call(null, 'fstat', fd), node.caller);
  if (mode !== null) await node.exp.io.call(null, 'fchmod', fd, mode);
}

export async function open(lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; handle: Buffer; flags: number }): Promise<{ fh: string }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  return { fh: files.add(await openNodeAsync(node, req.flags >>> 0)).toString() };
}

/**
 * Create without O_EXCL of a file that exists is an ordinary open (so it needs no write permission
 * on the directory, and works on a read-only export for reading). Null when the name is free.
 */
async function openExisting(
  lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; dir: Buffer; name: Buffer; flags: number },
): Promise<{ entry: Entry; fh: string } | null> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  const name = checkName(req.name);
  const st = await dir.exp.io.call(dir.caller, 'statatIfExists', dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
  if (!st) return null;
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  const node = await lfs.resolve(handle, callerOf(req.caller));
  const file = await openNodeAsync(node, req.flags >>> 0);
  let now: sys.Stat;
  try {
    now = await dir.exp.io.call(null, 'fstat', file.fd);
  } catch (err) {
    dir.exp.io.close(file.fd);
    throw err;
  }
  const fh = files.add(file);
  return { entry: entryOf(lfs, id, handle, now), fh: fh.toString() };
}

export async function create(
  lfs: LocalFs, files: OpenFiles,
  req: { caller: WireCaller; dir: Buffer; name: Buffer; flags: number; mode: number; umask: number },
): Promise<{ entry: Entry; fh: string }> {
  const flags = req.flags >>> 0;
  const existing = (flags & C.O_EXCL) === 0 ? await openExisting(lfs, files, req) : null;
  if (existing) return existing;
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  // Created as the caller with its umask (the kernel sets owner, group, mode and default ACL).
  const how = (flags & PASSED_FLAGS & ~C.O_DIRECTORY) | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
  const io = dir.exp.io;
  let fd: number;
  try {
    fd = await io.create(dir.caller, req.umask, 'openat', dir.fd, name, how, req.mode & 0o7777);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || (flags & C.O_EXCL)) throw err;
    // Created by someone else since the check: an ordinary open after all.
    const raced = await openExisting(lfs, files, req);
    if (!raced) throw err;
    return raced;
  }
  try {
    const st = await io.call(null, 'fstat', fd);
    const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st, true); // O_EXCL: a new inode
    return { entry: entryOf(lfs, id, handle, st), fh: files.add({ fd: io.adopt(fd), id, flags, uid: dir.caller.uid }).toString() };
  } catch (err) {
    io.close(fd);
    throw err;
  }
}

/**
 * The open file behind (handle, fh): the caller's open fd (used as it is, whether or not the file
 * still has a name), or for fh 0 (stateless I/O) the file opened from its handle with the open(2)
 * checks for this call only (`done` closes it). Any other fh this peer does not hold on this file
 * for this uid is EBADF: never reopened, so a made-up fh costs nothing (open-files.ts).
 */
export async function fileFor(
  lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; handle: Buffer; fh: string; flags: number },
): Promise<{ node: Node; file: OpenFile; done: () => void }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  if (node.open) return { node, file: node.open, done: () => {} };
  if (bigU64(req.fh) !== 0n) throw new Errno('EBADF', 'unknown open file');
  const file = await openNodeAsync(node, req.flags >>> 0);
  return { node, file, done: () => node.exp.io.close(file.fd) };
}

export async function read(
  lfs: LocalFs, files: OpenFiles,
  req: { caller: WireCaller; handle: Buffer; fh: string; flags: number; offset: string; size: string },
  emit: (chunk: Buffer) => Promise<void>,
): Promise<void> {
  const { node, file, done } = await fileFor(lfs, files, req);
  try {
    await readFile(node, file, req, emit);
  } finally {
    done();
  }
}

async function readFile(node: Node, file: OpenFile, req: { offset: string; size: string }, emit: (chunk: Buffer) => Promise<void>): Promise<void> {
  if ((file.flags & O_ACCMODE) === C.O_WRONLY) throw new Errno('EBADF', 'file not open for reading');
  if (sys.isDir(node.st.mode)) throw new Errno('EISDIR', 'is a directory');
  let pos = u64(req.offset, 'offset');
  let left = u64(req.size, 'size');
  while (left > 0) {
    const data = await node.exp.io.read(file.fd, Math.min(CHUNK, left), pos);
    if (data.length === 0) break;
    await emit(data);
    pos += data.length;
    left -= data.length;
  }
}

export interface WriteChunkIn { caller: WireCaller; handle: Buffer; fh: string; flags: number; offset: string; data: Buffer }

/** Writes a stream of chunks, each at its own offset (or at the end when the file was opened O_APPEND). */
export async function write(lfs: LocalFs, files: OpenFiles, chunks: AsyncIterable<WriteChunkIn>): Promise<{ written: string }> {
  let written = 0;
  let target: { node: Node; file: OpenFile; done: () => void } | undefined;
  try {
    for await (const chunk of chunks) {
      if (!target) {
        target = await fileFor(lfs, files, chunk);
        if ((target.file.flags & O_ACCMODE) === C.O_RDONLY) throw new Errno('EBADF', 'file not open for writing');
        if (target.node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
        await clearSetIdAfterWrite(target.file.fd, target.node);
      }
      written += await writeChunk(target.node, target.file, chunk);
    }
  } finally {
    target?.done();
  }
  return { written: String(written) };
}

async function writeChunk(node: Node, file: OpenFile, chunk: WriteChunkIn): Promise<number> {
  const data = Buffer.isBuffer(chunk.data) ? chunk.data : Buffer.alloc(0);
  const append = (file.flags & C.O_APPEND) !== 0;
  const pos = u64(chunk.offset, 'offset');
  if (data.length > 0) await node.exp.io.write(file.fd, data, append ? null : pos);
  return data.length;
}

export async function fsync(lfs: LocalFs, files: OpenFiles, req: { caller: WireCaller; handle: Buffer; fh: string; datasync: boolean }): Promise<Record<string, never>> {
  const { node, file, done } = await fileFor(lfs, files, { ...req, flags: C.O_RDONLY });
  try {
    await node.exp.io.fsync(file.fd, req.datasync);
  } finally {
    done();
  }
  return {};
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/**
 * lseek(2) with SEEK_DATA or SEEK_HOLE on the caller's open file: where the next data or hole
 * starts at or after `offset` (ENXIO beyond the end, as the kernel answers). The kernel moves a
 * file position itself for SEEK_SET, SEEK_CUR and SEEK_END: those never come here.
 */
export async function lseek(
  lfs: LocalFs, files: OpenFiles,
  req: { caller: WireCaller; handle: Buffer; fh: string; offset: string; whence: number },
): Promise<{ offset: number }> {
  const whence = req.whence >>> 0;
  if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new Errno('EINVAL', 'only SEEK_DATA and SEEK_HOLE are asked of the node');
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  if (!node.open) throw new Errno('EBADF', 'lseek needs an open file');
  const offset = u64(req.offset, 'offset');
  return { offset: await node.exp.io.call(null, 'lseek', node.open.fd, offset, whence) };
}

/**
 * fallocate(2) with the mode as given (KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, COLLAPSE_RANGE,
 * INSERT_RANGE...): the kernel decides what it supports and its errno comes back. It runs on the
 * blocking-call worker, through the caller's fh when that is open for writing, else on a file
 * opened for writing for this call (write permission checked).
 */
export async function fallocate(
  lfs: LocalFs, files: OpenFiles,
  req: { caller: WireCaller; handle: Buffer; fh: string; offset: string; length: string; mode: number },
): Promise<Record<string, never>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  if (node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  const type = node.st.mode & S_IFMT;
  if (type === S_IFIFO) throw new Errno('ESPIPE', 'a fifo');
  if (sys.isDir(node.st.mode)) throw new Errno('EISDIR', 'is a directory');
  if (!sys.isReg(node.st.mode)) throw new Errno('ENODEV', 'not a regular file');
  const mode = req.mode >>> 0;
  const offset = u64(req.offset, 'offset');
  const length = u64(req.length, 'length');
  // A local export's fallocate of a large range may take a while: the shared blocking-call worker,
  // unless the export has threads of its own.
  const xio = node.exp.io;
  const allocate = (fd: number): Promise<unknown> => (xio.offThread
    ? xio.call(null, 'fallocate', fd, mode, offset, length)
    : sys.runBlocking({ fn: 'fallocate', args: [fd, mode, offset, length] }));
  await withPinnedAsync(node, async (fd, io) => {
    if (io && openForWriting(node.open!)) {
      await allocate(fd);
      await clearSetIdAfterWrite(fd, node);
      return;
    }
    // Reopened for writing as the caller: the kernel checks write permission.
    const w = await reopenAs(node.exp, node.caller, fd, C.O_WRONLY);
    try {
      await allocate(w);
      await clearSetIdAfterWrite(w, node);
    } finally {
      xio.close(w);
    }
  });
  return {};
}
