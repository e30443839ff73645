// The /mfs mount: the whole cluster of a map file as one FUSE filesystem. The root lists the map's
// node numbers (from the map alone, no network); /mfs/<K> is node K, reached through a session
// opened when it is first used (node-conn.ts). Every operation under /mfs/<K> is forwarded to node
// K with the caller's uid, gid, groups and pid; node K's errno comes back as it is.
//
// What node K shows: its exports (NodeService Identify). One export, or an export of "/", is
// /mfs/<K> itself. Several: each at its own path under /mfs/<K>, the directories leading to them
// shown read-only (virtual inodes).
//
// Caching: while node K's session is up, replies carry long entry/attr timeouts and opens keep the
// page cache; the node's invalidations become kernel notifications (kernel-cache.ts). A reply
// that raced an invalidation of an inode it describes (one arrived while it was in flight) is
// answered with timeouts 0, so the kernel never keeps what the node already said is stale.
//
// Links: hard links and renames stay within a node (EXDEV across). An absolute symlink target
// stored on node K reads as MOUNTPOINT/K/<target>, so nothing resolves to this machine's own files;
// a symlink made through /mfs/<K> to a target under MOUNTPOINT/K/ is stored as the path on K.
//
// Listings start with "." and ".." (the mount adds them: nodes list their entries only).
//
// copy_file_range within a node is done by that node (no data over the network).
//
// Not (yet) here: flock (kernel-local on this mount).
//
// Special directories (here, home, magic, lastexec, selected) and /mfs/.control/selected: resolved
// for each calling process, see special-nodes.ts; everything below them is a node's files under
// node ids of their own (inodes.ts: views).
//
// Device files of a node are not served, as in oMFS: opened here they would be this machine's
// devices (the kernel opens a device inode's driver by rdev, not through us). They do not appear in
// listings, look up as ENOENT, and mknod of one is EPERM.
import { constants as C } from 'node:fs';
import {
  KernelErrno, OpenFlag, ROOT_ID, SetattrValid,
  type AttrOut, type CreateOut, type DirBuffer, type EntryOut, type FileLock, type FileSystem, type OpenOut,
  type RequestContext, type RequestOf, type StatfsOut,
} from '../kernel/index.js';
import type { NodeLink } from '../../proto/node-link.js';
import type { Attr, Entry } from '../../proto/session-client.js';
import { afterChange } from '../../proto/after-change.js';
import type { ClusterMap } from '../../cluster/map-file.js';
import { bigOf, callerOf, isDevice, kernelAttr, S_IFDIR, S_IFMT, syntheticDirAttr } from './attrs.js';
import { InodeTable, nameKey, viewOf, type MfsInode } from './inodes.js';
import { Listings } from './listing.js';
import { KernelCache } from './kernel-cache.js';
import { MetaCache } from './meta-cache.js';
import { OpenFiles, type OpenFile } from './open-files.js';
import type { NodeConn } from './node-conn.js';
import type { ProcessTable } from './special/index.js';
import { defaultProcessTable, SpecialNodes } from './special-nodes.js';

export interface MfsOptions {
  /** Absolute path of the mount point (absolute symlink targets are shown under it). */
  mountPoint: string;
  readOnly: boolean;
  /** Entry and attribute timeout, in seconds, for replies that may be cached. */
  cacheSeconds: number;
  /** Names this mount's POSIX locks on the nodes (with each lock owner). */
  lockClientId: string;
  /** Debug lines (each invalidation and what became of it); none when absent. */
  log?: (line: string) => void;
  /** This mount's node: /mfs/here, and where creates through /mfs/magic go. */
  thisNode: number;
  /** Per-process state of the special directories (fed by proc events when the caller has them); a bare one by default. */
  processes?: ProcessTable;
}

type Remote = MfsInode & { kind: 'remote' };
/** Where a create goes: a directory of a node, by handle (and cluster inode number). */
interface Place { node: number; handle: Buffer; ino: bigint }

const F_UNLCK = 2;
const RENAME_EXCHANGE = 2;
const O_DIRECT = 0o40000;
/** Flags that only mean something at open: a reopen after a node restart must not repeat them. */
const OPEN_ONLY = C.O_CREAT | C.O_EXCL | C.O_TRUNC | C.O_NOCTTY;
const errno = (code: ConstructorParameters<typeof KernelErrno>[0]): KernelErrno => new KernelErrno(code);
const caller = callerOf;
const O_ACCMODE = 3;
const isWriteOpen = (flags: number): boolean => (flags & O_ACCMODE) !== C.O_RDONLY || (flags & C.O_TRUNC) !== 0;

export class MfsFs implements FileSystem {
  readonly inodes = new InodeTable();
  readonly cache = new KernelCache(this.inodes);
  /** What nodes said about names and attributes, beyond what the kernel keeps (meta-cache.ts). */
  private readonly meta = new MetaCache();
  /** getattr calls under way, by "node:ino", to join (fetchAttr). */
  private readonly attrFetches = new Map<string, { ticket: number; since: number; done: Promise<{ attr: Attr; since: number }> }>();
  private readonly files = new OpenFiles();
  /** Node numbers of the map, in order: the root's listing. */
  private nodeList: number[];

  readonly special: SpecialNodes;
  private readonly listings: Listings;

  constructor(map: ClusterMap, private conns: ReadonlyMap<number, NodeConn>, private readonly opts: MfsOptions) {
    this.nodeList = [...map.nodes.keys()].sort((a, b) => a - b);
    for (const conn of conns.values()) this.wire(conn);
    this.special = new SpecialNodes(this.inodes, opts.processes ?? defaultProcessTable(opts.thisNode), {
      thisNode: opts.thisNode, knownNode: (n) => this.conns.has(n), cacheSeconds: opts.cacheSeconds,
    });
    this.listings = new Listings({
      inodes: this.inodes, meta: this.meta, cache: this.cache, special: this.special,
      conn: (node) => this.conn(node), nodeList: () => this.nodeList, timeout: (fresh) => this.timeout(fresh),
    });
  }

  /**
   * For the scheduler (DFSA): the process of thread `tid` belongs to home node `node`, and so do
   * the children it starts from then on (/mfs/home).
   */
  setHome(tid: number, node: number): void {
    this.special.table.setHome(tid, node);
  }

  private wire(conn: NodeConn): void {
    conn.onInvalidate = (inv) => {
      this.opts.log?.(`mfs: node ${conn.node} invalidates ${inv.kind} ${inv.ino}${inv.kind === 'name' ? ` ${JSON.stringify(inv.name.toString('latin1'))}` : ''}${inv.kind === 'data' ? ` [${inv.offset}+${inv.length}]` : ''} (node id ${this.inodes.byIno(conn.node, inv.ino)?.id ?? 'none'})`);
      return this.cache.invalidate(conn.node, inv);
    };
    conn.onLost = () => {
      this.meta.dropNode(conn.node);
      return this.cache.dropNode(conn.node);
    };
  }

  /**
   * The map was re-read (SIGHUP): `conns` are the nodes now, each the old connection when its
   * address did not change. The kernel forgets the root's listing and the names of the nodes that
   * left or moved, so the next `ls` or lookup shows the new membership; the caller retires the
   * connections that are no longer used (which drops what was cached from them).
   */
  setMembership(map: ClusterMap, conns: ReadonlyMap<number, NodeConn>): Promise<unknown> {
    const changed = this.nodeList.filter((k) => conns.get(k) !== this.conns.get(k));
    for (const conn of conns.values()) if (this.conns.get(conn.node) !== conn) this.wire(conn);
    this.conns = conns;
    this.nodeList = [...map.nodes.keys()].sort((a, b) => a - b);
    const root = this.inode(ROOT_ID);
    return Promise.all([...changed.map((k) => this.cache.dropName(root, Buffer.from(String(k)))), this.cache.dropListing(root)]);
  }

  // ---- the table ----

  private inode(id: number): MfsInode {
    const i = this.inodes.get(id);
    if (!i) throw errno('ESTALE');
    return i;
  }

  private conn(node: number): NodeConn {
    const c = this.conns.get(node);
    if (!c) throw errno('ENOENT');
    return c;
  }

  /**
   * The inode as it really is: /mfs/<K> becomes node K's root export once its session is open (same
   * node id). Opens the session: this is "first use".
   */
  private async resolve(ctx: RequestContext, i: MfsInode): Promise<MfsInode> {
    if (i.kind !== 'virtual' || i.path !== '') return i;
    const conn = this.conn(i.node);
    await conn.call(async () => undefined); // opens the session (and reads the exports) once
    const root = rootExport(conn.exports.map((e) => e.path));
    if (root === undefined) return i;
    const e = await conn.call((s) => s.root(caller(ctx), root));
    const bound = this.inodes.bindRoot(i, bigOf(e.attr.ino), e.handle);
    bound.type = e.attr.mode & S_IFMT;
    return bound;
  }

  /** A change of `name` in `dir` failed: whether it happened is not known here (a timeout, a lost reply). */
  private unknownOutcome(dir: Place, name: Buffer, err: unknown): never {
    this.meta.forgetName(dir.node, dir.ino, name);
    throw err;
  }

  /** A remote inode or EROFS (the mount's own directories cannot be changed). */
  private async remote(ctx: RequestContext, id: number): Promise<Remote> {
    const i = await this.resolve(ctx, this.inode(id));
    if (i.kind !== 'remote') throw errno('EROFS');
    return i;
  }

  private writable(): void {
    if (this.opts.readOnly) throw errno('EROFS');
  }

  private timeout(fresh: boolean): number {
    return fresh ? this.opts.cacheSeconds : 0;
  }

  /**
   * A directory changed through this mount: the node never sends a session its own changes, so
   * the same directory's node ids in the other views (a special directory's, the ordinary tree's)
   * are told here. Not awaited: INVAL_ENTRY takes the other directory's lock, which a request
   * waiting for us may hold (kernel-cache.ts).
   */
  private echoName(node: number, dirIno: bigint, name: Buffer, except?: MfsInode): void {
    for (const other of this.inodes.allByIno(node, dirIno)) if (other !== except) void this.cache.dropName(other, name);
  }

  /** A directory's attributes changed through this mount (files share one node id: nothing to tell). */
  private echoAttr(i: Remote): void {
    if ((i.type & S_IFMT) !== S_IFDIR) return;
    for (const other of this.inodes.allByIno(i.node, i.ino)) if (other !== i) void this.cache.dropListing(other);
  }

  /** An entry reply for `e`, found as `name` in `dir`; cached only if nothing raced it. */
  private entry(dir: MfsInode, name: Buffer, node: number, e: Entry, since: number): EntryOut {
    if (isDevice(e.attr.mode)) throw errno('ENOENT');
    const ino = bigOf(e.attr.ino);
    const child = this.inodes.remote(node, ino, e.handle, e.attr.mode & S_IFMT, viewOf(dir, e.attr.mode));
    this.inodes.entered(dir, name, child);
    const dirIno = dir.kind === 'remote' ? [dir.ino] : [];
    const t = this.timeout(this.conn(node).fresh(since, ino, ...dirIno));
    return { nodeId: child.id, generation: 0, entryTimeout: t, attrTimeout: t, attr: kernelAttr(e.attr) };
  }

  /** Runs `fn` on the session of node `node`. */
  private on<T>(node: number, fn: (s: NodeLink) => Promise<T>): Promise<T> {
    return this.conn(node).call(fn);
  }

  // ---- names ----

  async lookup(ctx: RequestContext, r: RequestOf<'LOOKUP'>): Promise<EntryOut> {
    const parent = await this.resolve(ctx, this.inode(r.header.nodeId));
    if (parent.kind === 'top') return this.lookupTop(ctx, r.name);
    if (parent.kind === 'own') return this.special.lookupOwn(parent, r.name.toString('latin1'));
    if (parent.kind === 'virtual') return this.lookupVirtual(ctx, parent, r.name);
    const conn = this.conn(parent.node);
    const known = this.meta.entry(parent.node, conn, parent.ino, r.name);
    if (known) return known.entry ? this.entry(parent, r.name, parent.node, known.entry, known.since) : this.negative(conn, parent, known.since);
    const since = conn.mark();
    const ticket = this.meta.ticket(parent.node);
    let e: Entry;
    try {
      e = await conn.call((s) => s.lookup(caller(ctx), parent.handle, r.name));
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      this.meta.putEntry(parent.node, conn, parent.ino, r.name, null, since, ticket);
      return this.negative(conn, parent, since);
    }
    this.meta.putEntry(parent.node, conn, parent.ino, r.name, e, since, ticket);
    return this.entry(parent, r.name, parent.node, e, since);
  }

  /**
   * No such name: a negative entry the kernel keeps as long as a positive one (the node registered
   * its NAMES callback on the directory, so a create there from anywhere reaches us), or ENOENT
   * when something raced the answer.
   */
  private negative(conn: NodeConn, dir: Remote, since: number): EntryOut {
    const t = this.timeout(conn.fresh(since, dir.ino));
    if (t === 0) throw errno('ENOENT');
    return { nodeId: 0, generation: 0, entryTimeout: t, attrTimeout: 0, attr: syntheticDirAttr(0) };
  }

  /** A name in the mount's root: a node number, a special directory, or the control directory. */
  private async lookupTop(ctx: RequestContext, name: Buffer): Promise<EntryOut> {
    const text = name.toString('latin1');
    const control = this.special.lookupControlDir(text);
    if (control) return control;
    const found = this.special.lookupSpecial(ctx, text);
    if (!found) return this.lookupNode(name);
    // The attributes of what it stands for (the node's root, or the mount's directory if the node
    // cannot be reached), cached as the node's root's are: they are the same for every process
    // given this node id, and the node's invalidations reach it. Only the name is never cached.
    // Counted before the wait, so a FORGET of an earlier lookup arriving meanwhile cannot drop it.
    const gateway = found.gateway;
    gateway.lookups++;
    try {
      const { attr, attrTimeout } = await this.attrOf(ctx, gateway, 0);
      return { nodeId: gateway.id, generation: 0, entryTimeout: found.entryTimeout, attrTimeout, attr };
    } catch (err) {
      this.inodes.forget(gateway.id, 1);
      throw err;
    }
  }

  /** /mfs/<K>: from the map alone (no network); its attributes come with the next GETATTR. */
  private lookupNode(name: Buffer): EntryOut {
    const text = name.toString('latin1');
    const k = /^[1-9]\d*$/.test(text) ? Number(text) : NaN;
    if (!this.conns.has(k)) throw errno('ENOENT');
    const gw = this.inodes.virtual(k, '');
    this.inodes.entered(this.inode(ROOT_ID), name, gw);
    // The name never changes meaning: cache it. Its attributes change once the node is used.
    return { nodeId: gw.id, generation: 0, entryTimeout: this.opts.cacheSeconds, attrTimeout: 0, attr: syntheticDirAttr(gw.id) };
  }

  private async lookupVirtual(ctx: RequestContext, dir: MfsInode & { kind: 'virtual' }, name: Buffer): Promise<EntryOut> {
    const conn = this.conn(dir.node);
    const path = `${dir.path}/${name.toString('utf8')}`;
    const exports = conn.exports.map((e) => e.path);
    if (exports.includes(path)) {
      const since = conn.mark();
      const e = await conn.call((s) => s.root(caller(ctx), path));
      return this.entry(dir, name, dir.node, e, since);
    }
    if (!exports.some((p) => p.startsWith(path + '/'))) throw errno('ENOENT');
    const child = this.inodes.virtual(dir.node, path, dir.view);
    this.inodes.entered(dir, name, child);
    return { nodeId: child.id, generation: 0, entryTimeout: this.opts.cacheSeconds, attrTimeout: this.opts.cacheSeconds, attr: syntheticDirAttr(child.id) };
  }

  forget(nodeId: number, nlookup: number): void {
    this.inodes.forget(nodeId, nlookup);
    if (!this.inodes.get(nodeId)) this.cache.suspectPages.delete(nodeId);
  }

  /**
   * /mfs/<K> shows the attributes of what it is (node K's root export, so st_ino does not change
   * under a program walking the tree): a stat of it is a use of node K. A node that cannot be
   * reached shows the mount's own read-only directory, not cached, so `ls -l /mfs` works with
   * nodes down.
   */
  getattr(ctx: RequestContext, r: RequestOf<'GETATTR'>): Promise<AttrOut> | AttrOut {
    const i = this.inode(r.header.nodeId);
    if (i.kind === 'own') return this.special.ownAttr(i);
    return this.attrOf(ctx, i, r.getattrFlags & 1 ? this.files.get(r.fh)?.fh ?? 0 : 0);
  }

  private async attrOf(ctx: RequestContext, start: MfsInode, fh: number | string): Promise<AttrOut> {
    let i = start;
    if (i.kind === 'virtual' && i.path === '') {
      try {
        i = await this.resolve(ctx, i);
      } catch {
        return { attr: syntheticDirAttr(i.id), attrTimeout: 0 };
      }
    }
    if (i.kind !== 'remote') return { attr: syntheticDirAttr(i.id), attrTimeout: this.opts.cacheSeconds };
    const remote = i;
    const conn = this.conn(remote.node);
    const known = this.meta.attr(remote.node, conn, remote.ino);
    if (known) return { attr: kernelAttr(known), attrTimeout: this.opts.cacheSeconds };
    const { attr, since } = await this.fetchAttr(ctx, remote, fh || this.files.nodeFhOf(remote));
    return { attr: kernelAttr(attr), attrTimeout: this.timeout(conn.fresh(since, remote.ino)) };
  }

  /**
   * The node's attributes of `i`, joining a fetch of them already under way when nothing changed
   * them here since it was asked for (prefetch() starts one right after a change of a directory,
   * which the kernel follows with a GETATTR of it for its permission checks).
   */
  private fetchAttr(ctx: RequestContext, i: Place, fh: number | string = 0): Promise<{ attr: Attr; since: number }> {
    const key = `${i.node}:${i.ino}`;
    const conn = this.conn(i.node);
    const going = this.attrFetches.get(key);
    // Joined only if nothing changed the inode since it was asked for, here or on the node: a
    // reply that raced an invalidation may hold what the change replaced.
    if (going && conn.fresh(going.since, i.ino) && this.meta.attrUntouched(i.node, going.ticket, i.ino)) return going.done;
    const since = conn.mark();
    const ticket = this.meta.ticket(i.node);
    const done = conn.call((s) => s.getAttr(caller(ctx), i.handle, fh)).then((attr) => {
      this.meta.putAttr(i.node, conn, attr, since, ticket);
      return { attr, since };
    });
    const entry = { ticket, since, done };
    this.attrFetches.set(key, entry);
    const clear = (): void => {
      if (this.attrFetches.get(key) === entry) this.attrFetches.delete(key);
    };
    done.then(clear, clear);
    return done;
  }

  /**
   * After a change through this mount: the attributes its reply came with (the node's post-op
   * attributes of the directories it changed and of a renamed file) replace what was cached; those
   * of `stale` it did not give are fetched before they are asked for.
   */
  private changed(ctx: RequestContext, reply: unknown, since: number, ...stale: Array<Remote | Place | undefined>): void {
    for (const a of afterChange<Attr>(reply)) this.meta.changedAttr(stale[0]!.node, a, since);
    for (const p of stale) if (p && !this.meta.attr(p.node, this.conn(p.node), p.ino)) this.prefetch(ctx, p);
  }

  /**
   * A change through this mount altered the attributes of `i` (a directory's, or a renamed file's
   * ctime): fetch them before they are asked for (the kernel's next permission check, the next stat).
   */
  private prefetch(ctx: RequestContext, i: Place | undefined): void {
    if (i) this.fetchAttr(ctx, i).catch(() => undefined);
  }

  async setattr(ctx: RequestContext, r: RequestOf<'SETATTR'>): Promise<AttrOut> {
    const own = this.inode(r.header.nodeId);
    if (own.kind === 'own') return this.special.ownAttr(own); // truncating the control file: nothing to do
    this.writable();
    const i = await this.remote(ctx, r.header.nodeId);
    const v = r.valid;
    const fields: Record<string, unknown> = {
      valid_mode: (v & SetattrValid.MODE) !== 0, mode: r.mode,
      valid_uid: (v & SetattrValid.UID) !== 0, uid: r.uid,
      valid_gid: (v & SetattrValid.GID) !== 0, gid: r.gid,
      valid_size: (v & SetattrValid.SIZE) !== 0, size: r.size,
      valid_atime: (v & (SetattrValid.ATIME | SetattrValid.ATIME_NOW)) !== 0, atime_now: (v & SetattrValid.ATIME_NOW) !== 0, atime: r.atime,
      valid_mtime: (v & (SetattrValid.MTIME | SetattrValid.MTIME_NOW)) !== 0, mtime_now: (v & SetattrValid.MTIME_NOW) !== 0, mtime: r.mtime,
      fh: (v & SetattrValid.FH ? this.files.get(r.fh)?.fh : undefined) ?? this.files.nodeFhOf(i),
    };
    const conn = this.conn(i.node);
    const since = conn.mark();
    const attr = await conn.call((s) => s.setAttr(caller(ctx), i.handle, fields)).finally(() => this.meta.touched(i.node, i.ino));
    this.meta.changedAttr(i.node, attr, since);
    this.echoAttr(i);
    return { attr: kernelAttr(attr), attrTimeout: this.timeout(conn.fresh(since, i.ino)) };
  }

  async readlink(ctx: RequestContext, r: RequestOf<'READLINK'>): Promise<Buffer> {
    const i = await this.remote(ctx, r.header.nodeId);
    const target = await this.on(i.node, (s) => s.readlink(caller(ctx), i.handle));
    if (target[0] !== 0x2f) return target;
    return Buffer.concat([Buffer.from(`${this.opts.mountPoint}/${i.node}`), target]);
  }

  /** What a symlink made through /mfs/<K> stores: a target under MOUNTPOINT/K/ as the path on K. */
  private storedTarget(node: number, target: Buffer): Buffer {
    const prefix = Buffer.from(`${this.opts.mountPoint}/${node}`);
    if (target.length > prefix.length && target.subarray(0, prefix.length).equals(prefix) && target[prefix.length] === 0x2f) {
      return target.subarray(prefix.length);
    }
    return target;
  }

  /** `magic`: a create as openMosix's magic/ saw it (creat, mknod), which goes to this node. */
  private async make(ctx: RequestContext, dirId: number, name: Buffer, fn: (s: NodeLink, dir: Place) => Promise<Entry>, magic = false): Promise<EntryOut> {
    this.writable();
    const dir = await this.remote(ctx, dirId);
    const at = magic ? await this.createPlace(ctx, dir) : dir;
    const conn = this.conn(at.node);
    const since = conn.mark();
    const e = await conn.call((s) => fn(s, at)).catch((err: unknown) => this.unknownOutcome(at, name, err));
    if (magic) this.special.created(ctx, dir, at.node);
    this.echoName(at.node, at.ino, name, dir);
    if (at === dir) {
      this.meta.entered(dir.node, dir.ino, name, e, since);
      if ((e.attr.mode & S_IFMT) === S_IFDIR) this.meta.madeDir(dir.node, bigOf(e.attr.ino), since);
      this.changed(ctx, e, since, dir);
    }
    return this.entry(dir, name, at.node, e, since);
  }

  /**
   * Where a create in `dir` goes: `dir` itself, except under /mfs/magic pointing at another node,
   * where it goes to the same path on this node (special-nodes.ts).
   */
  private async createPlace(ctx: RequestContext, dir: Remote): Promise<Place> {
    const here = this.special.thisNode;
    if (!this.special.isMagic(dir) || dir.node === here) return dir;
    const names = this.special.pathInView(dir);
    const top = await this.resolve(ctx, this.inodes.virtual(here, ''));
    if (top.kind !== 'remote') throw errno('EROFS');
    let at: Place = { node: here, handle: top.handle, ino: top.ino };
    for (const name of names) {
      const e = await this.on(here, (s) => s.lookup(caller(ctx), at.handle, name));
      at = { node: here, handle: e.handle, ino: bigOf(e.attr.ino) };
    }
    return at;
  }

  symlink(ctx: RequestContext, r: RequestOf<'SYMLINK'>): Promise<EntryOut> {
    return this.make(ctx, r.header.nodeId, r.name, (s, dir) => s.symlink(caller(ctx), dir.handle, r.name, this.storedTarget(dir.node, r.target)));
  }

  mknod(ctx: RequestContext, r: RequestOf<'MKNOD'>): Promise<EntryOut> {
    if (isDevice(r.mode)) throw errno('EPERM');
    return this.make(ctx, r.header.nodeId, r.name, (s, dir) => s.mknod(caller(ctx), dir.handle, r.name, r.mode, r.umask, r.rdev), true);
  }

  mkdir(ctx: RequestContext, r: RequestOf<'MKDIR'>): Promise<EntryOut> {
    return this.make(ctx, r.header.nodeId, r.name, (s, dir) => s.mkdir(caller(ctx), dir.handle, r.name, r.mode, r.umask));
  }

  async unlink(ctx: RequestContext, r: RequestOf<'UNLINK'>): Promise<void> {
    this.writable();
    const dir = await this.remote(ctx, r.header.nodeId);
    const since = this.conn(dir.node).mark();
    const victim = this.childIno(dir, r.name);
    const reply = await this.on(dir.node, (s) => s.unlink(caller(ctx), dir.handle, r.name)).catch((err: unknown) => this.unknownOutcome(dir, r.name, err));
    this.meta.removed(dir.node, dir.ino, r.name, since, victim);
    this.changed(ctx, reply, since, dir);
    this.inodes.dropName(dir, r.name);
    this.echoName(dir.node, dir.ino, r.name, dir);
  }

  async rmdir(ctx: RequestContext, r: RequestOf<'RMDIR'>): Promise<void> {
    this.writable();
    const dir = await this.remote(ctx, r.header.nodeId);
    const since = this.conn(dir.node).mark();
    const victim = this.childIno(dir, r.name);
    const reply = await this.on(dir.node, (s) => s.rmdir(caller(ctx), dir.handle, r.name)).catch((err: unknown) => this.unknownOutcome(dir, r.name, err));
    this.meta.removed(dir.node, dir.ino, r.name, since, victim);
    this.changed(ctx, reply, since, dir);
    this.inodes.dropName(dir, r.name);
    this.echoName(dir.node, dir.ino, r.name, dir);
  }

  /** RENAME and RENAME2 (flags NOREPLACE, EXCHANGE as renameat2). Across nodes: EXDEV. */
  async rename(ctx: RequestContext, r: RequestOf<'RENAME'>): Promise<void> {
    this.writable();
    this.sameNode(this.inode(r.header.nodeId), this.inode(r.newDir));
    const from = await this.remote(ctx, r.header.nodeId);
    const to = await this.remote(ctx, r.newDir);
    const since = this.conn(from.node).mark();
    const inos = [this.childIno(from, r.name), this.childIno(to, r.newName)].filter((i): i is bigint => i !== undefined);
    const reply = await this.on(from.node, (s) => s.rename(caller(ctx), from.handle, r.name, to.handle, r.newName, r.flags)).catch((err: unknown) => {
      this.meta.forgetName(from.node, from.ino, r.name);
      this.meta.forgetName(to.node, to.ino, r.newName);
      throw err;
    });
    this.meta.renamed(from.node, from.ino, r.name, to.ino, r.newName, since, inos, (r.flags & RENAME_EXCHANGE) !== 0);
    this.changed(ctx, reply, since, from, to, r.flags & RENAME_EXCHANGE ? undefined : this.meta.placeOf(to.node, to.ino, r.newName));
    this.inodes.dropName(from, r.name);
    this.inodes.dropName(to, r.newName);
    this.echoName(from.node, from.ino, r.name, from);
    this.echoName(to.node, to.ino, r.newName, to);
  }

  /** The cluster inode `name` in `dir` stands for, as far as the kernel looked it up through us. */
  private childIno(dir: MfsInode, name: Buffer): bigint | undefined {
    const id = dir.names.get(nameKey(name));
    const child = id === undefined ? undefined : this.inodes.get(id);
    return child?.kind === 'remote' ? child.ino : undefined;
  }

  /** Two inodes of one node, else EXDEV (the mount's root belongs to no node). */
  private sameNode(a: MfsInode, b: MfsInode): void {
    if (a.kind === 'top' || a.kind === 'own' || b.kind === 'top' || b.kind === 'own' || a.node !== b.node) throw errno('EXDEV');
  }

  async link(ctx: RequestContext, r: RequestOf<'LINK'>): Promise<EntryOut> {
    this.writable();
    this.sameNode(this.inode(r.oldNodeId), this.inode(r.header.nodeId));
    const target = await this.remote(ctx, r.oldNodeId);
    this.meta.touched(target.node, target.ino);
    return this.make(ctx, r.header.nodeId, r.name, (s, dir) => s.link(caller(ctx), target.handle, dir.handle, r.name));
  }

  // ---- open files ----

  /** KEEP_CACHE only when the node's session is up, nothing raced the open, and no session was lost since the pages came. */
  private openOut(i: Remote, conn: NodeConn, fh: number | string, flags: number, since: number): OpenOut {
    const id = this.files.add({ inode: i, conn, fh, flags: flags & ~OPEN_ONLY, locked: false });
    const keep = conn.fresh(since, i.ino) && !this.cache.suspectPages.delete(i.id);
    return { fh: id, openFlags: (keep ? OpenFlag.KEEP_CACHE : 0) | (flags & O_DIRECT ? OpenFlag.DIRECT_IO : 0) };
  }

  async open(ctx: RequestContext, r: RequestOf<'OPEN'>): Promise<OpenOut> {
    const own = this.inode(r.header.nodeId);
    if (own.kind === 'own') return this.special.open(own);
    if (isWriteOpen(r.flags)) this.writable();
    const i = await this.remote(ctx, r.header.nodeId);
    const conn = this.conn(i.node);
    const since = conn.mark();
    // O_DIRECT would impose alignment on the node's buffers; DIRECT_IO keeps the kernel's cache out.
    const fh = await conn.call((s) => s.open(caller(ctx), i.handle, r.flags & ~(O_DIRECT | C.O_CREAT | C.O_EXCL)));
    if (r.flags & C.O_TRUNC) this.meta.touched(i.node, i.ino);
    return this.openOut(i, conn, fh, r.flags, since);
  }

  async create(ctx: RequestContext, r: RequestOf<'CREATE'>): Promise<CreateOut> {
    this.writable();
    const dir = await this.remote(ctx, r.header.nodeId);
    const at = await this.createPlace(ctx, dir);
    const conn = this.conn(at.node);
    const since = conn.mark();
    const got = await conn.call((s) => s.create(caller(ctx), at.handle, r.name, r.flags & ~O_DIRECT, r.mode, r.umask))
      .catch((err: unknown) => this.unknownOutcome(at, r.name, err));
    this.special.created(ctx, dir, at.node);
    this.echoName(at.node, at.ino, r.name, dir);
    if (at === dir) {
      this.meta.entered(dir.node, dir.ino, r.name, got.entry, since);
      this.changed(ctx, got, since, dir);
    }
    const entry = this.entry(dir, r.name, at.node, got.entry, since);
    const child = this.inodes.get(entry.nodeId) as Remote;
    return { entry, open: this.openOut(child, conn, got.fh, r.flags, since) };
  }

  private file(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (!f) throw errno('EBADF');
    return f;
  }

  read(ctx: RequestContext, r: RequestOf<'READ'>): Promise<Buffer> | Buffer {
    if (this.special.isOwnFile(r.header.nodeId)) return this.special.read(ctx, r.offset, r.size, r.header.nodeId);
    const f = this.file(r.fh);
    return f.conn.call((s) => s.read(caller(ctx), f.inode.handle, f.fh, r.offset, r.size, f.flags));
  }

  write(ctx: RequestContext, r: RequestOf<'WRITE'>): Promise<number> | number {
    if (this.special.isOwnFile(r.header.nodeId)) return this.special.write(ctx, r.data, r.header.nodeId);
    this.writable();
    const f = this.file(r.fh);
    const { node, ino } = f.inode;
    return f.conn.call((s) => s.write(caller(ctx), f.inode.handle, f.fh, r.offset, r.data, f.flags)).finally(() => this.meta.touched(node, ino));
  }

  /** close(2) of one descriptor: its owner's POSIX locks on the file go (only if it took any through us). */
  async flush(ctx: RequestContext, r: RequestOf<'FLUSH'>): Promise<void> {
    const f = this.files.get(r.fh);
    if (!f?.locked) return;
    await f.conn.call((s) => s.setLk(caller(ctx), f.inode.handle, { clientId: this.opts.lockClientId, lockOwner: r.lockOwner.toString(), start: 0, end: '9223372036854775807', type: F_UNLCK }));
  }

  async release(ctx: RequestContext, r: RequestOf<'RELEASE'>): Promise<void> {
    const f = this.files.remove(r.fh);
    if (!f) return;
    const locks = f.locked ? { clientId: this.opts.lockClientId, lockOwner: r.lockOwner.toString() } : undefined;
    await f.conn.call((s) => s.release(caller(ctx), f.fh, f.inode.handle, locks)).catch(() => undefined);
  }

  async fsync(ctx: RequestContext, r: RequestOf<'FSYNC'>): Promise<void> {
    const f = this.file(r.fh);
    await f.conn.call((s) => s.fsync(caller(ctx), f.inode.handle, f.fh, (r.fsyncFlags & 1) !== 0));
  }

  async fallocate(ctx: RequestContext, r: RequestOf<'FALLOCATE'>): Promise<void> {
    this.writable();
    const f = this.file(r.fh);
    await f.conn.call((s) => s.fallocate(caller(ctx), f.inode.handle, f.fh, r.offset, r.length, r.mode)).finally(() => this.meta.touched(f.inode.node, f.inode.ino));
  }

  /**
   * copy_file_range(2): both files on one node, that node copies (the data never crosses the
   * network); across nodes EXDEV, and the kernel copies through read and write itself.
   */
  async copyFileRange(ctx: RequestContext, r: RequestOf<'COPY_FILE_RANGE'>): Promise<number> {
    this.writable();
    const src = this.file(r.fhIn);
    const dst = this.file(r.fhOut);
    if (src.inode.node !== dst.inode.node) throw errno('EXDEV');
    const { node, ino } = dst.inode;
    return dst.conn.call((s) => s.copyFileRange(caller(ctx), src.inode.handle, src.fh, r.offIn, dst.inode.handle, dst.fh, r.offOut, r.len))
      .finally(() => this.meta.touched(node, ino));
  }

  /** SEEK_DATA and SEEK_HOLE (the kernel moves positions itself for the others): asked of the node. */
  async lseek(ctx: RequestContext, r: RequestOf<'LSEEK'>): Promise<number> {
    const f = this.file(r.fh);
    return f.conn.call((s) => s.lseek(caller(ctx), f.inode.handle, f.fh, r.offset, r.whence));
  }

  // ---- locks (held by the owning node, so they exclude processes on every node) ----

  async getlk(ctx: RequestContext, r: RequestOf<'GETLK'>): Promise<FileLock> {
    const f = this.file(r.fh);
    const got = await f.conn.call((s) => s.getLk(caller(ctx), f.inode.handle, this.lockArgs(r)));
    if (!got.conflict) return { start: r.lock.start, end: r.lock.end, type: F_UNLCK, pid: 0 };
    return { start: bigOf(got.start), end: bigOf(got.end), type: got.type, pid: got.pid };
  }

  async setlk(ctx: RequestContext, r: RequestOf<'SETLK' | 'SETLKW'>): Promise<void> {
    const f = this.file(r.fh);
    f.locked ||= r.lock.type !== F_UNLCK;
    const args = this.lockArgs(r);
    if (r.op === 'SETLK') return void (await f.conn.call((s) => s.setLk(caller(ctx), f.inode.handle, args)));
    await f.conn.call((s) => s.setLkW(caller(ctx), f.inode.handle, args));
    // The caller was interrupted while waiting (the kernel already answered EINTR), but the node
    // granted the lock later: nobody holds it, so give it back (the session has no cancel).
    if (ctx.interrupted.aborted && args.type !== F_UNLCK) {
      await f.conn.call((s) => s.setLk(caller(ctx), f.inode.handle, { ...args, type: F_UNLCK })).catch(() => undefined);
    }
  }

  private lockArgs(r: RequestOf<'GETLK' | 'SETLK' | 'SETLKW'>): { clientId: string; lockOwner: string; start: string; end: string; type: number } {
    return { clientId: this.opts.lockClientId, lockOwner: r.owner.toString(), start: r.lock.start.toString(), end: r.lock.end.toString(), type: r.lock.type };
  }

  // ---- directories ----

  /** Listings are cached while the node's session is up; its name invalidations drop them. */
  async opendir(ctx: RequestContext, r: RequestOf<'OPENDIR'>): Promise<OpenOut> {
    const i = this.inode(r.header.nodeId);
    const cacheable = i.kind !== 'remote' || this.conn(i.node).up;
    return { fh: 0, openFlags: cacheable ? OpenFlag.KEEP_CACHE | OpenFlag.CACHE_DIR : 0 };
  }

  releasedir(): void {
    // opendir keeps no state
  }

  readdir(ctx: RequestContext, r: RequestOf<'READDIR'>, out: DirBuffer): Promise<void> {
    return this.list(ctx, r, out, false);
  }

  /** READDIRPLUS: entries with their attributes (ls -l, find), each one a lookup the kernel counts. */
  readdirplus(ctx: RequestContext, r: RequestOf<'READDIRPLUS'>, out: DirBuffer): Promise<void> {
    return this.list(ctx, r, out, true);
  }

  private async list(ctx: RequestContext, r: RequestOf<'READDIR' | 'READDIRPLUS'>, out: DirBuffer, plus: boolean): Promise<void> {
    return this.listings.list(ctx, await this.resolve(ctx, this.inode(r.header.nodeId)), r, out, plus);
  }

  // ---- the rest ----

  async statfs(ctx: RequestContext, r: RequestOf<'STATFS'>): Promise<StatfsOut> {
    const i = await this.resolve(ctx, this.inode(r.header.nodeId || ROOT_ID));
    if (i.kind !== 'remote') return { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };
    const s = await this.on(i.node, (sess) => sess.statFs(caller(ctx), i.handle));
    const n = (k: string): number => Number(s[k] ?? 0);
    return { blocks: n('blocks'), bfree: n('bfree'), bavail: n('bavail'), files: n('files'), ffree: n('ffree'), bsize: n('bsize'), namelen: n('namelen') || 255, frsize: n('frsize') || n('bsize') };
  }

  async access(ctx: RequestContext, r: RequestOf<'ACCESS'>): Promise<void> {
    const i = await this.resolve(ctx, this.inode(r.header.nodeId));
    // .control/selected is 0666 (everyone their own value); the .admin tables check root on write themselves.
    if (this.special.isOwnFile(i.id)) return;
    if (i.kind !== 'remote') {
      if (r.mask & 2) throw errno('EROFS');
      return;
    }
    await this.on(i.node, (s) => s.access(caller(ctx), i.handle, r.mask));
  }

  async getxattr(ctx: RequestContext, r: RequestOf<'GETXATTR'>): Promise<Buffer> {
    const i = this.inode(r.header.nodeId);
    if (i.kind !== 'remote') throw errno('ENODATA');
    return this.on(i.node, (s) => s.getXattr(caller(ctx), i.handle, r.name, this.files.nodeFhOf(i)));
  }

  async listxattr(ctx: RequestContext, r: RequestOf<'LISTXATTR'>): Promise<Buffer> {
    const i = this.inode(r.header.nodeId);
    if (i.kind !== 'remote') return Buffer.alloc(0);
    const names = await this.on(i.node, (s) => s.listXattr(caller(ctx), i.handle, this.files.nodeFhOf(i)));
    return Buffer.concat(names.map((n) => Buffer.from(`${n}\0`)));
  }

  async setxattr(ctx: RequestContext, r: RequestOf<'SETXATTR'>): Promise<void> {
    this.writable();
    const i = await this.remote(ctx, r.header.nodeId);
    await this.on(i.node, (s) => s.setXattr(caller(ctx), i.handle, r.name, r.value, r.flags, this.files.nodeFhOf(i))).finally(() => this.meta.touched(i.node, i.ino));
    this.echoAttr(i);
  }

  async removexattr(ctx: RequestContext, r: RequestOf<'REMOVEXATTR'>): Promise<void> {
    this.writable();
    const i = await this.remote(ctx, r.header.nodeId);
    await this.on(i.node, (s) => s.removeXattr(caller(ctx), i.handle, r.name, this.files.nodeFhOf(i))).finally(() => this.meta.touched(i.node, i.ino));
    this.echoAttr(i);
  }
}

/** The export shown as /mfs/<K> itself: the only one, or the one of "/". */
export function rootExport(paths: string[]): string | undefined {
  if (paths.length === 1) return paths[0];
  return paths.find((p) => p === '/');
}
