// The core of the file service: resolves handles to files under an export without ever leaving it.
//
// Confinement: every export root is held open as a directory fd; a child is addressed by the *at
// syscalls (sys/) as a directory fd plus a single-component name (bytes), and the final component is
// never followed (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW, O_PATH). Directories on the way are opened the
// same way and kept in an LRU of fds. Resolving a handle walks its record chain up to the export
// root and checks, at every level, that the (dev, ino, birth time) found under the parent fd is the
// one recorded: a moved-away, replaced or deleted file is ESTALE. A handle's generation must be its
// record's: a handle of a file whose inode number was since reused is ESTALE (handles.ts). A file
// with several hard links is also looked for under the other names it was seen under. A request that names an open file (fh)
// of its caller uses that fd instead, so a file keeps working after its name is removed, as an
// open file does on the bare directory. Syscalls go through the export's ExportIo (export-io.ts):
// inline on the event loop for a healthy local export (short local syscalls, where any hop would
// cost more than it saves), on the export's own threads for one that is or may become slow.
import { closeSync, close as closeAsync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { Errno, toErrno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { HandleStore, namesOf, type FileName, type FileRecord, type FoundFile, type Sighting } from './handles.js';
import type { OpenFile, OpenFiles } from './open-files.js';
import { squash, type Caller } from './permissions.js';
import type { ExportSpec } from './export-spec.js';
import { bigU64, type U64 } from './wire.js';
import { DEFAULT_EXPORT_IO, ExportIo, type ExportIoSettings } from './export-io.js';

const O_RDONLY = 0;
const NOFOLLOW = sys.AT_SYMLINK_NOFOLLOW;
/** For the *at calls on an fd's own file: "" with these flags (a symlink's O_PATH fd included). */
export const ON_FD = sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW;
const MAX_DEPTH = 4096;
const RETIRE_GRACE_MS = 30_000;
const DOT = Buffer.from('.');
const NO_NAME = Buffer.alloc(0);

/** An export: its root fd and identity, and `io`, where its syscalls run (inline or on its own threads). */
export interface ExportCtx { id: number; spec: ExportSpec; rootId: bigint; rootFd: number; rootDev: number; rootIno: bigint; io: ExportIo }

/**
 * A resolved file: its statx, the directory fd it is named in and its name there (the export root
 * is "." in its own fd), and its parent's. When the request named an open file of its caller,
 * `open` is that file and the name is not used (dirFd -1): the file may have no name any more.
 */
export interface Node {
  exp: ExportCtx; id: bigint; caller: Caller; st: sys.Stat;
  dirFd: number; name: Buffer;
  parent: { id: bigint; fd: number; st: sys.Stat } | null;
  open?: OpenFile;
}

/** Birth time in ms exactly as Node's birthtimeMs computes it (records written before sys/ hold that). */
export function btimeMs(st: sys.Stat): number {
  return st.btime ? st.btime.sec * 1e3 + st.btime.nsec / 1e6 : 0;
}

/** The same file as recorded: same (dev, ino) and, when known, the same birth time. */
export function sameFile(st: sys.Stat, rec: FoundFile): boolean {
  return st.dev === rec.dev && st.ino === rec.ino && (!rec.btime || btimeMs(st) === rec.btime);
}

export function recordOf(parent: bigint, name: Buffer, st: sys.Stat): FoundFile {
  return { parent: parent.toString(), name, dev: st.dev, ino: st.ino, btime: btimeMs(st) };
}

/** Whether a file may have other names worth remembering (directories never do). */
export const multiLinked = (st: sys.Stat): boolean => !sys.isDir(st.mode) && st.nlink > 1;

const isStale = (err: unknown): boolean => (err as { code?: string } | null)?.code === 'ESTALE';

/** Devices remembered as served (notServed); beyond, the set starts again. */
const MAX_SERVED_DEVS = 1024;
const SERVED_DEVS_MS = 60_000;

export class LocalFs {
  readonly byId = new Map<number, ExportCtx>();
  readonly byPath = new Map<string, ExportCtx>();
  // An evicted directory fd is closed only after a grace period: an operation still in flight may
  // hold its number, and closing it at once would let the number be reused by another directory
  // (possibly of another export) under that operation's feet.
  // An fd of an export with calls still pending on its threads is kept past the grace period: a
  // call queued there may name it, however long the export takes to get to it.
  private readonly retired: Array<{ fd: number; at: number; io: ExportIo }> = [];
  private readonly dirFds = new LRUCache<string, { fd: number; io: ExportIo }>({ max: 1024, dispose: (d) => this.retire(d.fd, d.io) });
  private readonly reaper = setInterval(() => this.reap(Date.now() - RETIRE_GRACE_MS), RETIRE_GRACE_MS).unref();
  /** This machine's /proc, /sys and /dev mounts (sys/pseudo-fs.ts), read again when a device not seen yet shows up. */
  private pseudoDevs = sys.pseudoFsDevices();
  /** Devices found not to be one of those, forgotten every minute (a device number freed by an unmount is reused). */
  private readonly servedDevs = new Set<number>();
  private servedSince = Date.now();

  private constructor(readonly nodeId: number, readonly store: HandleStore, private readonly ioSettings: ExportIoSettings) {}

  /** `io`: where exports' syscalls run and when they move off-thread (export-io.ts; defaults for the rest). */
  static async open(nodeId: number, exports: ExportSpec[], store: HandleStore, io: Partial<ExportIoSettings> = {}): Promise<LocalFs> {
    const lfs = new LocalFs(nodeId, store, { ...DEFAULT_EXPORT_IO, ...io });
    try {
      for (const spec of exports) await lfs.addExport(spec);
    } catch (err) {
      lfs.close();
      throw err;
    }
    return lfs;
  }

  private async addExport(spec: ExportSpec): Promise<void> {
    // The export path itself may go through symlinks (it is the administrator's choice).
    let found: sys.Stat;
    try {
      found = sys.statat(sys.AT_FDCWD, spec.path, 0);
    } catch (err) {
      throw new Errno(toErrno(err).code, `export ${spec.path} is missing or unreadable`);
    }
    if (!sys.isDir(found.mode)) throw new Errno('ENOTDIR', `export ${spec.path} is not a directory`);
    const rootFd = sys.openat(sys.AT_FDCWD, spec.path, O_RDONLY | sys.O_DIRECTORY);
    const st = sys.fstat(rootFd);
    const id = await this.store.exportId(spec.path);
    const rootId = await this.store.localId(st.dev, st.ino);
    const ctx: ExportCtx = { id, spec, rootId, rootFd, rootDev: st.dev, rootIno: st.ino, io: ExportIo.forRoot(spec.path, rootFd, this.ioSettings) };
    this.byId.set(id, ctx);
    this.byPath.set(spec.path, ctx);
  }

  private retire(fd: number, io: ExportIo): void {
    this.retired.push({ fd, at: Date.now(), io });
  }

  private reap(before: number, all = false): void {
    const keep: typeof this.retired = [];
    for (const r of this.retired) {
      if (r.at > before || (!all && r.io.busy)) keep.push(r);
      else closeAsync(r.fd, () => {});
    }
    this.retired.splice(0, this.retired.length, ...keep);
  }

  close(): void {
    clearInterval(this.reaper);
    this.dirFds.clear();
    this.reap(Infinity, true);
    for (const ctx of this.byId.values()) {
      ctx.io.shutdown();
      closeSync(ctx.rootFd);
    }
    this.byId.clear();
  }

  /** The cluster-wide inode number: node number in the top 16 bits, the node-local id below. */
  clusterIno(localId: bigint): bigint {
    return (BigInt(this.nodeId) << 48n) | localId;
  }

  effectiveCaller(exp: ExportCtx, c: Caller): Caller {
    return exp.spec.rootSquash ? squash(c) : c;
  }

  exportOf(exportId: number): ExportCtx {
    const exp = this.byId.get(exportId);
    if (!exp) throw new Errno('ESTALE', 'unknown export');
    return exp;
  }

  /** A verified handle's export, file id, generation and the caller as this export treats it. */
  private identify(handle: unknown, rawCaller: Caller): { exp: ExportCtx; id: bigint; gen: number; caller: Caller } {
    const { exportId, id, gen } = this.store.parse(handle);
    const exp = this.exportOf(exportId);
    return { exp, id, gen, caller: this.effectiveCaller(exp, rawCaller) };
  }

  /** Resolves a handle; the kernel checks the caller's search permission on every directory from the export root down. */
  async resolve(handle: unknown, rawCaller: Caller): Promise<Node> {
    const { exp, id, gen, caller } = this.identify(handle, rawCaller);
    if (id === exp.rootId) {
      if (gen !== 0) throw new Errno('ESTALE', 'not the export root\'s handle');
      return { exp, id, caller, st: await exp.io.call(null, 'fstat', exp.rootFd), dirFd: exp.rootFd, name: DOT, parent: null };
    }
    const rec = await this.store.record(id);
    if (!rec || rec.parent === '') throw new Errno('ESTALE', 'unknown file');
    // The record now describes a newer file with this inode number: the handle's file is gone.
    if (rec.gen !== gen) throw new Errno('ESTALE', 'file is gone (its inode number was reused)');
    // The newest name first, then the other names of a hard-linked file. A name that is gone or
    // now another file is skipped; any other failure (a directory on the way not searchable) is
    // the answer when no name works.
    let failure: unknown;
    for (const at of namesOf(rec)) {
      try {
        const parent = await this.dir(exp, BigInt(at.parent), caller, 0);
        // As the caller: the kernel checks search permission on the parent (ACLs included).
        const st = await exp.io.call(caller, 'statatIfExists', parent.fd, at.name, NOFOLLOW);
        if (!st || !sameFile(st, rec)) continue;
        if (at.parent !== rec.parent || !at.name.equals(rec.name)) await this.store.promote(id, at);
        return { exp, id, caller, st, dirFd: parent.fd, name: at.name, parent: { id: BigInt(at.parent), fd: parent.fd, st: parent.st } };
      } catch (err) {
        if (!isStale(err)) failure ??= err;
      }
    }
    throw failure ?? new Errno('ESTALE', 'file is gone or was replaced');
  }

  /**
   * Resolves a handle for a request that may name an open file: when `fh` is open on this very file
   * for this caller, the file is used through that fd (its name may be gone: unlinked while open);
   * otherwise it is resolved by name like any handle.
   */
  async resolveFile(handle: unknown, rawCaller: Caller, files: OpenFiles, fh: U64 | number | undefined): Promise<Node> {
    const { exp, id, caller } = this.identify(handle, rawCaller);
    const open = files.get(bigU64(fh), id, caller.uid);
    if (!open) return this.resolve(handle, rawCaller);
    return { exp, id, caller, st: await exp.io.call(null, 'fstat', open.fd), dirFd: -1, name: NO_NAME, parent: null, open };
  }

  /** An open fd of directory `id` under `exp`, verified in place, with search permission above it. */
  private async dir(exp: ExportCtx, id: bigint, caller: Caller, depth: number): Promise<{ fd: number; st: sys.Stat }> {
    if (id === exp.rootId) return { fd: exp.rootFd, st: await exp.io.call(null, 'fstat', exp.rootFd) };
    if (depth > MAX_DEPTH) throw new Errno('ESTALE', 'directory chain too deep');
    const rec: FileRecord | undefined = await this.store.record(id);
    if (!rec || rec.parent === '') throw new Errno('ESTALE', 'unknown directory');
    const parent = await this.dir(exp, BigInt(rec.parent), caller, depth + 1);
    const st = await exp.io.call(caller, 'statatIfExists', parent.fd, rec.name, NOFOLLOW);
    if (!st || !sameFile(st, rec) || !sys.isDir(st.mode)) throw new Errno('ESTALE', 'directory is gone or was replaced');
    const key = id.toString();
    let fd = this.dirFds.get(key)?.fd;
    if (fd === undefined) {
      fd = await exp.io.call(null, 'openat', parent.fd, rec.name, O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW);
      const opened = await exp.io.call(null, 'fstat', fd).catch((err: unknown) => {
        exp.io.close(fd!);
        throw err;
      });
      if (opened.dev !== rec.dev || opened.ino !== rec.ino) {
        exp.io.close(fd);
        throw new Errno('ESTALE', 'directory was replaced');
      }
      // Another request may have opened it meanwhile (both awaited the export): keep one.
      const raced = this.dirFds.get(key);
      if (raced) {
        exp.io.close(fd);
        fd = raced.fd;
      } else this.dirFds.set(key, { fd, io: exp.io });
    }
    return { fd, st };
  }

  /**
   * Whether `st` is on /proc, /sys or /dev of this machine, mounted inside an export (an export of
   * "/"): such entries are not served (they look up as ENOENT and are left out of listings), as
   * in oMFS. An export that is itself one of them is the administrator's explicit choice and served.
   */
  notServed(exp: ExportCtx, st: sys.Stat): boolean {
    if (st.dev === exp.rootDev) return false;
    if (Date.now() - this.servedSince > SERVED_DEVS_MS) {
      this.servedDevs.clear();
      this.servedSince = Date.now();
    }
    if (this.servedDevs.has(st.dev)) return false;
    if (this.pseudoDevs.has(st.dev)) return true;
    // A device not met before (a mount made since): read the mount table again, once per device.
    this.pseudoDevs = sys.pseudoFsDevices();
    if (this.pseudoDevs.has(st.dev)) return true;
    if (this.servedDevs.size >= MAX_SERVED_DEVS) this.servedDevs.clear();
    this.servedDevs.add(st.dev);
    return false;
  }

  /** Resolves a directory handle and returns an fd for it (the root fd or a cached one). */
  async resolveDir(handle: unknown, caller: Caller): Promise<Node & { fd: number }> {
    const node = await this.resolve(handle, caller);
    if (!sys.isDir(node.st.mode)) throw new Errno('ENOTDIR', 'not a directory');
    const fd = node.id === node.exp.rootId ? node.exp.rootFd : (await this.dir(node.exp, node.id, node.caller, 0)).fd;
    return { ...node, fd };
  }

  /** Records a child found under `dir` and returns its id and handle. */
  async remember(exp: ExportCtx, dirId: bigint, name: Buffer, st: sys.Stat, fresh = false): Promise<{ id: bigint; handle: Buffer }> {
    return (await this.rememberAll(exp, dirId, [{ name, st }], fresh))[0]!;
  }

  /** remember() for many children of one directory, with one LevelDB write for all (ReadDir). `fresh`: just created here (handles.ts Sighting). */
  async rememberAll(exp: ExportCtx, dirId: bigint, found: Array<{ name: Buffer; st: sys.Stat }>, fresh = false): Promise<Array<{ id: bigint; handle: Buffer }>> {
    const ids: bigint[] = [];
    for (const { st } of found) ids.push(await this.store.localId(st.dev, st.ino));
    // The export root has no record and keeps generation 0 (it is not a child of anything in it).
    const seen: Sighting[] = [];
    const seenAt = found.map(({ name, st }, i) => {
      if (ids[i] === exp.rootId) return -1;
      seen.push({ id: ids[i]!, found: recordOf(dirId, name, st), linked: multiLinked(st), fresh });
      return seen.length - 1;
    });
    const gens = seen.length > 0 ? await this.store.rememberAll(seen) : [];
    return ids.map((id, i) => ({ id, handle: this.store.mint(exp.id, id, seenAt[i]! < 0 ? 0 : gens[seenAt[i]!]!) }));
  }

  /** The file was renamed (through the service) from `from` to `name` in `dirId`. */
  async moved(id: bigint, from: FileName, dirId: bigint, name: Buffer, st: sys.Stat): Promise<void> {
    await this.store.moved(id, from, recordOf(dirId, name, st));
  }

  /** Drops a cached directory fd (after rmdir/rename) so it is reopened and re-verified. */
  forgetDir(id: bigint): void {
    this.dirFds.delete(id.toString());
  }
}

/**
 * An O_PATH fd of the node's name, verified to be the same file: the fd pins the inode, so a
 * symlink swapped in after the lookup is never followed. Close it with closeSync. Inline on the
 * event loop whatever the export: for callers outside this module that are still synchronous
 * (pinAsync is the export-aware one).
 */
function pin(node: Node): number {
  const fd = sys.openat(node.dirFd, node.name, sys.O_PATH | sys.O_NOFOLLOW);
  const st = sys.fstat(fd);
  if (st.dev !== node.st.dev || st.ino !== node.st.ino) {
    closeSync(fd);
    throw new Errno('ESTALE', 'file was replaced');
  }
  return fd;
}

/**
 * Runs `fn` on an fd of the node's file: the caller's open file when the request named one
 * (`io` true: an fd open for I/O), else a verified O_PATH fd of its name, closed afterwards.
 * Synchronous, so on the event loop whatever the export: prefer withPinnedAsync.
 */
export function withPinned<T>(node: Node, fn: (fd: number, io: boolean) => T): T {
  if (node.open) return fn(node.open.fd, true);
  const fd = pin(node);
  try {
    return fn(fd, false);
  } finally {
    closeSync(fd);
  }
}

/** pin() through the export's io (its threads when it is off-thread). */
async function pinAsync(node: Node): Promise<number> {
  const io = node.exp.io;
  const fd = await io.call(null, 'openat', node.dirFd, node.name, sys.O_PATH | sys.O_NOFOLLOW);
  try {
    const st = await io.call(null, 'fstat', fd);
    if (st.dev !== node.st.dev || st.ino !== node.st.ino) throw new Errno('ESTALE', 'file was replaced');
  } catch (err) {
    io.close(fd);
    throw err;
  }
  return fd;
}

/**
 * withPinned for async work, the export's syscalls going through its io: the O_PATH fd stays
 * open until `fn` settles.
 */
export async function withPinnedAsync<T>(node: Node, fn: (fd: number, io: boolean) => Promise<T>): Promise<T> {
  if (node.open) return fn(node.open.fd, true);
  const fd = await pinAsync(node);
  try {
    return await fn(fd, false);
  } finally {
    // An O_PATH fd's close never reaches the file system (no FLUSH): closed right here.
    closeSync(fd);
  }
}

/**
 * A new fd on the same file as `fd` (an O_PATH one included), through its /proc magic link, as
 * `caller`, through the export's io: the kernel checks the caller's permission for `flags`.
 */
export function reopenAs(exp: ExportCtx, caller: Caller | null, fd: number, flags: number): Promise<number> {
  return exp.io.call(caller, 'openat', sys.AT_FDCWD, sys.fdPath(fd), flags);
}
