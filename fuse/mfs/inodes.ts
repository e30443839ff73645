// The mount's own FUSE node ids. The kernel keys inodes by node id; the cluster names them by
// (node, cluster inode number) and reaches them by handle. This table maps one to the other, keeps
// the names under which the kernel may have cached each node (to invalidate them by name when the
// owning node says so) and forgets a node once the kernel has forgotten every lookup of it.
// Node ids are a counter and never reused: a forgotten id is gone for the mount's lifetime.
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
  | Base & { kind: 'remote'; node: number; handle: Buffer; ino: bigint };

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
}

/** A name as a Map key: every byte kept (names are bytes, not necessarily UTF-8). */
export const nameKey = (name: Buffer): string => name.toString('latin1');
export const keyName = (key: string): Buffer => Buffer.from(key, 'latin1');

const S_IFDIR = 0o040000;

export class InodeTable {
  private readonly byId = new Map<number, MfsInode>();
  /** "<node>:<ino>" -> node id of a remote inode; "<node>/<path>" -> node id of a virtual one. */
  private readonly byKey = new Map<string, number>();
  private nextId = ROOT_ID + 1;

  constructor() {
    this.byId.set(ROOT_ID, { id: ROOT_ID, kind: 'top', lookups: 1, names: new Map(), links: new Set(), type: S_IFDIR });
  }

  get(id: number): MfsInode | undefined {
    return this.byId.get(id);
  }

  /** Every inode of cluster node `node` the kernel may hold (for dropping caches of a lost session). */
  *ofNode(node: number): Iterable<MfsInode> {
    for (const i of this.byId.values()) if (i.kind !== 'top' && i.node === node) yield i;
  }

  byIno(node: number, ino: bigint): MfsInode | undefined {
    const id = this.byKey.get(`${node}:${ino}`);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** The virtual directory `path` of node `node`, made on first use (not counted as a lookup). */
  virtual(node: number, path: string): MfsInode {
    const key = `${node}/${path}`;
    const id = this.byKey.get(key);
    const known = id === undefined ? undefined : this.byId.get(id);
    if (known) return known;
    const made: MfsInode = { id: this.nextId++, kind: 'virtual', node, path, lookups: 0, names: new Map(), links: new Set(), type: S_IFDIR };
    this.byId.set(made.id, made);
    this.byKey.set(key, made.id);
    return made;
  }

  /**
   * The remote inode (node, ino), made or found. An inode already known keeps its first handle
   * (handles of one inode are equivalent); a virtual /mfs/<K> that turns out to be the node's root
   * export is rebound with `bindRoot` instead.
   */
  remote(node: number, ino: bigint, handle: Buffer, type: number): MfsInode {
    const key = `${node}:${ino}`;
    const id = this.byKey.get(key);
    const known = id === undefined ? undefined : this.byId.get(id);
    if (known) {
      known.type = type;
      return known;
    }
    const made: MfsInode = { id: this.nextId++, kind: 'remote', node, handle, ino, lookups: 0, names: new Map(), links: new Set(), type };
    this.byId.set(made.id, made);
    this.byKey.set(key, made.id);
    return made;
  }

  /**
   * /mfs/<K> (a virtual inode the kernel already knows by its id) becomes the node's root export:
   * same node id, now remote. Handles outlive sessions, so it stays bound.
   */
  bindRoot(gateway: MfsInode, ino: bigint, handle: Buffer): MfsInode {
    if (gateway.kind === 'top') return gateway;
    const old = this.byKey.get(`${gateway.node}:${ino}`);
    if (old !== undefined && old !== gateway.id) return gateway; // already known under another id: keep both
    const bound = gateway as MfsInode & { kind: string };
    Object.assign(bound, { kind: 'remote', handle, ino });
    this.byKey.set(`${gateway.node}:${ino}`, gateway.id);
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
    if (!i || i.kind === 'top') return;
    i.lookups -= nlookup;
    if (i.lookups > 0) return;
    // Virtual inodes are a few per node and cheap: keep them, so /mfs/<K> keeps one id.
    if (i.kind === 'virtual') {
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
    const key = `${i.node}:${i.ino}`;
    if (this.byKey.get(key) === id) this.byKey.delete(key);
  }

  /** How many inodes the table holds (tests: FORGET keeps it bounded). */
  get size(): number {
    return this.byId.size;
  }
}
