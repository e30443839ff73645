// Turning a node's invalidations into kernel notifications. They go through the device's notify
// worker (fuse/kernel/notify.ts), never from the request path: INVAL_ENTRY takes the directory's
// inode lock, which a LOOKUP or CREATE waiting for our reply may hold (fuse-protocol.md A6).
// Each one returns when the kernel has applied it, so a caller that waits for them (the session's
// acknowledgement, when the library lets us hold it) knows the kernel no longer holds the old state.
import type { Notifier } from '../kernel/index.js';
import { S_IFDIR, S_IFMT, S_IFREG } from './attrs.js';
import { keyName, type InodeTable, type MfsInode } from './inodes.js';
import type { Inval } from './node-conn.js';

export class KernelCache {
  private notifier: Notifier | undefined;
  /**
   * Regular files whose pages were kept across a lost session: nothing told us of changes made
   * while it was down, so their next open must not keep the cache (close-to-open).
   */
  readonly suspectPages = new Set<number>();

  constructor(private readonly inodes: InodeTable) {}

  /** The mounted session's notifier (none before the mount exists: nothing is cached then). */
  attach(notifier: Notifier): void {
    this.notifier = notifier;
  }

  /** One invalidation from node `node`; resolves when the kernel applied it. */
  invalidate(node: number, inv: Inval): Promise<unknown> {
    // The ordinary tree's node id and each special directory's (inodes.ts: views); none: the kernel
    // holds nothing of that inode from us.
    return Promise.all(this.inodes.allByIno(node, inv.ino).map((i) => this.invalidateOne(i, inv)));
  }

  private invalidateOne(i: MfsInode, inv: Inval): Promise<unknown> {
    switch (inv.kind) {
      case 'attr':
        return this.send((n) => n.invalInode(i.id, -1, 0));
      case 'data':
        // Pages of [offset, offset+length) go (length 0: to the end), and the attributes with them.
        return this.send((n) => n.invalInode(i.id, inv.offset, inv.length));
      case 'name':
        return inv.name.length > 0 ? this.dropName(i, inv.name) : this.dropDir(i);
    }
  }

  /** The name, and the directory's cached listing (its pages) and attributes. */
  dropName(dir: MfsInode, name: Buffer): Promise<unknown> {
    this.inodes.dropName(dir, name);
    return Promise.all([this.send((n) => n.invalEntry(dir.id, name)), this.send((n) => n.invalInode(dir.id, 0, 0))]);
  }

  /** The directory's cached listing (its pages) and attributes, not its names. */
  dropListing(dir: MfsInode): Promise<unknown> {
    return this.send((n) => n.invalInode(dir.id, 0, 0));
  }

  /** Every name we know the kernel may have cached in `dir`, and its listing. */
  private dropDir(dir: MfsInode): Promise<unknown> {
    const sent: Array<Promise<unknown>> = [];
    for (const key of [...dir.names.keys()]) {
      this.inodes.dropName(dir, key);
      sent.push(this.send((n) => n.invalEntry(dir.id, keyName(key))));
    }
    sent.push(this.send((n) => n.invalInode(dir.id, 0, 0)));
    return Promise.all(sent);
  }

  /**
   * Everything cached from node `node` (its session was lost or closed): names and listings of
   * directories, attributes of everything. Pages of regular files are not dropped here, since
   * INVAL_INODE with an offset waits for READs in flight, which may wait on the lost node: their
   * next open drops them instead (suspectPages), and AUTO_INVAL_DATA drops them at the first
   * GETATTR that shows a new size or mtime.
   */
  dropNode(node: number): Promise<unknown> {
    const sent: Array<Promise<unknown>> = [];
    for (const i of this.inodes.ofNode(node)) {
      const type = i.type & S_IFMT;
      if (type === S_IFDIR) sent.push(this.dropDir(i));
      else sent.push(this.send((n) => n.invalInode(i.id, -1, 0)));
      if (type === S_IFREG) this.suspectPages.add(i.id);
    }
    return Promise.all(sent);
  }

  private send(fn: (n: Notifier) => Promise<string | undefined>): Promise<unknown> {
    if (!this.notifier) return Promise.resolve();
    // ENOENT: the kernel had nothing cached (harmless). Any other refusal (the connection is going
    // away) leaves nothing to repair: an unmounted kernel caches nothing.
    return fn(this.notifier).catch(() => undefined);
  }
}
