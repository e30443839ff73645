// --keep-cache: the kernel may keep pages, attributes and names for an hour, so when SOURCE changes
// behind the mount we must say so. Each directory the kernel has looked up gets one inotify watch
// (fs.watch on its descriptor's magic link: the inode itself, under whatever name it has now).
// inotify reports, by name, both changes to the directory's entries and changes to the files in
// it, so one watch per directory covers its files too: a name that appeared, went or moved gets
// INVAL_ENTRY (which also drops the directory's attributes), and the file now under that name, if
// the kernel knows it, gets INVAL_INODE with its pages. Files get no watch of their own (a watch
// per file cost a syscall and a libuv handle on every lookup). A change made through a hard link
// in a directory the kernel never looked up is not seen. Notifications go through the session's
// notify worker, never from a request's code path.
import { watch, type FSWatcher } from 'node:fs';
import type { Notifier } from '../kernel/index.js';
import * as sys from '../../sys/index.js';
import type { Node } from './nodes.js';
import type { PassthroughFs } from './passthrough.js';

const MAX_WATCHES = 8192;
const S_IFDIR = 0o040000;

export class CacheWatcher {
  private readonly watchers = new Map<number, FSWatcher>();

  constructor(private readonly fs: PassthroughFs, private readonly notifier: Notifier) {}

  attach(): void {
    this.fs.onLookup = (node) => {
      if (node.type === S_IFDIR) this.watchDir(node);
    };
    this.watchDir(this.fs.nodes.root);
  }

  private watchDir(dir: Node): void {
    if (this.watchers.has(dir.id) || this.watchers.size >= MAX_WATCHES) return;
    let w: FSWatcher;
    try {
      w = watch(sys.fdPath(dir.fd), { persistent: false, encoding: 'buffer' });
    } catch {
      return; // gone already
    }
    this.watchers.set(dir.id, w);
    const stop = (): void => {
      w.close();
      this.watchers.delete(dir.id);
    };
    w.on('change', (_event, name) => {
      if (this.fs.nodes.get(dir.id) !== dir) return stop(); // forgotten by the kernel
      if (!Buffer.isBuffer(name) || name.length === 0) {
        void this.notifier.invalInode(dir.id, -1, 0);
        return;
      }
      void this.notifier.invalEntry(dir.id, name);
      const st = sys.statatIfExists(dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
      const child = st && this.fs.nodes.find(st);
      if (child) void this.notifier.invalInode(child.id, 0, 0);
    });
    w.on('error', stop);
  }
}
