// --keep-cache: the kernel may keep pages and attributes for an hour, so when a backing file changes
// behind the mount we must say so. Each looked-up node gets an fs.watch (inotify); a change sends
// INVAL_INODE for the node (attributes and all pages) and INVAL_ENTRY for a name in a watched dir.
// Notifications go through the session's notify worker, never from a request's code path.
import { watch, type FSWatcher } from 'node:fs';
import type { Notifier } from '../kernel/index.js';
import { fdPath } from '../../sys/index.js';
import type { Node } from './nodes.js';
import type { PassthroughFs } from './passthrough.js';

const MAX_WATCHES = 8192;

export class CacheWatcher {
  private readonly watchers = new Map<number, FSWatcher>();

  constructor(private readonly fs: PassthroughFs, private readonly notifier: Notifier) {}

  attach(): void {
    this.fs.onLookup = (node) => this.watchNode(node);
    this.watchNode(this.fs.nodes.root);
  }

  private watchNode(node: Node): void {
    if (this.watchers.has(node.id) || this.watchers.size >= MAX_WATCHES) return;
    let w: FSWatcher;
    try {
      // inotify on the magic link watches the inode itself, under whatever names it has.
      w = watch(fdPath(node.fd), { persistent: false, encoding: 'buffer' });
    } catch {
      return; // gone already, or not watchable (fifo, socket)
    }
    this.watchers.set(node.id, w);
    const isDir = node.type === 0o040000;
    w.on('change', (_event, filename) => {
      if (this.fs.nodes.get(node.id) !== node) {
        w.close();
        this.watchers.delete(node.id);
        return;
      }
      if (isDir && Buffer.isBuffer(filename) && filename.length > 0) {
        void this.notifier.invalEntry(node.id, filename);
        void this.notifier.invalInode(node.id, -1, 0);
      } else if (!isDir) {
        void this.notifier.invalInode(node.id, 0, 0);
      }
    });
    w.on('error', () => {
      w.close();
      this.watchers.delete(node.id);
    });
  }
}
