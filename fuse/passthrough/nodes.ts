// Node ids for backing files. The kernel keys its inodes by node id, so one backing inode (dev, ino)
// must map to one node while the kernel remembers it, and a node id is never handed out twice
// (ids only grow, so generation stays 0). Each node remembers one parent and name: rename moves
// one node and its whole subtree follows without any bookkeeping below it.
import { join } from 'node:path';

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
}

const S_IFMT = 0o170000;

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byKey = new Map<string, Node>();
  private nextId = 2;
  readonly root: Node;

  constructor(private readonly sourceRoot: string) {
    this.root = { id: 1, parent: undefined, name: '', key: undefined, lookups: 1, type: 0o040000 };
    this.byId.set(1, this.root);
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The backing path of a node, built from its parent chain. */
  path(node: Node): string {
    if (node.parent === undefined) return this.sourceRoot;
    return join(this.path(node.parent), node.name);
  }

  childPath(parent: Node, name: string): string {
    return join(this.path(parent), name);
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
      node = { id: this.nextId++, parent, name, key, lookups: 0, type: mode & S_IFMT };
      this.byId.set(node.id, node);
      this.byKey.set(key, node);
    } else if (node !== this.root) {
      // A hard link may be reached by another name; the latest name is the one we know works.
      node.parent = parent;
      node.name = name;
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
