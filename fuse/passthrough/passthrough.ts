// A FileSystem that mirrors a local directory: the kernel layer's test vehicle and benchmark.
// It runs as root and the mount uses default_permissions, so the kernel checks mode bits against
// the caller and we only have to give new files to their creator.
import type { BigIntStats } from 'node:fs';
import { constants as C, readSync } from 'node:fs';
import {
  KernelErrno, OPEN_KILL_SUIDGID, OpenFlag, ROOT_ID, SetattrValid, WRITE_KILL_SUIDGID,
  type AttrOut, type CreateOut, type DirBuffer, type EntryOut, type FileSystem, type OpenOut,
  type RequestContext, type RequestOf, type StatfsOut,
} from '../kernel/index.js';
import { direntType, toAttr } from './attrs.js';
import * as io from './fd-io.js';
import { sys } from './fd-io.js';
import { NodeTable, type Node } from './nodes.js';
import { applySetattr, killSuidgid } from './setattr.js';
import * as special from './special.js';
import * as xattr from './xattr.js';

export interface PassthroughOptions {
  /** Attribute/entry validity in seconds. */
  timeout: number;
  keepCache: boolean;
  directIo: boolean;
}

interface DirHandle { node: Node; entries: string[] | undefined }
/** nextRead: where the last READ of this handle ended (sequential reads are answered inline). */
interface OpenFile { fd: number; node: Node; nextRead: number }

const RENAME_NOREPLACE = 1;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const COPY_CHUNK = 1024 * 1024;
/** Shared: the session reads only its code. */
const NOT_FOUND = new KernelErrno('ENOENT');
const O_DIRECT = 0o40000;
const S_ISGID = 0o2000;

export class PassthroughFs implements FileSystem {
  readonly nodes: NodeTable;
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, DirHandle>();
  private nextFh = 1;
  /** Called after a node is looked up (the CLI's cache watcher hooks here). */
  onLookup: ((node: Node) => void) | undefined;
  /**
   * Called when we changed a node's attributes on our own (suid/sgid cleared by a WRITE): the
   * kernel does not expect that and keeps the old mode cached unless told (attrs-only INVAL_INODE).
   */
  onAttrsChanged: ((nodeId: number) => Promise<unknown>) | undefined;

  constructor(readonly source: string, private readonly options: PassthroughOptions) {
    this.nodes = new NodeTable(source);
  }

  async start(): Promise<void> {
    const st = sys.stat(this.source);
    this.nodes.setRootKey(st.dev, st.ino);
  }

  private node(id: number): Node {
    const n = this.nodes.get(id);
    if (!n) throw new KernelErrno('ESTALE');
    return n;
  }

  private path(id: number): string {
    return this.nodes.path(this.node(id));
  }

  private entry(parent: Node, name: string, st: BigIntStats): EntryOut {
    const node = this.nodes.lookup(parent, name, st.dev, st.ino, Number(st.mode));
    this.onLookup?.(node);
    return { nodeId: node.id, generation: 0, entryTimeout: this.options.timeout, attrTimeout: this.options.timeout, attr: toAttr(st) };
  }

  /** New files belong to the caller; the group comes from a setgid parent, else the caller. */
  private giveToCaller(ctx: RequestContext, path: string, parent: string): void {
    if (ctx.uid === 0 && ctx.gid === 0) return;
    const parentSt = sys.stat(parent);
    const gid = Number(parentSt.mode) & S_ISGID ? -1 : ctx.gid;
    sys.lchown(path, ctx.uid, gid);
  }

  lookup(_ctx: RequestContext, r: RequestOf<'LOOKUP'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    if (r.name === '.' || r.name === '..') {
      const target = r.name === '..' ? (parent.parent ?? parent) : parent;
      const st = sys.lstat(this.nodes.path(target));
      return this.entry(target.parent ?? target, target.name, st);
    }
    // A miss is the common case of every create; answer it without building a SystemError.
    const st = sys.lstatIfExists(this.nodes.childPath(parent, r.name));
    if (!st) throw NOT_FOUND;
    return this.entry(parent, r.name, st);
  }

  forget(nodeId: number, nlookup: number): void {
    this.nodes.forget(nodeId, nlookup);
  }

  getattr(_ctx: RequestContext, r: RequestOf<'GETATTR'>): AttrOut {
    const open = r.getattrFlags & 1 ? this.files.get(r.fh) : undefined;
    const st = open ? io.fstat(open.fd) : sys.lstat(this.path(r.header.nodeId));
    return { attr: toAttr(st), attrTimeout: this.options.timeout };
  }

  setattr(ctx: RequestContext, r: RequestOf<'SETATTR'>): AttrOut {
    const fd = r.valid & SetattrValid.FH ? this.files.get(r.fh)?.fd : undefined;
    return { attr: toAttr(applySetattr(this.path(r.header.nodeId), fd, r, ctx)), attrTimeout: this.options.timeout };
  }

  readlink(_ctx: RequestContext, r: RequestOf<'READLINK'>): Buffer {
    return sys.readlink(this.path(r.header.nodeId));
  }

  private made(ctx: RequestContext, parent: Node, name: string): EntryOut {
    const path = this.nodes.childPath(parent, name);
    this.giveToCaller(ctx, path, this.nodes.path(parent));
    return this.entry(parent, name, sys.lstat(path));
  }

  symlink(ctx: RequestContext, r: RequestOf<'SYMLINK'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    sys.symlink(r.target, this.nodes.childPath(parent, r.name));
    return this.made(ctx, parent, r.name);
  }

  async mknod(ctx: RequestContext, r: RequestOf<'MKNOD'>): Promise<EntryOut> {
    const parent = this.node(r.header.nodeId);
    const path = this.nodes.childPath(parent, r.name);
    if ((r.mode & C.S_IFMT) === C.S_IFREG) io.close(io.open(path, C.O_CREAT | C.O_EXCL | C.O_WRONLY, r.mode & 0o7777));
    else await special.mknod(path, r.mode, r.rdev);
    return this.made(ctx, parent, r.name);
  }

  mkdir(ctx: RequestContext, r: RequestOf<'MKDIR'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    const path = this.nodes.childPath(parent, r.name);
    sys.mkdir(path, r.mode & 0o7777);
    // mkdir(2) ignores suid/sgid/sticky bits given by the caller on some paths; set them exactly.
    if (r.mode & 0o7000) sys.chmod(path, r.mode & 0o7777);
    return this.made(ctx, parent, r.name);
  }

  /** Forget the backing inode of a name that is about to disappear (so a reused ino gets a new node). */
  private detachName(path: string): void {
    const st = sys.lstatIfExists(path);
    if (!st || (st.nlink > 1n && !st.isDirectory())) return;
    const n = this.nodes.findByKey(st.dev, st.ino);
    if (n) this.nodes.detach(n);
  }

  unlink(_ctx: RequestContext, r: RequestOf<'UNLINK'>): void {
    const path = this.nodes.childPath(this.node(r.header.nodeId), r.name);
    this.detachName(path);
    sys.unlink(path);
  }

  rmdir(_ctx: RequestContext, r: RequestOf<'RMDIR'>): void {
    const path = this.nodes.childPath(this.node(r.header.nodeId), r.name);
    sys.rmdir(path);
    this.detachName(path);
  }

  rename(_ctx: RequestContext, r: RequestOf<'RENAME'>): void {
    if (r.flags & ~RENAME_NOREPLACE) throw new KernelErrno('EINVAL'); // no renameat2 in Node
    const from = this.nodes.childPath(this.node(r.header.nodeId), r.name);
    const newParent = this.node(r.newDir);
    const to = this.nodes.childPath(newParent, r.newName);
    const target = sys.lstatIfExists(to);
    if (r.flags & RENAME_NOREPLACE && target) throw new KernelErrno('EEXIST');
    sys.rename(from, to);
    const moved = sys.lstat(to);
    if (target && (target.ino !== moved.ino || target.dev !== moved.dev)) {
      const replaced = this.nodes.findByKey(target.dev, target.ino);
      if (replaced && (target.nlink <= 1n || target.isDirectory())) this.nodes.detach(replaced);
    }
    const node = this.nodes.findByKey(moved.dev, moved.ino);
    if (node && node !== this.nodes.root) this.nodes.move(node, newParent, r.newName);
  }

  link(_ctx: RequestContext, r: RequestOf<'LINK'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    const path = this.nodes.childPath(parent, r.name);
    sys.link(this.path(r.oldNodeId), path);
    return this.entry(parent, r.name, sys.lstat(path));
  }

  private openReply(fd: number, node: Node): OpenOut {
    const fh = this.nextFh++;
    this.files.set(fh, { fd, node, nextRead: 0 });
    let openFlags = 0;
    if (this.options.keepCache) openFlags |= OpenFlag.KEEP_CACHE;
    if (this.options.directIo) openFlags |= OpenFlag.DIRECT_IO;
    return { fh, openFlags };
  }

  open(ctx: RequestContext, r: RequestOf<'OPEN'>): OpenOut {
    const node = this.node(r.header.nodeId);
    const path = this.nodes.path(node);
    // O_DIRECT would impose alignment on our buffers; the kernel already bypasses its cache.
    const fd = io.open(path, r.flags & ~O_DIRECT);
    if (r.openFlags & OPEN_KILL_SUIDGID && r.flags & C.O_TRUNC) killSuidgid(ctx, path, fd);
    return this.openReply(fd, node);
  }

  create(ctx: RequestContext, r: RequestOf<'CREATE'>): CreateOut {
    const parent = this.node(r.header.nodeId);
    const path = this.nodes.childPath(parent, r.name);
    const fd = io.open(path, (r.flags & ~O_DIRECT) | C.O_CREAT, r.mode & 0o7777);
    try {
      this.giveToCaller(ctx, path, this.nodes.path(parent));
      const entry = this.entry(parent, r.name, io.fstat(fd));
      return { entry, open: this.openReply(fd, this.node(entry.nodeId)) };
    } catch (err) {
      io.close(fd);
      throw err;
    }
  }

  private file(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (!f) throw new KernelErrno('EBADF');
    return f;
  }

  private fd(fh: number): number {
    return this.file(fh).fd;
  }

  /**
   * A READ that continues the previous one is read inline: the backing filesystem's own readahead
   * has almost surely brought it into memory, and the pool's two thread hand-offs cost more than
   * the copy (seq read 0.6-0.76x bindfs on the pool, 0.83-1.1x inline). Any other READ may wait on
   * the disk, so it goes to the pool and overlaps with the others.
   */
  read(_ctx: RequestContext, r: RequestOf<'READ'>): Buffer | Promise<Buffer> {
    const f = this.file(r.fh);
    const sequential = r.offset === f.nextRead && r.offset !== 0;
    f.nextRead = r.offset + r.size;
    return sequential ? io.preadNow(f.fd, r.size, r.offset) : io.pread(f.fd, r.size, r.offset);
  }

  write(ctx: RequestContext, r: RequestOf<'WRITE'>): number | Promise<number> {
    const fd = this.fd(r.fh);
    // Awaited before the reply so the caller's next stat sees the new mode; attrs-only
    // invalidation takes no lock this WRITE holds (fuse-protocol.md A6).
    if (r.writeFlags & WRITE_KILL_SUIDGID && killSuidgid(ctx, '', fd) && this.onAttrsChanged) {
      return this.onAttrsChanged(r.header.nodeId).then(() => writeAll(fd, r.data, r.offset));
    }
    return writeAll(fd, r.data, r.offset);
  }

  statfs(_ctx: RequestContext, r: RequestOf<'STATFS'>): StatfsOut {
    const s = sys.statfs(this.path(r.header.nodeId || ROOT_ID));
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  release(_ctx: RequestContext, r: RequestOf<'RELEASE'>): void {
    const f = this.files.get(r.fh);
    if (!f) return;
    this.files.delete(r.fh);
    io.close(f.fd);
  }

  // No flush(): nothing is buffered here (every WRITE already reached the backing file), and the
  // ENOSYS the session answers makes the kernel stop sending FLUSH at all: one round trip less on
  // every close (create 5 -> 4 requests). Locks are kernel-local on this mount (no POSIX_LOCKS).

  async fsync(_ctx: RequestContext, r: RequestOf<'FSYNC'>): Promise<void> {
    const fd = this.fd(r.fh);
    await (r.fsyncFlags & 1 ? io.fdatasync(fd) : io.fsync(fd));
  }

  opendir(_ctx: RequestContext, r: RequestOf<'OPENDIR'>): OpenOut {
    const node = this.node(r.header.nodeId);
    sys.access(this.nodes.path(node)); // fail now if the directory is gone
    const fh = this.nextFh++;
    this.dirs.set(fh, { node, entries: undefined });
    return { fh, openFlags: this.options.keepCache ? OpenFlag.CACHE_DIR : 0 };
  }

  releasedir(_ctx: RequestContext, r: RequestOf<'RELEASEDIR'>): void {
    this.dirs.delete(r.fh);
  }

  /** The entries of a directory reach the disk only with an fsync of the directory itself. */
  async fsyncdir(_ctx: RequestContext, r: RequestOf<'FSYNCDIR'>): Promise<void> {
    const fd = io.open(this.path(r.header.nodeId), C.O_RDONLY | C.O_DIRECTORY);
    try {
      await (r.fsyncFlags & 1 ? io.fdatasync(fd) : io.fsync(fd));
    } finally {
      io.close(fd);
    }
  }

  readdir(_ctx: RequestContext, r: RequestOf<'READDIR'>, out: DirBuffer): void {
    return this.fillDir(r, out, false);
  }

  readdirplus(_ctx: RequestContext, r: RequestOf<'READDIRPLUS'>, out: DirBuffer): void {
    return this.fillDir(r, out, true);
  }

  /** Entry i has cookie i+1. The listing is snapshotted at offset 0, so cookies stay stable. */
  private fillDir(r: RequestOf<'READDIR' | 'READDIRPLUS'>, out: DirBuffer, plus: boolean): void {
    const dir = this.dirs.get(r.fh);
    if (!dir) throw new KernelErrno('EBADF');
    const dirPath = this.nodes.path(dir.node);
    if (r.offset === 0 || dir.entries === undefined) {
      dir.entries = ['.', '..', ...sys.readdir(dirPath)];
    }
    const entries = dir.entries;
    const parentPath = this.nodes.path(dir.node.parent ?? dir.node);
    for (let i = r.offset; i < entries.length; i++) {
      const name = entries[i]!;
      const cookie = i + 1;
      const st = sys.lstatIfExists(name === '.' ? dirPath : name === '..' ? parentPath : `${dirPath}/${name}`);
      if (!st) continue; // vanished since the listing: skip it, the cookie stays valid
      const type = direntType(Number(st.mode));
      if (!out.fits(Buffer.byteLength(name), plus)) return;
      if (!plus) out.add(Number(st.ino), cookie, type, name);
      else if (name === '.' || name === '..') {
        // nodeid 0: the kernel takes no reference for "." and ".." (no lookup count)
        out.addPlus({ nodeId: 0, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: toAttr(st) }, cookie, type, name);
      } else out.addPlus(this.entry(dir.node, name, st), cookie, type, name);
    }
  }

  async fallocate(_ctx: RequestContext, r: RequestOf<'FALLOCATE'>): Promise<void> {
    this.fd(r.fh);
    await special.fallocate(this.path(r.header.nodeId), r.offset, r.length, r.mode);
  }

  getxattr(_ctx: RequestContext, r: RequestOf<'GETXATTR'>): Buffer {
    return xattr.getxattr(this.path(r.header.nodeId), r.name);
  }

  listxattr(_ctx: RequestContext, r: RequestOf<'LISTXATTR'>): Buffer {
    return xattr.listxattr(this.path(r.header.nodeId));
  }

  setxattr(_ctx: RequestContext, r: RequestOf<'SETXATTR'>): void {
    xattr.setxattr(this.path(r.header.nodeId), r.name, r.value, r.flags);
  }

  removexattr(_ctx: RequestContext, r: RequestOf<'REMOVEXATTR'>): void {
    xattr.removexattr(this.path(r.header.nodeId), r.name);
  }

  /**
   * SEEK_DATA / SEEK_HOLE (the kernel answers the other whences itself). Node has no lseek, so the
   * whole file counts as data: what Linux does for filesystems without hole tracking.
   */
  lseek(_ctx: RequestContext, r: RequestOf<'LSEEK'>): number {
    const size = Number(io.fstat(this.fd(r.fh)).size);
    if (r.whence !== SEEK_DATA && r.whence !== SEEK_HOLE) throw new KernelErrno('EINVAL');
    if (r.offset < 0 || r.offset >= size) throw new KernelErrno('ENXIO');
    return r.whence === SEEK_DATA ? r.offset : size;
  }

  /** Copy in 1 MiB chunks between two open handles; short at end of file, like the syscall. */
  copyFileRange(_ctx: RequestContext, r: RequestOf<'COPY_FILE_RANGE'>): number {
    if (r.flags !== 0) throw new KernelErrno('EINVAL');
    const fdIn = this.fd(r.fhIn);
    const fdOut = this.fd(r.fhOut);
    const chunk = Buffer.allocUnsafe(Math.min(r.len, COPY_CHUNK));
    let done = 0;
    while (done < r.len) {
      const n = readSync(fdIn, chunk, 0, Math.min(chunk.length, r.len - done), r.offIn + done);
      if (n === 0) break;
      let written = 0;
      while (written < n) written += io.pwrite(fdOut, chunk.subarray(written, n), r.offOut + done + written);
      done += n;
    }
    return done;
  }

  access(): void {
    // default_permissions: the kernel has already checked the caller's rights.
  }

  destroy(): void {
    for (const f of this.files.values()) {
      try {
        io.close(f.fd);
      } catch {
        // closing at teardown: nothing left to report to
      }
    }
    this.files.clear();
  }
}

/** pwrite until all of `data` is written (a regular file takes it in one call, but need not). */
function writeAll(fd: number, data: Buffer, offset: number): number {
  let done = 0;
  while (done < data.length) done += io.pwrite(fd, done === 0 ? data : data.subarray(done), offset + done);
  return done;
}
