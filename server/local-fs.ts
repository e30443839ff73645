// The core of the file service: resolves handles to files under an export without ever leaving it.
//
// Confinement: every export root is held open as a directory fd (O_DIRECTORY|O_NOFOLLOW); a child is
// addressed as /proc/self/fd/<dirfd>/<name> with a single-component name, and the final component is
// never followed (lstat, O_NOFOLLOW, O_PATH). Directories on the way are opened the same way and kept
// in an LRU of fds. Resolving a handle walks its record chain up to the export root and checks, at
// every level, that the (dev, ino) found under the parent fd is the one recorded: a moved-away,
// replaced or deleted file is ESTALE. Metadata syscalls are synchronous: they are short local
// syscalls, and going through the libuv pool would cost more than it saves on this hot path.
import * as fs from 'node:fs';
import { LRUCache } from 'lru-cache';
import { Errno } from '../proto/errno.js';
import { HandleStore, type FileRecord } from './handles.js';
import { checkAccess, squash, X_OK, type Caller } from './permissions.js';
import type { ExportSpec } from './export-spec.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
export const O_PATH = 0o10000000;
const MAX_DEPTH = 4096;
const RETIRE_GRACE_MS = 30_000;

export interface ExportCtx { id: number; spec: ExportSpec; rootId: bigint; rootFd: number; rootDev: number; rootIno: number }

/** A resolved file: its path through a parent fd (or the root fd), its lstat, and its parent's. */
export interface Node {
  exp: ExportCtx; id: bigint; caller: Caller; path: string; st: fs.Stats;
  parent: { id: bigint; fd: number; st: fs.Stats } | null; name: string;
}

export const fdPath = (fd: number): string => `/proc/self/fd/${fd}`;
export const childPath = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

function lstatOrStale(path: string): fs.Stats {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Errno('ESTALE', 'file is gone');
    throw err;
  }
}

/** The same file as recorded: same (dev, ino) and, when known, the same birth time. */
export function sameFile(st: fs.Stats, rec: FileRecord): boolean {
  return st.dev === rec.dev && st.ino === rec.ino && (!rec.btime || st.birthtimeMs === rec.btime);
}

export function recordOf(parent: bigint, name: string, st: fs.Stats): FileRecord {
  return { parent: parent.toString(), name, dev: st.dev, ino: st.ino, btime: st.birthtimeMs };
}

export class LocalFs {
  readonly byId = new Map<number, ExportCtx>();
  readonly byPath = new Map<string, ExportCtx>();
  // An evicted directory fd is closed only after a grace period: an operation still in flight may
  // hold its number, and closing it at once would let the number be reused by another directory
  // (possibly of another export) under that operation's feet.
  private readonly retired: Array<{ fd: number; at: number }> = [];
  private readonly dirFds = new LRUCache<string, number>({ max: 1024, dispose: (fd) => this.retire(fd) });
  private readonly reaper = setInterval(() => this.reap(Date.now() - RETIRE_GRACE_MS), RETIRE_GRACE_MS).unref();

  private constructor(readonly nodeId: number, readonly store: HandleStore) {}

  static async open(nodeId: number, exports: ExportSpec[], store: HandleStore): Promise<LocalFs> {
    const lfs = new LocalFs(nodeId, store);
    try {
      for (const spec of exports) await lfs.addExport(spec);
    } catch (err) {
      lfs.close();
      throw err;
    }
    return lfs;
  }

  private async addExport(spec: ExportSpec): Promise<void> {
    let st: fs.Stats;
    try {
      st = fs.statSync(spec.path);
    } catch (err) {
      throw new Errno((err as NodeJS.ErrnoException).code ?? 'ENOENT', `export ${spec.path} is missing or unreadable`);
    }
    if (!st.isDirectory()) throw new Errno('ENOTDIR', `export ${spec.path} is not a directory`);
    const rootFd = fs.openSync(spec.path, O_RDONLY | O_DIRECTORY);
    const id = await this.store.exportId(spec.path);
    const rootId = await this.store.localId(st.dev, st.ino);
    const ctx: ExportCtx = { id, spec, rootId, rootFd, rootDev: st.dev, rootIno: st.ino };
    this.byId.set(id, ctx);
    this.byPath.set(spec.path, ctx);
  }

  private retire(fd: number): void {
    this.retired.push({ fd, at: Date.now() });
  }

  private reap(before: number): void {
    while (this.retired.length > 0 && this.retired[0]!.at <= before) fs.close(this.retired.shift()!.fd, () => {});
  }

  close(): void {
    clearInterval(this.reaper);
    this.dirFds.clear();
    this.reap(Infinity);
    for (const ctx of this.byId.values()) fs.closeSync(ctx.rootFd);
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

  /** Resolves a handle, checking search permission on every directory from the export root down. */
  async resolve(handle: unknown, rawCaller: Caller): Promise<Node> {
    const { exportId, id } = this.store.parse(handle);
    const exp = this.exportOf(exportId);
    const caller = this.effectiveCaller(exp, rawCaller);
    if (id === exp.rootId) {
      const st = fs.fstatSync(exp.rootFd);
      // "/." so that lstat and O_NOFOLLOW see the directory, not the /proc magic link.
      return { exp, id, caller, path: `${fdPath(exp.rootFd)}/.`, st, parent: null, name: '' };
    }
    const rec = await this.store.record(id);
    if (!rec || rec.parent === '') throw new Errno('ESTALE', 'unknown file');
    const parent = await this.dir(exp, BigInt(rec.parent), caller, 0);
    checkAccess(parent.st, caller, X_OK, 'directory');
    const path = childPath(parent.fd, rec.name);
    const st = lstatOrStale(path);
    if (!sameFile(st, rec)) throw new Errno('ESTALE', 'file was replaced');
    return { exp, id, caller, path, st, parent: { id: BigInt(rec.parent), fd: parent.fd, st: parent.st }, name: rec.name };
  }

  /** An open fd of directory `id` under `exp`, verified in place, with search permission above it. */
  private async dir(exp: ExportCtx, id: bigint, caller: Caller, depth: number): Promise<{ fd: number; st: fs.Stats }> {
    if (id === exp.rootId) return { fd: exp.rootFd, st: fs.fstatSync(exp.rootFd) };
    if (depth > MAX_DEPTH) throw new Errno('ESTALE', 'directory chain too deep');
    const rec: FileRecord | undefined = await this.store.record(id);
    if (!rec || rec.parent === '') throw new Errno('ESTALE', 'unknown directory');
    const parent = await this.dir(exp, BigInt(rec.parent), caller, depth + 1);
    checkAccess(parent.st, caller, X_OK, 'directory');
    const path = childPath(parent.fd, rec.name);
    const st = lstatOrStale(path);
    if (!sameFile(st, rec) || !st.isDirectory()) throw new Errno('ESTALE', 'directory was replaced');
    const key = id.toString();
    let fd = this.dirFds.get(key);
    if (fd === undefined) {
      fd = fs.openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      const opened = fs.fstatSync(fd);
      if (opened.dev !== rec.dev || opened.ino !== rec.ino) {
        fs.closeSync(fd);
        throw new Errno('ESTALE', 'directory was replaced');
      }
      this.dirFds.set(key, fd);
    }
    return { fd, st };
  }

  /** Resolves a directory handle and returns an fd for it (the root fd or a cached one). */
  async resolveDir(handle: unknown, caller: Caller): Promise<Node & { fd: number }> {
    const node = await this.resolve(handle, caller);
    if (!node.st.isDirectory()) throw new Errno('ENOTDIR', 'not a directory');
    const fd = node.id === node.exp.rootId ? node.exp.rootFd : (await this.dir(node.exp, node.id, node.caller, 0)).fd;
    return { ...node, fd };
  }

  /** Records a child found under `dir` and returns its id and handle. */
  async remember(exp: ExportCtx, dirId: bigint, name: string, st: fs.Stats): Promise<{ id: bigint; handle: Buffer }> {
    const id = await this.store.localId(st.dev, st.ino);
    if (id !== exp.rootId) await this.store.remember(id, recordOf(dirId, name, st));
    return { id, handle: this.store.mint(exp.id, id) };
  }

  /** Drops a cached directory fd (after rmdir/rename) so it is reopened and re-verified. */
  forgetDir(id: bigint): void {
    this.dirFds.delete(id.toString());
  }

  /**
   * Runs `fn` on a /proc path of an O_PATH fd of the node, verified to be the same file: the fd
   * pins the inode, so a symlink swapped in after the lookup is never followed.
   */
  withPinned<T>(node: Node, fn: (pinned: string) => T): T {
    const fd = fs.openSync(node.path, O_PATH | O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      if (st.dev !== node.st.dev || st.ino !== node.st.ino) throw new Errno('ESTALE', 'file was replaced');
      return fn(fdPath(fd));
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** withPinned for async work: the O_PATH fd stays open until `fn` settles. */
export async function withPinnedAsync<T>(node: Node, fn: (pinned: string) => Promise<T>): Promise<T> {
  const fd = fs.openSync(node.path, O_PATH | O_NOFOLLOW);
  try {
    const st = fs.fstatSync(fd);
    if (st.dev !== node.st.dev || st.ino !== node.st.ino) throw new Errno('ESTALE', 'file was replaced');
    return await fn(fdPath(fd));
  } finally {
    fs.closeSync(fd);
  }
}
