// Node ids for backing files. The kernel keys its inodes by node id, so one backing inode (dev, ino)
// must map to one node while the kernel remembers it, and a node id is never handed out twice
// (ids only grow, so generation stays 0). Each node remembers one parent and name: rename moves
// one node and its whole subtree follows without any bookkeeping below it.
export interface Node {
  readonly id: number;
  parent: Node | undefined;
  name: string;
  /** `${dev}:${ino}` of the backing inode, or undefined once it was unlinked/replaced. */
  key: string | undefined;
  /** Entry replies minus FORGETs; the node is dropped when it reaches 0. */
  lookups: number;
  /** File type bits (S_IFMT) when first seen: a new type under an old key means a new inode. */
  type: number;
  /** The backing path as of `pathEpoch` (see NodeTable.path). */
  cachedPath: string | undefined;
  pathEpoch: number;
}

const S_IFMT = 0o170000;

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byKey = new Map<string, Node>();
  private nextId = 2;
  /**
   * Bumped by every move: a cached path is good only while no node anywhere has moved since it
   * was built (a moved directory changes the paths of its whole subtree).
   */
  private epoch = 0;
  readonly root: Node;

  constructor(private readonly sourceRoot: string) {
    this.root = { id: 1, parent: undefined, name: '', key: undefined, lookups: 1, type: 0o040000, cachedPath: sourceRoot, pathEpoch: Infinity };
    this.byId.set(1, this.root);
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * The backing path of a node, built from its parent chain and cached until something moves.
   * Names come from the kernel as single components, so plain concatenation is exact (and much
   * cheaper than path.join on every request).
   */
  path(node: Node): string {
    if (node.parent === undefined) return this.sourceRoot;
    if (node.pathEpoch === this.epoch && node.cachedPath !== undefined) return node.cachedPath;
    node.cachedPath = this.childPath(node.parent, node.name);
    node.pathEpoch = this.epoch;
    return node.cachedPath;
  }

  childPath(parent: Node, name: string): string {
    const dir = this.path(parent);
    return dir === '/' ? `/${name}` : `${dir}/${name}`;
  }

  /** The node is now `name` in `parent` (rename, or a hard link reached by another name). */
  move(node: Node, parent: Node, name: string): void {
    if (node.parent === parent && node.name === name) return;
    node.parent = parent;
    node.name = name;
    this.epoch++;
  }

  /** The node for backing inode (dev, ino) found as `name` in `parent`; counts one lookup. */
  lookup(parent: Node, name: string, dev: bigint | number, ino: bigint | number, mode: number): Node {
    const key = `${dev}:${ino}`;
    let node = this.byKey.get(key);
    if (node && node.type !== (mode & S_IFMT)) {
      this.detach(node);
      node = undefined;
    }
    if (node === undefined) {
      node = { id: this.nextId++, parent, name, key, lookups: 0, type: mode & S_IFMT, cachedPath: undefined, pathEpoch: -1 };
      this.byId.set(node.id, node);
      this.byKey.set(key, node);
    } else if (node !== this.root) {
      // A hard link may be reached by another name; the latest name is the one we know works.
      this.move(node, parent, name);
    }
    node.lookups++;
    return node;
  }

  /** The root's key, so a lookup of ".." at the top finds the root itself. */
  setRootKey(dev: bigint | number, ino: bigint | number): void {
    this.root.key = `${dev}:${ino}`;
    this.byKey.set(this.root.key, this.root);
  }

  /** The backing inode is gone (unlinked, replaced): a new file with the same ino gets a new node. */
  detach(node: Node): void {
    if (node.key !== undefined && this.byKey.get(node.key) === node) this.byKey.delete(node.key);
    node.key = undefined;
  }

  findByKey(dev: bigint | number, ino: bigint | number): Node | undefined {
    return this.byKey.get(`${dev}:${ino}`);
  }

  forget(id: number, nlookup: number): void {
    const node = this.byId.get(id);
    if (!node || node === this.root) return;
    node.lookups -= nlookup;
    if (node.lookups <= 0) {
      this.detach(node);
      this.byId.delete(id);
    }
  }
}
