// A FileSystem that mirrors a local directory: the kernel layer's test vehicle and benchmark.
// It runs as root and the mount uses default_permissions, so the kernel checks mode bits against
// the caller. Every inode is reached through its node's O_PATH descriptor (nodes.ts), every name
// through its parent's descriptor plus that one name, as bytes. New files are made as the caller
// (sys.asCaller) with the caller's umask, so the backing filesystem applies ownership,
// setgid-directory, umask and default-ACL rules itself, exactly as on the bare directory. The
// mount negotiates POSIX_ACL (the kernel enforces ACLs and caches them) and DONT_MASK (the umask
// arrives with the request instead of being applied to the mode).
import { constants as C, readSync, statfsSync } from 'node:fs';
import {
  FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN, InitFlag, KernelErrno, OpenFlag, ROOT_ID, SetattrValid,
  ANSWERED_ELSEWHERE, type AttrOut, type CreateOut, DirBuffer, type EntryOut, type FileSystem, type InitInfo, type OpenOut,
  type RequestContext, type RequestOf, type StatfsOut, warmUpDirents,
} from '../kernel/index.js';
import * as sys from '../../sys/index.js';
import { direntType, toAttr } from './attrs.js';
import * as io from './fd-io.js';
import { NodeTable, type Node } from './nodes.js';
import { ReadWorkers } from './read-workers.js';
import { applySetattr, killSuidgid } from './setattr.js';
import * as xattr from './xattr.js';

export interface PassthroughOptions {
  /** Attribute/entry validity in seconds. */
  timeout: number;
  keepCache: boolean;
  directIo: boolean;
  /**
   * Answer OPEN with ENOSYS: the kernel then opens regular files on its own, sends no OPEN and no
   * RELEASE (two round trips less per open and close, one of them synchronous) and keeps their
   * page cache (FOPEN_KEEP_CACHE). Reads and writes come with fh 0 and use the node's own
   * descriptors. Only with keepCache (what the kernel then does anyway), and without directIo or
   * kernel passthrough, which are answers to OPEN. The session must not negotiate
   * OPENLESS_INIT_FLAGS_OFF. CREATE still opens a file of its own and answers with its handle.
   */
  openless?: boolean;
}

/**
 * INIT flags an openless filesystem must not negotiate. With ATOMIC_O_TRUNC the kernel leaves an
 * open's O_TRUNC to the OPEN it no longer sends, and the truncation would be lost; without it the
 * kernel sends a SETATTR of size 0 after the open.
 */
export const OPENLESS_INIT_FLAGS_OFF = InitFlag.ATOMIC_O_TRUNC;
/** How often write descriptors of openless opens are closed when unused since the last time (NodeTable.closeIdleWriters). */
const IDLE_WRITERS_MS = 1000;

/** shared: fd is one of the node's own descriptors (sharedReadFd, openless I/O), not this open's own. */
interface OpenFile { fd: number; node: Node; backingId: number; shared: boolean }
/** What an openless (fh 0) request does with the file: which of the node's descriptors it needs. */
type Access = 'read' | 'write';
/** The handle of every open the kernel made without OPEN (openless); ours start at 1. */
const NO_HANDLE = 0;

const COPY_CHUNK = 1024 * 1024;
/** Shared: the session reads only its code. */
const NOT_FOUND = new KernelErrno('ENOENT');
const O_DIRECT = 0o40000;
const O_NOATIME = 0o1000000;
const O_LARGEFILE = 0o100000;
/** A READ's or WRITE's file flags that an openless one's descriptor must have too: O_NOATIME (no atime update), O_APPEND (append at the true end). */
const OWN_FD_FLAGS = O_NOATIME | C.O_APPEND;
/** OPEN flags that change nothing for a read-only regular file read with pread: such opens share one descriptor. */
const SHARE_IGNORES = O_LARGEFILE | sys.O_CLOEXEC | C.O_NOCTTY | C.O_NONBLOCK | C.O_NOFOLLOW | O_DIRECT;
/** Descriptors nodes hold of their own (NodeTable.heldFds) at most for sharing; past it, a read-only open gets a descriptor of its own. */
const MAX_SHARED_READ_FDS = 16384;
const DOT = Buffer.from('.');
/** Entries with attributes per READDIRPLUS reply (see fillDir). */
const PLUS_ENTRIES_MAX = 32;
const DOTDOT = Buffer.from('..');
const DT_DIR = 4;
/** Bytes of getdents64 records a listing reads ahead (see fillDir). */
const LISTING_BATCH = 256 * 1024;
/**
 * Read worker threads at most: one per READ the kernel may have waiting on the disk at once from
 * the few processes that read a mount concurrently (the bench's random reads use 4; a fifth waits
 * on the libuv pool, as before).
 */
const READ_WORKERS = 4;
/** warmUpListing: listings at most, for at most this long, of at most this many replies of this size. */
const WARM_UP_LISTINGS = 300;
const WARM_UP_NS = 20_000_000n;
const WARM_UP_REPLIES = 16;
const WARM_UP_REPLY_BYTES = 32 * 1024;
/** Bytes asked of one getdents call while filling a batch: one reply's worth. */
const GETDENTS_CHUNK = 32 * 1024;
/**
 * The records of a listing's read-ahead not sent yet: [at, n) of the buffer, read from `dir`, the
 * first of them resuming at `cookie`; valid while the directory's ctime is still `ctime` (no entry
 * added or removed since, through the mount or not).
 */
interface Unsent { dir: Node; cookie: bigint; at: number; n: number; ctime: sys.Timespec }
/** INIT flags this filesystem wants beyond the kernel layer's defaults (the CLI passes them on). */
export const PASSTHROUGH_INIT_FLAGS = InitFlag.POSIX_ACL | InitFlag.DONT_MASK;
/**
 * INIT flags of the kernel layer's defaults this filesystem does not want: none. HANDLE_KILLPRIV_V2
 * stays: without it the kernel asks GETXATTR security.capability before every WRITE (the FUSE
 * superblock gets no SB_NOSEC), which cut 4 KiB random writes to a quarter (4 800 vs 20 000 IOPS).
 * With it, clearing set-id bits is ours: dropSetid() on write, truncate and fallocate by a caller
 * without CAP_FSETID (also where FUSE's own rule would keep a setgid bit the bare fs drops), and a
 * chown that changes nothing arrives as an empty SETATTR (setattr.ts). security.capability needs
 * nothing: our own write, truncate or chown of the backing file removes it there, as on the bare fs.
 */
export const PASSTHROUGH_INIT_FLAGS_OFF = 0n;

/** fn under the caller's credentials and umask: creation exactly as the caller would do it. */
function asCreator<T>(ctx: RequestContext, umask: number, fn: () => T): T {
  const old = process.umask(umask & 0o777);
  try {
    return sys.asCaller(ctx, fn);
  } finally {
    process.umask(old);
  }
}

const isDotName = (n: Buffer): boolean => isDotAt(n, 0, n.length);
/** Whether buf[at, at+len) is "." or "..". */
const isDotAt = (buf: Buffer, at: number, len: number): boolean =>
  buf[at] === 0x2e && (len === 1 || (len === 2 && buf[at + 1] === 0x2e));

export class PassthroughFs implements FileSystem {
  readonly nodes: NodeTable;
  private readonly files = new Map<number, OpenFile>();
  private nextFh = 1;
  private kernelPassthrough = false;
  /** Our /dev/fuse descriptor (useDevice): backing files are registered on it, and reads ask it who waits. */
  private device: number | undefined;
  /** Threads that answer READs waiting on the disk themselves (with the device). */
  private readWorkers: ReadWorkers | undefined;
  private wantsKernelPassthrough = false;
  /** Kernel passthrough: each open node's backing id and how many of our open files use it. */
  private readonly backing = new Map<Node, { id: number; opens: number }>();
  /** Called after a node is looked up (the CLI's cache watcher hooks here). */
  onLookup: ((node: Node) => void) | undefined;
  /** Called when the kernel has forgotten a node and it is dropped (the cache watcher stops watching it). */
  onForget: ((node: Node) => void) | undefined;
  /**
   * Called when we changed a node's attributes on our own (suid/sgid cleared by a WRITE): the
   * kernel does not expect that and keeps the old mode cached unless told (attrs-only INVAL_INODE).
   */
  onAttrsChanged: ((nodeId: number) => Promise<unknown>) | undefined;
  /**
   * Called after we changed a node (its data, attributes or, for a directory, its entries) for a
   * request: the cache watcher then knows the inotify events that follow are ours, not news.
   */
  onChanged: ((node: Node) => void) | undefined;
  /** Called after we made, removed or moved `name` in `dir` for a request (same purpose). */
  onNameChanged: ((dir: Node, name: Buffer) => void) | undefined;

  /** Whether a request waits in /dev/fuse (unknown without useDevice: assume so, never block on the disk). */
  private readonly requestsWaiting = (): boolean => this.device === undefined || sys.readableNow(this.device);

  /**
   * getdents64 records read ahead for a listing (see fillDir), one listing's at a time; allocated
   * zeroed with the filesystem, so its pages are faulted in at mount, not during the first listing
   * (on the VM a first touch of a page costs a trip to the host).
   */
  private readonly listing = Buffer.alloc(LISTING_BATCH);
  private unsent: Unsent | undefined;

  /** Closes idle write descriptors of openless opens (the timer runs only when openless). */
  private readonly idleWriters: NodeJS.Timeout | undefined;

  constructor(readonly source: string, private readonly options: PassthroughOptions) {
    if (options.openless && (!options.keepCache || options.directIo)) throw new Error('openless needs keepCache and no directIo');
    this.nodes = new NodeTable(source);
    sys.prepareReopen();
    if (options.openless) this.idleWriters = setInterval(() => this.nodes.closeIdleWriters(), IDLE_WRITERS_MS).unref();
  }

  /** The session's /dev/fuse descriptor: whether requests wait there decides how READs wait on the disk. */
  useDevice(device: number): void {
    this.device = device;
    this.readWorkers = new ReadWorkers(device, READ_WORKERS);
  }

  /**
   * Offer the kernel's own passthrough (FUSE_PASSTHROUGH; the session must ask for the INIT flag):
   * each opened regular file is registered on the device (useDevice), and the kernel then reads and
   * writes it directly, with no request to us.
   */
  enableKernelPassthrough(): void {
    if (this.options.openless) throw new Error('kernel passthrough is an answer to OPEN: not with openless');
    this.wantsKernelPassthrough = true;
  }

  init(info: InitInfo): void {
    warmUpDirents();
    this.warmUpListing();
    this.kernelPassthrough = this.wantsKernelPassthrough && this.device !== undefined && (info.flags & InitFlag.PASSTHROUGH) !== 0n;
  }

  /** Whether INIT negotiated the kernel's passthrough (the CLI reports it). */
  get usesKernelPassthrough(): boolean {
    return this.kernelPassthrough;
  }

  private node(id: number): Node {
    const n = this.nodes.get(id);
    if (!n) throw new KernelErrno('ESTALE');
    return n;
  }

  private entry(parent: Node, name: Buffer, st: sys.Stat): EntryOut {
    const found = this.nodes.lookup(parent, name, st);
    return this.entryOf(found.node, found.st);
  }

  private entryOf(node: Node, st: sys.Stat): EntryOut {
    this.onLookup?.(node);
    return { nodeId: node.id, generation: 0, entryTimeout: this.options.timeout, attrTimeout: this.options.timeout, attr: toAttr(st) };
  }

  lookup(_ctx: RequestContext, r: RequestOf<'LOOKUP'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    // "." and ".." come only with EXPORT_SUPPORT (NFS re-export); the descriptor resolves both.
    const name = isDotName(r.name) ? (r.name.length === 1 ? DOT : DOTDOT) : r.name;
    // A miss is the common case of every create; answer it without building an exception.
    const st = sys.statatIfExists(parent.fd, name, sys.AT_SYMLINK_NOFOLLOW);
    if (!st) throw NOT_FOUND;
    return this.entry(parent, name, st);
  }

  forget(nodeId: number, nlookup: number): void {
    const dropped = this.nodes.forget(nodeId, nlookup);
    if (dropped) this.onForget?.(dropped);
  }

  getattr(_ctx: RequestContext, r: RequestOf<'GETATTR'>): AttrOut {
    const open = r.getattrFlags & 1 ? this.files.get(r.fh) : undefined;
    const st = sys.fstat(open ? open.fd : this.node(r.header.nodeId).fd);
    return { attr: toAttr(st), attrTimeout: this.options.timeout };
  }

  setattr(ctx: RequestContext, r: RequestOf<'SETATTR'>): AttrOut {
    const fd = r.valid & SetattrValid.FH ? this.files.get(r.fh)?.fd : undefined;
    const node = this.node(r.header.nodeId);
    const st = applySetattr(node, fd, r, ctx);
    this.onChanged?.(node);
    return { attr: toAttr(st), attrTimeout: this.options.timeout };
  }

  readlink(_ctx: RequestContext, r: RequestOf<'READLINK'>): Buffer {
    return sys.readlinkat(this.node(r.header.nodeId).fd, '');
  }

  /** The entry of a name just made in `parent` (by the caller, as the caller). */
  private made(parent: Node, name: Buffer): EntryOut {
    const fd = sys.openat(parent.fd, name, sys.O_PATH | sys.O_NOFOLLOW);
    const st = sys.fstat(fd);
    const node = this.nodes.adopt(fd, st, parent, name);
    this.changedName(parent, name, node);
    return this.entryOf(node, st);
  }

  symlink(ctx: RequestContext, r: RequestOf<'SYMLINK'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    sys.asCaller(ctx, () => sys.symlinkat(r.target, parent.fd, r.name));
    return this.made(parent, r.name);
  }

  /** Regular files, fifos, sockets and devices: mknodat(2) as the caller. */
  mknod(ctx: RequestContext, r: RequestOf<'MKNOD'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    asCreator(ctx, r.umask, () => sys.mknodat(parent.fd, r.name, r.mode, r.rdev));
    return this.made(parent, r.name);
  }

  mkdir(ctx: RequestContext, r: RequestOf<'MKDIR'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    asCreator(ctx, r.umask, () => sys.mkdirat(parent.fd, r.name, r.mode & 0o7777));
    return this.made(parent, r.name);
  }

  unlink(_ctx: RequestContext, r: RequestOf<'UNLINK'>): void {
    const dir = this.node(r.header.nodeId);
    sys.unlinkat(dir.fd, r.name, 0);
    this.changedName(dir, r.name);
  }

  rmdir(_ctx: RequestContext, r: RequestOf<'RMDIR'>): void {
    const dir = this.node(r.header.nodeId);
    sys.unlinkat(dir.fd, r.name, sys.AT_REMOVEDIR);
    this.changedName(dir, r.name);
  }

  /** RENAME and RENAME2 with all of renameat2's flags (NOREPLACE, EXCHANGE, WHITEOUT). */
  rename(_ctx: RequestContext, r: RequestOf<'RENAME'>): void {
    const from = this.node(r.header.nodeId);
    const to = this.node(r.newDir);
    sys.renameat2(from.fd, r.name, to.fd, r.newName, r.flags);
    if (!this.onChanged) return;
    // a rename changes the ctime of what moved (both files, for an exchange)
    for (const [dir, name] of [[to, r.newName], [from, r.name]] as const) {
      const st = sys.statatIfExists(dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
      this.changedName(dir, name, st && this.nodes.find(st));
    }
  }

  /** Reports a name we changed in `dir`, and the node now under it, to the cache watcher. */
  private changedName(dir: Node, name: Buffer, node?: Node): void {
    if (!this.onChanged) return;
    this.onNameChanged?.(dir, name);
    this.onChanged(dir);
    if (node) this.onChanged(node);
  }

  /**
   * The kernel has checked the caller may link (protected_hardlinks included); linkat through the
   * node's descriptor links that very inode, whichever of its names still exist.
   */
  link(_ctx: RequestContext, r: RequestOf<'LINK'>): EntryOut {
    const parent = this.node(r.header.nodeId);
    const node = this.node(r.oldNodeId);
    sys.linkat(node.fd, '', parent.fd, r.name, sys.AT_EMPTY_PATH);
    const st = sys.fstat(node.fd);
    node.lookups++;
    this.changedName(parent, r.name, node);
    return this.entryOf(node, st);
  }

  private openReply(fd: number, node: Node, shared = false): OpenOut {
    const fh = this.nextFh++;
    let openFlags = 0;
    let backingId = 0;
    if (this.kernelPassthrough && node.type === C.S_IFREG) {
      backingId = this.backingFor(node, fd);
      if (backingId > 0) openFlags |= OpenFlag.PASSTHROUGH;
    }
    this.files.set(fh, { fd, node, backingId, shared });
    // With PASSTHROUGH the kernel takes no cache flags (it answers EIO to the open): the backing
    // file's own page cache serves the data.
    if (backingId > 0) return { fh, openFlags, backingId };
    if (this.options.keepCache) openFlags |= OpenFlag.KEEP_CACHE;
    if (this.options.directIo) openFlags |= OpenFlag.DIRECT_IO;
    return { fh, openFlags };
  }

  /**
   * The backing id of a node for kernel passthrough, registered with FUSE_DEV_IOC_BACKING_OPEN on
   * its first open and shared by every later open while one is open: the kernel refuses (EIO to
   * the caller's open) a second backing file for an inode. The kernel opens its own file on the
   * backing path with each open's flags, so the first fd's access mode does not limit later opens.
   * 0 if refused (e.g. a backing file on a stacked fs): then this open is served through us.
   */
  private backingFor(node: Node, fd: number): number {
    const held = this.backing.get(node);
    if (held) {
      held.opens++;
      return held.id;
    }
    const map = Buffer.alloc(16);
    map.writeInt32LE(fd, 0);
    let id: number;
    try {
      id = sys.ioctl(this.device!, FUSE_DEV_IOC_BACKING_OPEN, map);
    } catch {
      return 0;
    }
    this.backing.set(node, { id, opens: 1 });
    return id;
  }

  open(ctx: RequestContext, r: RequestOf<'OPEN'>): OpenOut {
    if (this.options.openless) throw new KernelErrno('ENOSYS'); // once: the kernel stops sending OPEN
    const node = this.node(r.header.nodeId);
    // O_DIRECT would impose alignment on our buffers; the kernel already bypasses its cache.
    // O_CREAT/O_EXCL never reach OPEN; reopening the magic link opens this very inode.
    if (node.type === C.S_IFREG && (r.flags & ~SHARE_IGNORES) === C.O_RDONLY) {
      const fd = this.sharedReadFd(node);
      if (fd !== undefined) return this.openReply(fd, node, true);
    }
    const fd = this.reopen(node, r.flags & ~(O_DIRECT | C.O_NOFOLLOW | C.O_CREAT | C.O_EXCL));
    if (r.flags & C.O_TRUNC) this.dropSetid(ctx, node, fd);
    return this.openReply(fd, node);
  }

  /**
   * One read-only descriptor per regular file, kept while the kernel remembers the node and used by
   * every plain read-only open of it. Reopening through the magic link walks /proc and cost ~20 us
   * of each OPEN: half of what a warm `grep -r` paid per file with --keep-cache. Every use of an
   * open file's descriptor is positioned (pread, fstat, fsync...), so opens may share one; opens
   * with a flag that matters (O_NOATIME, O_TRUNC, any write access) get their own. undefined when
   * MAX_SHARED_READ_FDS are held.
   */
  private sharedReadFd(node: Node): number | undefined {
    const held = node.own?.get(C.O_RDONLY);
    if (held !== undefined || this.nodes.heldFds >= MAX_SHARED_READ_FDS) return held;
    return this.nodes.ownFd(node, C.O_RDONLY, (flags) => this.reopen(node, flags));
  }

  /** A new descriptor of the node's inode, through its O_PATH one: works for any of its names and for none. */
  private reopen(node: Node, flags: number): number {
    return sys.reopen(node.fd, flags);
  }

  /**
   * The open file of an openless request (fh 0): the node's own descriptor for `access`, opened on
   * first use and kept with the node (write ones until idle, NodeTable.closeIdleWriters). The
   * kernel has checked the caller's access at open; we open as root. Not capped: in openless mode
   * every I/O needs one (the fd limit is raised to nr_open, and each node holds an O_PATH one anyway).
   */
  private ownFile(nodeId: number, access: Access, fileFlags: number): OpenFile {
    const node = this.node(nodeId);
    if (node.type !== C.S_IFREG) throw new KernelErrno('EBADF');
    const flags = (access === 'read' ? C.O_RDONLY : C.O_WRONLY) | (fileFlags & OWN_FD_FLAGS);
    if (access === 'write') node.writeUsed = true;
    return { fd: this.nodes.ownFd(node, flags, (f) => this.reopen(node, f)), node, backingId: 0, shared: true };
  }

  create(ctx: RequestContext, r: RequestOf<'CREATE'>): CreateOut {
    const parent = this.node(r.header.nodeId);
    const fd = asCreator(ctx, r.umask, () => sys.openat(parent.fd, r.name, (r.flags & ~O_DIRECT) | C.O_CREAT, r.mode & 0o7777));
    try {
      const st = sys.fstat(fd);
      const node = this.nodes.adopt(this.pathFdOf(parent, r.name, fd, st), st, parent, r.name);
      this.changedName(parent, r.name, node);
      if (this.options.openless) {
        // Once OPEN has had its ENOSYS the kernel sends no RELEASE for a created file either (a
        // bench run showed 5002 CREATEs, 1 RELEASE): a handle here would keep its descriptor open
        // for good, and the daemon ran out of descriptors after three rounds of 5000 creates. So
        // the created file is openless like every other (fh 0): its I/O uses the node's own
        // descriptors, opened on first use.
        io.close(fd);
        return { entry: this.entryOf(node, st), open: { fh: NO_HANDLE, openFlags: OpenFlag.KEEP_CACHE } };
      }
      return { entry: this.entryOf(node, st), open: this.openReply(fd, node) };
    } catch (err) {
      io.close(fd);
      throw err;
    }
  }

  /**
   * An O_PATH descriptor of the file just created as `fd`: opened by name (cheap), or, if the name
   * was replaced in between, through the /proc magic link of `fd` itself.
   */
  private pathFdOf(parent: Node, name: Buffer, fd: number, st: sys.Stat): number {
    const byName = sys.openat(parent.fd, name, sys.O_PATH | sys.O_NOFOLLOW);
    const found = sys.fstat(byName);
    if (found.ino === st.ino && found.dev === st.dev) return byName;
    sys.close(byName);
    return sys.reopen(fd, sys.O_PATH);
  }

  /**
   * A change of a file's data by a caller without CAP_FSETID (anyone but root here) drops its
   * setuid bit, and its setgid bit when group-executable or when the caller is outside the file's
   * group, as a local filesystem does. We write as root, so the backing fs would not; the kernel
   * has done the first two cases already, this catches the third. One fstat per such change.
   * Returns whether the mode changed (the kernel's cached mode is then stale).
   */
  private dropSetid(ctx: RequestContext, node: Node, fd: number): boolean {
    return ctx.uid !== 0 && killSuidgid(ctx, node, fd);
  }

  /**
   * The open file `fh` names; fh 0 (openless: the kernel opened without us) is the node's own for
   * `access` with what matters of the file's flags (those READ and WRITE carry).
   */
  private file(fh: number, nodeId: number, access: Access = 'read', fileFlags = 0): OpenFile {
    if (fh === NO_HANDLE && this.options.openless) return this.ownFile(nodeId, access, fileFlags);
    const f = this.files.get(fh);
    if (!f) throw new KernelErrno('EBADF');
    return f;
  }

  /** `fn` on a file's write descriptor; an openless one is not closed as idle until `fn` is done. */
  private async writing<T>(f: OpenFile, fn: () => Promise<T>): Promise<T> {
    f.node.writesRunning = (f.node.writesRunning ?? 0) + 1;
    try {
      return await fn();
    } finally {
      f.node.writesRunning!--;
      f.node.writeUsed = true;
    }
  }

  /**
   * A READ that continues the previous one is read inline: the backing filesystem's own readahead
   * has almost surely brought it into memory, and the pool's two thread hand-offs cost more than
   * the copy (seq read 0.6-0.76x bindfs on the pool, 0.83-1.1x inline). Any other READ may wait on
   * the disk, so it goes to the pool and overlaps with the others.
   */
  read(_ctx: RequestContext, r: RequestOf<'READ'>): Buffer | Promise<Buffer> | typeof ANSWERED_ELSEWHERE {
    return io.read(this.file(r.fh, r.header.nodeId, 'read', r.flags).fd, r.size, r.offset, r.header.unique, this.requestsWaiting, this.readWorkers);
  }

  write(ctx: RequestContext, r: RequestOf<'WRITE'>): number | Promise<number> {
    // The file's open flags come with each WRITE: an O_APPEND one appends wherever the end now is.
    const f = this.file(r.fh, r.header.nodeId, 'write', r.flags);
    // Awaited before the reply so the caller's next stat sees the new mode; attrs-only
    // invalidation takes no lock this WRITE holds (fuse-protocol.md A6).
    if (this.dropSetid(ctx, f.node, f.fd) && this.onAttrsChanged) {
      return this.writing(f, () => this.onAttrsChanged!(r.header.nodeId)).then(() => this.writeNow(f, r));
    }
    return this.writeNow(f, r);
  }

  private writeNow(f: OpenFile, r: RequestOf<'WRITE'>): number {
    const n = io.writeAll(f.fd, r.data, r.offset);
    this.onChanged?.(f.node);
    return n;
  }

  statfs(_ctx: RequestContext, r: RequestOf<'STATFS'>): StatfsOut {
    const s = statfsSync(sys.fdPath(this.node(r.header.nodeId || ROOT_ID).fd));
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  release(_ctx: RequestContext, r: RequestOf<'RELEASE'>): void {
    const f = this.files.get(r.fh);
    if (!f) return;
    this.files.delete(r.fh);
    if (f.backingId > 0) this.releaseBacking(f.node);
    if (!f.shared) io.close(f.fd);
  }

  /** One open of the node's backing file is gone; the last one unregisters it. */
  private releaseBacking(node: Node): void {
    const held = this.backing.get(node);
    if (!held || --held.opens > 0) return;
    this.backing.delete(node);
    const arg = Buffer.alloc(4);
    arg.writeUInt32LE(held.id, 0);
    try {
      sys.ioctl(this.device!, FUSE_DEV_IOC_BACKING_CLOSE, arg);
    } catch {
      // the connection is going away: the kernel drops every backing file with it
    }
  }

  // No flush(): nothing is buffered here (every WRITE already reached the backing file), and the
  // ENOSYS the session answers makes the kernel stop sending FLUSH at all: one round trip less on
  // every close (create 5 -> 4 requests). Locks are kernel-local on this mount (no POSIX_LOCKS).

  async fsync(_ctx: RequestContext, r: RequestOf<'FSYNC'>): Promise<void> {
    // Any descriptor of the inode syncs its data: an openless one uses the node's read descriptor.
    const fd = this.file(r.fh, r.header.nodeId).fd;
    await (r.fsyncFlags & 1 ? io.fdatasync(fd) : io.fsync(fd));
  }

  // READDIR comes without a handle of ours: each directory node keeps one descriptor for reading
  // entries, positioned by the backing filesystem's own cookies (d_off), so a listing behaves
  // exactly like one on the bare directory while entries come and go.

  /**
   * With --keep-cache: ENOSYS, once, and the kernel stops sending OPENDIR and RELEASEDIR (two round
   * trips less per directory, which keeps a warm tree walk as fast as on the bare directory) and
   * caches every listing (KEEP_CACHE|CACHE_DIR is its default without OPENDIR), revalidated by the
   * directory's mtime at the start of each listing and dropped by any change made through the
   * mount or seen behind it.
   *
   * Otherwise the kernel caches a listing only if we listed that directory through to its end
   * before and it has not changed since (its ctime): caching costs the reader about 200 ns an
   * entry, so a directory listed once (a cold listing, most of a tree walk) is not cached, and one
   * listed again is, from its second listing on. A cold listing of 3000 names spent 250-290 us
   * between two replies with the cache, against 110-150 for bindfs, which caches none.
   */
  opendir(_ctx: RequestContext, r: RequestOf<'OPENDIR'>): OpenOut {
    if (this.options.keepCache) throw new KernelErrno('ENOSYS');
    const dir = this.node(r.header.nodeId);
    const cache = dir.listedCtime !== undefined && sameTime(dir.listedCtime, sys.fstat(dir.fd).ctime);
    return { fh: NO_HANDLE, openFlags: cache ? OpenFlag.KEEP_CACHE | OpenFlag.CACHE_DIR : 0 };
  }

  releasedir(): void {
    // Nothing per open: the node's descriptor serves every listing of the directory.
  }

  private dirFd(node: Node): number {
    // O_NOATIME: our reading is not the caller's (a cached listing is served without us at all).
    node.dirFd ??= sys.openat(node.fd, DOT, C.O_RDONLY | C.O_DIRECTORY | O_NOATIME);
    return node.dirFd;
  }

  /** The entries of a directory reach the disk only with an fsync of the directory itself. */
  async fsyncdir(_ctx: RequestContext, r: RequestOf<'FSYNCDIR'>): Promise<void> {
    const fd = this.dirFd(this.node(r.header.nodeId));
    await (r.fsyncFlags & 1 ? io.fdatasync(fd) : io.fsync(fd));
  }

  readdir(_ctx: RequestContext, r: RequestOf<'READDIR'>, out: DirBuffer): void {
    return this.fillDir(r.header.nodeId, r.cookie, out, false);
  }

  readdirplus(_ctx: RequestContext, r: RequestOf<'READDIRPLUS'>, out: DirBuffer): void {
    return this.fillDir(r.header.nodeId, r.cookie, out, true);
  }

  /**
   * Lists the source's root as READDIRs would, over and over for a few milliseconds, so that V8 has
   * compiled the listing code before the first real listing: on a fresh daemon the first cold
   * listing of 3000 names took 22-25 ms, the tenth 7-10. Plain READDIR only: READDIRPLUS would
   * make nodes the kernel never heard of. It leaves nothing behind that a real listing would see:
   * no unsent records, and the root not marked as listed (opendir would have the kernel cache its
   * first real listing).
   */
  private warmUpListing(): void {
    const start = process.hrtime.bigint();
    for (let i = 0; i < WARM_UP_LISTINGS && process.hrtime.bigint() - start < WARM_UP_NS; i++) {
      let cookie = 0n;
      for (let reply = 0; reply < WARM_UP_REPLIES; reply++) {
        const out = new DirBuffer(0n, WARM_UP_REPLY_BYTES);
        this.fillDir(ROOT_ID, cookie, out, false);
        if (out.isEmpty) break;
        cookie = out.lastCookie!;
      }
    }
    this.unsent = undefined;
    this.nodes.root.listedCtime = undefined;
  }

  /**
   * Entries from cookie r.cookie on, each with the backing d_off as its own cookie. A listing reads
   * the directory ahead, up to LISTING_BATCH bytes of records in a row, and its next READDIRs are
   * answered from them without moving the descriptor, as long as the directory's ctime shows no
   * change. bindfs reads a whole directory at the first request too: the backing getdents calls
   * then run back to back, not one per round trip, and an ext4 htree directory is never seeked,
   * which makes its next getdents rebuild the hash order from its blocks. A READDIR from any
   * other cookie (the caller kept only part of a reply, a rewind, a second listing) seeks, and
   * cookie 0 always reads afresh: a new listing sees every change made before it.
   * "." and ".." in READDIRPLUS carry node id 0 (no lookup).
   *
   * Which READDIRPLUS entries get attributes (the rest carry node id 0: name and type only, as a
   * plain READDIR). Each costs an lstat that, on a cold cache, reads the inode from disk, and the
   * kernel asks for READDIRPLUS at the start of every listing, also for a program that only wants
   * names (ls -f, find): 200 of them made a cold listing of 3000 names 10x slower than bindfs's,
   * which sends no attributes at all. So the first reply of a listing (cookie 0) carries the
   * attributes of directories only, which a tree walk (find, du, cp -r, rm -r) looks up anyway.
   * The kernel asks for READDIRPLUS again later in the listing only when entries were looked up
   * meanwhile (ls -l, stat of each): then every entry gets its attributes, at most PLUS_ENTRIES_MAX
   * per reply, and the kernel goes on from where the reply ended.
   */
  private fillDir(nodeId: number, cookie: bigint, out: DirBuffer, plus: boolean): void {
    const dir = this.node(nodeId);
    const fd = this.dirFd(dir);
    const buf = this.listing;
    let b = this.unsent;
    this.unsent = undefined;
    const ctime = sys.fstat(fd).ctime;
    if (!(b && b.dir === dir && b.cookie === cookie && cookie !== 0n && sameTime(b.ctime, ctime))) {
      if (dir.dirPos !== cookie || cookie === 0n) sys.seekdir(fd, cookie);
      dir.dirPos = cookie;
      b = { dir, cookie, at: 0, n: 0, ctime };
    }
    const plusState = { dirsOnly: cookie === 0n, stated: 0 };
    for (;;) {
      if (b.at === b.n) {
        b.cookie = dir.dirPos!;
        [b.at, b.n] = [0, readAhead(fd, buf, dir)];
        if (b.n === 0) {
          dir.listedCtime = ctime; // listed to its end, as it was at `ctime` (opendir)
          return;
        }
      }
      const stop = plus ? this.addPlus(dir, fd, buf, b.at, b.n, out, plusState) : out.addDirents64(buf, b.n, b.at);
      if (stop < b.n) {
        // The reply is full: the kernel continues from the cookie of the last record it got.
        this.unsent = { ...b, cookie: out.lastCookie ?? b.cookie, at: stop };
        return;
      }
      b.at = b.n;
    }
  }

  /**
   * READDIRPLUS records for buf[at, n), some with the attributes of a lookup (see fillDir):
   * where it stopped (n when all were added).
   */
  private addPlus(dir: Node, fd: number, buf: Buffer, at: number, n: number, out: DirBuffer, reply: { dirsOnly: boolean; stated: number }): number {
    for (; at < n; at += buf.readUInt16LE(at + sys.DIRENT64.RECLEN)) {
      if (reply.dirsOnly) {
        // Only directories get attributes: runs of the others in one pass, which stops before a
        // directory, or where the reply is full.
        at = out.addDirents64(buf, n, at, true);
        if (at === n || buf[at + sys.DIRENT64.TYPE] !== DT_DIR) return at;
      }
      const nameAt = at + sys.DIRENT64.NAME;
      const nameLen = sys.direntNameEnd(buf, at) - nameAt;
      if (!out.fits(nameLen, true) || reply.stated === PLUS_ENTRIES_MAX) return at;
      if (isDotAt(buf, nameAt, nameLen)) {
        out.addCopied(buf, at, buf[at + sys.DIRENT64.TYPE]!, nameAt, nameLen, true);
        continue;
      }
      const name = Buffer.from(buf.subarray(nameAt, nameAt + nameLen));
      const st = sys.statatIfExists(fd, name, sys.AT_SYMLINK_NOFOLLOW);
      reply.stated++;
      if (!st) continue; // removed since getdents read it: as if read after the removal
      out.addPlus(this.entry(dir, name, st), buf.readBigUInt64LE(at + sys.DIRENT64.OFF), direntType(st.mode), name);
    }
    return n;
  }

  /** Every mode the backing filesystem supports (keep-size, punch-hole, zero-range...), off-thread. */
  async fallocate(ctx: RequestContext, r: RequestOf<'FALLOCATE'>): Promise<void> {
    const f = this.file(r.fh, r.header.nodeId, 'write');
    await this.writing(f, () => sys.runBlocking({ fn: 'fallocate', args: [f.fd, r.mode, r.offset, r.length] }));
    this.onChanged?.(f.node);
    // The kernel clears no set-id bits for a FUSE fallocate; a local filesystem does.
    if (this.dropSetid(ctx, f.node, f.fd)) await this.onAttrsChanged?.(r.header.nodeId);
  }

  getxattr(_ctx: RequestContext, r: RequestOf<'GETXATTR'>): Buffer {
    return xattr.getxattr(this.nodes, this.node(r.header.nodeId), r.name);
  }

  listxattr(ctx: RequestContext, r: RequestOf<'LISTXATTR'>): Buffer {
    return xattr.listxattr(this.nodes, this.node(r.header.nodeId), ctx.uid);
  }

  setxattr(_ctx: RequestContext, r: RequestOf<'SETXATTR'>): void {
    xattr.setxattr(this.nodes, this.node(r.header.nodeId), r.name, r.value, r.flags);
  }

  removexattr(_ctx: RequestContext, r: RequestOf<'REMOVEXATTR'>): void {
    xattr.removexattr(this.nodes, this.node(r.header.nodeId), r.name);
  }

  /** SEEK_DATA / SEEK_HOLE, answered by the backing file (the kernel answers the other whences). */
  lseek(_ctx: RequestContext, r: RequestOf<'LSEEK'>): number {
    return sys.lseek(this.file(r.fh, r.header.nodeId).fd, r.offset, r.whence);
  }

  /** Copy in 1 MiB chunks between two open handles; short at end of file, like the syscall. */
  copyFileRange(_ctx: RequestContext, r: RequestOf<'COPY_FILE_RANGE'>): number {
    if (r.flags !== 0) throw new KernelErrno('EINVAL');
    const fdIn = this.file(r.fhIn, r.header.nodeId).fd;
    const out = this.file(r.fhOut, r.nodeIdOut, 'write');
    const fdOut = out.fd;
    const chunk = Buffer.allocUnsafe(Math.min(r.len, COPY_CHUNK));
    let done = 0;
    while (done < r.len) {
      const n = readSync(fdIn, chunk, 0, Math.min(chunk.length, r.len - done), r.offIn + done);
      if (n === 0) break;
      let written = 0;
      while (written < n) written += io.pwrite(fdOut, chunk.subarray(written, n), r.offOut + done + written);
      done += n;
    }
    this.onChanged?.(out.node);
    return done;
  }

  access(): void {
    // default_permissions: the kernel has already checked the caller's rights.
  }

  destroy(): void {
    clearInterval(this.idleWriters);
    this.readWorkers?.close();
    for (const f of this.files.values()) {
      try {
        if (!f.shared) io.close(f.fd);
      } catch {
        // closing at teardown: nothing left to report to
      }
    }
    this.files.clear();
    this.nodes.clear();
  }
}

/**
 * getdents into buf from its start until LISTING_BATCH is nearly full or the directory ends: the
 * bytes of records read. Sets dir.dirPos to where the descriptor then stands.
 */
function readAhead(fd: number, buf: Buffer, dir: Node): number {
  let n = 0;
  while (buf.length - n >= GETDENTS_CHUNK) {
    const got = sys.getdentsRaw(fd, buf.subarray(n, n + GETDENTS_CHUNK));
    if (got === 0) break;
    n += got;
  }
  dir.dirPos = sys.telldir(fd);
  return n;
}

const sameTime = (a: sys.Timespec, b: sys.Timespec): boolean => a.sec === b.sec && a.nsec === b.nsec;

