// The mount's own FUSE node ids. The kernel keys inodes by node id; the cluster names them by
// (node, cluster inode number) and reaches them by handle. This table maps one to the other, keeps
// the names under which the kernel may have cached each node (to invalidate them by name when the
// owning node says so) and forgets a node once the kernel has forgotten every lookup of it.
// Node ids are a counter and never reused: a forgotten id is gone for the mount's lifetime.
//
// Views: a file reached through a special directory (/mfs/selected, /mfs/here, ...: special/)
// gets a node id of its own per view, not /mfs/<K>'s: a directory inode has a single dentry in
// Linux, so sharing ids would move /mfs/2/tmp's dentry under /mfs/selected/tmp (and back), and
// getcwd() of a process in one would read the other. The view is '' for the ordinary tree, else
// the special instance (special-nodes.ts): everything below an instance inherits it. A node's
// invalidation of an inode reaches every view of it (allByIno).
import { ROOT_ID } from '../kernel/index.js';

export type MfsInode =
  /** The mount's root: one directory per node of the map, answered from the map alone. */
  | Base & { kind: 'top' }
  /**
   * A directory with no file behind it on the node: /mfs/<K> while the node is not in use or has no
   * root export, and the directories leading to an export (read-only). `path` is its path on the
   * node ('' for /mfs/<K> itself).
   */
  | Base & { kind: 'virtual'; node: number; path: string }
  /** A file of node `node`, reached by `handle`. `ino` is the cluster inode number the node reports. */
  | Base & { kind: 'remote'; node: number; handle: Buffer; ino: bigint }
  /** The mount's own control directory and files (/mfs/.control: special/selected-control.ts). */
  | Base & { kind: 'own'; role: OwnRole };

/** The mount's own files: the control directory and its selected file, /mfs/.admin and its tables. */
export type OwnRole = 'control-dir' | 'selected-file' | 'admin-dir' | `admin-${string}`;

interface Base {
  id: number;
  /** Entry replies the kernel has not forgotten yet. */
  lookups: number;
  /** Names the kernel may have cached in this directory (binary-string keys) -> child node id. */
  names: Map<string, number>;
  /** Where this node appears by name: "<dir id>/<binary-string name>" (so FORGET can clean `names`). */
  links: Set<string>;
  /** File type bits (S_IFMT) as last reported. */
  type: number;
  /** '' for the ordinary tree, else the special-directory instance this node id belongs to (see the header). */
  view: string;
  /** The top of a view: the special directory itself (its replies are never cached, see special-nodes.ts). */
  viewRoot: boolean;
}

/** A name as a Map key: every byte kept (names are bytes, not necessarily UTF-8). */
export const nameKey = (name: Buffer): string => name.toString('latin1');
export const keyName = (key: string): Buffer => Buffer.from(key, 'latin1');

const S_IFDIR = 0o040000;

const remoteKey = (view: string, node: number, ino: bigint): string => (view === '' ? `${node}:${ino}` : `${view}|${node}:${ino}`);
const virtualKey = (view: string, node: number, path: string): string => (view === '' ? `${node}/${path}` : `${view}|${node}/${path}`);

export class InodeTable {
  private readonly byId = new Map<number, MfsInode>();
  /** "<node>:<ino>" -> node id of a remote inode; "<node>/<path>" -> node id of a virtual one. */
  private readonly byKey = new Map<string, number>();
  /** "<node>:<ino>" -> node ids of that remote inode in views other than '' (for invalidations). */
  private readonly inViews = new Map<string, Set<number>>();
  private readonly own = new Map<OwnRole, MfsInode>();
  private nextId = ROOT_ID + 1;

  constructor() {
    this.byId.set(ROOT_ID, { id: ROOT_ID, kind: 'top', lookups: 1, names: new Map(), links: new Set(), type: S_IFDIR, view: '', viewRoot: false });
  }

  /** The mount's own node `role` (one id for the mount's lifetime, never forgotten). */
  ownNode(role: OwnRole, type: number): MfsInode {
    let i = this.own.get(role);
    if (!i) {
      i = { id: this.nextId++, kind: 'own', role, lookups: 0, names: new Map(), links: new Set(), type, view: '', viewRoot: false };
      this.byId.set(i.id, i);
      this.own.set(role, i);
    }
    return i;
  }

  get(id: number): MfsInode | undefined {
    return this.byId.get(id);
  }

  /** Every inode of cluster node `node` the kernel may hold (for dropping caches of a lost session). */
  *ofNode(node: number): Iterable<MfsInode> {
    for (const i of this.byId.values()) if ((i.kind === 'virtual' || i.kind === 'remote') && i.node === node) yield i;
  }

  /** The node id of (node, ino) in the ordinary tree. */
  byIno(node: number, ino: bigint): MfsInode | undefined {
    const id = this.byKey.get(remoteKey('', node, ino));
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** Every node id of (node, ino): the ordinary tree's and each view's. */
  allByIno(node: number, ino: bigint): MfsInode[] {
    const found: MfsInode[] = [];
    const plain = this.byIno(node, ino);
    if (plain) found.push(plain);
    for (const id of this.inViews.get(`${node}:${ino}`) ?? []) {
      const i = this.byId.get(id);
      if (i) found.push(i);
    }
    return found;
  }

  /**
   * The virtual directory `path` of node `node` in `view`, made on first use (not counted as a
   * lookup). A view's top (path '') is marked viewRoot.
   */
  virtual(node: number, path: string, view = ''): MfsInode {
    const key = virtualKey(view, node, path);
    const id = this.byKey.get(key);
    const known = id === undefined ? undefined : this.byId.get(id);
    if (known) return known;
    const made: MfsInode = {
      id: this.nextId++, kind: 'virtual', node, path, lookups: 0, names: new Map(), links: new Set(), type: S_IFDIR, view, viewRoot: view !== '' && path === '',
    };
    this.byId.set(made.id, made);
    this.byKey.set(key, made.id);
    return made;
  }

  private indexView(i: MfsInode & { kind: 'remote' }): void {
    if (i.view === '') return;
    const k = `${i.node}:${i.ino}`;
    let ids = this.inViews.get(k);
    if (!ids) this.inViews.set(k, (ids = new Set()));
    ids.add(i.id);
  }

  /**
   * The remote inode (node, ino), made or found. An inode already known takes the handle the node
   * just gave: a file deleted on the node's own disk (outside omfs) may leave its inode number to
   * a new file, whose handle differs (the old one is stale there). A virtual /mfs/<K> that turns
   * out to be the node's root export is rebound with `bindRoot` instead.
   */
  remote(node: number, ino: bigint, handle: Buffer, type: number, view = ''): MfsInode {
    const key = remoteKey(view, node, ino);
    const id = this.byKey.get(key);
    const known = id === undefined ? undefined : this.byId.get(id);
    if (known) {
      known.type = type;
      if (known.kind === 'remote' && !known.handle.equals(handle)) known.handle = handle;
      return known;
    }
    const made: MfsInode & { kind: 'remote' } = {
      id: this.nextId++, kind: 'remote', node, handle, ino, lookups: 0, names: new Map(), links: new Set(), type, view, viewRoot: false,
    };
    this.byId.set(made.id, made);
    this.byKey.set(key, made.id);
    this.indexView(made);
    return made;
  }

  /**
   * /mfs/<K> (a virtual inode the kernel already knows by its id) becomes the node's root export:
   * same node id, now remote. Handles outlive sessions, so it stays bound.
   */
  bindRoot(gateway: MfsInode, ino: bigint, handle: Buffer): MfsInode {
    if (gateway.kind !== 'virtual' && gateway.kind !== 'remote') return gateway;
    const key = remoteKey(gateway.view, gateway.node, ino);
    const old = this.byKey.get(key);
    if (old !== undefined && old !== gateway.id) return gateway; // already known under another id: keep both
    const bound = gateway as MfsInode & { kind: string };
    Object.assign(bound, { kind: 'remote', handle, ino });
    this.byKey.set(key, gateway.id);
    this.indexView(gateway as MfsInode & { kind: 'remote' });
    return gateway;
  }

  /** A reply named `child` as `name` in `dir`: count the lookup and remember the name. */
  entered(dir: MfsInode, name: Buffer, child: MfsInode): void {
    child.lookups++;
    this.remember(dir, name, child);
  }

  remember(dir: MfsInode, name: Buffer, child: MfsInode): void {
    const key = nameKey(name);
    dir.names.set(key, child.id);
    child.links.add(`${dir.id}/${key}`);
  }

  /** The name is gone (unlinked, renamed away, invalidated in the kernel). */
  dropName(dir: MfsInode, name: Buffer | string): void {
    const key = typeof name === 'string' ? name : nameKey(name);
    const childId = dir.names.get(key);
    dir.names.delete(key);
    if (childId !== undefined) this.byId.get(childId)?.links.delete(`${dir.id}/${key}`);
  }

  forget(id: number, nlookup: number): void {
    const i = this.byId.get(id);
    if (!i || i.kind === 'top' || i.kind === 'own') return;
    i.lookups -= nlookup;
    if (i.lookups > 0) return;
    // Virtual inodes of the ordinary tree are a few per node and cheap: keep them, so /mfs/<K>
    // keeps one id. A view's are per process: they go like remote ones.
    if (i.kind === 'virtual' && i.view === '') {
      i.lookups = 0;
      return;
    }
    for (const link of i.links) {
      const slash = link.indexOf('/');
      const dir = this.byId.get(Number(link.slice(0, slash)));
      const key = link.slice(slash + 1);
      if (dir?.names.get(key) === id) dir.names.delete(key);
    }
    this.byId.delete(id);
    for (const key of [remoteKey(i.view, i.node, i.kind === 'remote' ? i.ino : -1n), ...(i.viewRoot || i.kind === 'virtual' ? [virtualKey(i.view, i.node, i.kind === 'virtual' ? i.path : '')] : [])]) {
      if (this.byKey.get(key) === id) this.byKey.delete(key);
    }
    if (i.kind === 'remote' && i.view !== '') {
      const k = `${i.node}:${i.ino}`;
      const ids = this.inViews.get(k);
      ids?.delete(id);
      if (ids?.size === 0) this.inViews.delete(k);
    }
  }

  /** How many inodes the table holds (tests: FORGET keeps it bounded). */
  get size(): number {
    return this.byId.size;
  }
}

/**
 * The view a child found in `dir` belongs to: a directory keeps its parent's, since a directory
 * has one dentry in Linux; anything else is the ordinary tree's node id, so the kernel holds one
 * inode (one page cache, one set of attributes) for a file whichever path reached it.
 */
export const viewOf = (dir: MfsInode, mode: number): string => ((mode & 0o170000) === 0o040000 ? dir.view : '');
