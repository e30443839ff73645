// Node ids for backing inodes. Each node holds an O_PATH descriptor of its inode, as libfuse's
// passthrough_ll does: every operation reaches the file through that descriptor (or through its
// parent's plus one name), never through a path. So a node stays valid through any of its hard
// links, after a rename of any ancestor, and after its last name is gone (an open-but-unlinked
// file); no path is ever longer than one name; and, while the kernel remembers the node, the
// descriptor pins the inode, so its number cannot be reused by another file under our feet.
// The kernel keys its inodes by node id: one backing inode (dev, ino) maps to one node, and an id
// is never handed out twice (ids only grow, so generation stays 0).
import * as sys from '../../sys/index.js';

export interface Node {
  readonly id: number;
  /** O_PATH|O_NOFOLLOW descriptor of the backing inode. */
  readonly fd: number;
  /** `${dev}:${ino}` of the backing inode. */
  readonly key: string;
  /** Entry replies minus FORGETs; the node is dropped (and its fd closed) when it reaches 0. */
  lookups: number;
  /** File type bits (S_IFMT). */
  readonly type: number;
  /** A directory's descriptor open for reading entries, opened on first READDIR (see passthrough.ts). */
  dirFd: number | undefined;
  /** The cookie dirFd stands at (the last entry read's d_off): a READDIR from there needs no seek. */
  dirPos?: bigint;
  /** A directory's ctime when a listing last reached its end (passthrough.ts opendir). */
  listedCtime?: sys.Timespec;
  /**
   * A regular file's own descriptors, by their open flags: O_RDONLY is shared by its plain read-only
   * opens (passthrough.ts sharedReadFd); with openless opens (passthrough.ts) reads and writes use
   * the one with their file's flags that matter (O_NOATIME, O_APPEND). Write ones are closed after
   * a moment without writes (closeIdleWriters), read ones with the node.
   */
  own?: Map<number, number>;
  /** Whether a write descriptor was used since the last closeIdleWriters, and how many uses still run. */
  writeUsed?: boolean;
  writesRunning?: number;
  /**
   * A symlink's latest name: its own xattrs can only be reached by name (xattr.ts). Checked against
   * `key` before use, since the name may have moved on.
   */
  link?: { parent: Node; name: Buffer };
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const O_ACCMODE = 3;
const O_RDONLY = 0;

export const keyOf = (st: sys.Stat): string => `${st.dev}:${st.ino}`;

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byKey = new Map<string, Node>();
  private nextId = 2;
  /** Descriptors held in `own`, over all nodes. */
  private ownFds = 0;
  /** Nodes holding a write descriptor in `own`. */
  private readonly writers = new Set<Node>();
  readonly root: Node;

  constructor(source: string) {
    const fd = sys.openat(sys.AT_FDCWD, source, sys.O_PATH | sys.O_DIRECTORY);
    this.root = { id: 1, fd, key: keyOf(sys.fstat(fd)), lookups: 1, type: S_IFDIR, dirFd: undefined };
    this.byId.set(1, this.root);
    this.byKey.set(this.root.key, this.root);
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** Every node the kernel knows. */
  all(): IterableIterator<Node> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** Descriptors held in nodes' `own` maps. */
  get heldFds(): number {
    return this.ownFds;
  }

  /** The node's own descriptor opened with `flags`, opening it with `open` if it has none; closed with the node (a write one also when idle). */
  ownFd(node: Node, flags: number, open: (flags: number) => number): number {
    const held = node.own?.get(flags);
    if (held !== undefined) return held;
    const fd = open(flags);
    (node.own ??= new Map()).set(flags, fd);
    this.ownFds++;
    if ((flags & O_ACCMODE) !== O_RDONLY) this.writers.add(node);
    return fd;
  }

  /**
   * Closes the write descriptors of every node not written since the last call and with no write
   * running. A held write descriptor is visible outside the mount: the backing file cannot be
   * executed (ETXTBSY) and takes no lease while it is open, as if the writer had not closed it.
   */
  closeIdleWriters(): void {
    for (const node of this.writers) {
      if (node.writeUsed || (node.writesRunning ?? 0) > 0) node.writeUsed = false;
      else this.closeWriteFds(node);
    }
  }

  private closeWriteFds(node: Node): void {
    this.closeOwn(node, (flags) => (flags & O_ACCMODE) !== O_RDONLY);
    this.writers.delete(node);
  }

  private closeOwn(node: Node, which: (flags: number) => boolean): void {
    for (const [flags, fd] of node.own ?? []) {
      if (!which(flags)) continue;
      node.own!.delete(flags);
      sys.close(fd);
      this.ownFds--;
    }
  }

  /**
   * The node for `name` in `parent`, whose lstat is `st`; counts one lookup. A known inode costs
   * nothing more; a new one is opened O_PATH and its own fstat is the truth (the name may have
   * been replaced since `st` was taken). Returns the node and the stat to report.
   */
  lookup(parent: Node, name: Buffer | string, st: sys.Stat): { node: Node; st: sys.Stat } {
    let node = this.byKey.get(keyOf(st));
    if (node === undefined || node.type !== (st.mode & S_IFMT)) {
      const fd = sys.openat(parent.fd, name, sys.O_PATH | sys.O_NOFOLLOW);
      const opened = sys.fstat(fd);
      node = this.byKey.get(keyOf(opened));
      if (node !== undefined) sys.close(fd);
      else node = this.add(fd, opened);
      st = opened;
    }
    node.lookups++;
    if (node.type === S_IFLNK) node.link = { parent, name: Buffer.from(name) };
    return { node, st };
  }

  /** The node of the inode `st` describes, if the kernel knows it. */
  find(st: sys.Stat): Node | undefined {
    return this.byKey.get(keyOf(st));
  }

  /** The node of a descriptor we opened ourselves (create, mkdir...); counts one lookup. */
  adopt(fd: number, st: sys.Stat, parent: Node, name: Buffer): Node {
    let node = this.byKey.get(keyOf(st));
    if (node !== undefined) sys.close(fd);
    else node = this.add(fd, st);
    node.lookups++;
    if (node.type === S_IFLNK) node.link = { parent, name };
    return node;
  }

  /** True while `node` is still the live node of its id (its descriptor has not been closed). */
  isLive(node: Node): boolean {
    return this.byId.get(node.id) === node;
  }

  private add(fd: number, st: sys.Stat): Node {
    const node: Node = { id: this.nextId++, fd, key: keyOf(st), lookups: 0, type: st.mode & S_IFMT, dirFd: undefined };
    this.byId.set(node.id, node);
    this.byKey.set(node.key, node);
    return node;
  }

  /** Counts nlookup lookups off; returns the node if that dropped it (the kernel no longer knows it). */
  forget(id: number, nlookup: number): Node | undefined {
    const node = this.byId.get(id);
    if (!node || node === this.root) return undefined;
    node.lookups -= nlookup;
    if (node.lookups > 0) return undefined;
    this.byId.delete(id);
    if (this.byKey.get(node.key) === node) this.byKey.delete(node.key);
    this.closeFds(node);
    return node;
  }

  private closeFds(node: Node): void {
    sys.close(node.fd);
    if (node.dirFd !== undefined) sys.close(node.dirFd);
    this.closeOwn(node, () => true);
    this.writers.delete(node);
  }

  /** Closes every descriptor (unmount). */
  clear(): void {
    for (const node of this.byId.values()) {
      try {
        this.closeFds(node);
      } catch {
        // closing at teardown: nothing left to report to
      }
    }
    this.byId.clear();
    this.byKey.clear();
    this.writers.clear();
  }
}
