// --keep-cache: the kernel may keep pages, attributes and names for an hour, so when SOURCE changes
// behind the mount we must say so. Each directory the kernel has looked up gets one inotify watch
// (on its descriptor's magic link: the inode itself, under whatever name it has now), all of them
// on one inotify descriptor (sys/inotify.ts: fs.watch cost about 18 us per watch, a tenth of a
// cold tree walk).
// inotify reports, by name, both changes to the directory's entries and changes to the files in
// it, so one watch per directory covers its files too: a name that appeared, went or moved gets
// INVAL_ENTRY and the directory INVAL_INODE (attributes and cached listing), and the file now
// under that name, if the kernel knows it, gets INVAL_INODE with its pages. Files get no watch of their own (a watch
// per file cost a syscall and a libuv handle on every lookup). A change made through a hard link
// in a directory the kernel never looked up is not seen. Notifications go through the session's
// notify worker, never from a request's code path.
//
// Our own changes raise the same events (a WRITE through the mount is an IN_MODIFY of the backing
// file), and invalidating on them would drop the very pages --keep-cache is for. So after each
// change made for a request the passthrough reports the node (onChanged) and we note its ctime: a
// change event is news only if the ctime is no longer the one we noted (every change to an inode
// moves its ctime, and we read it after each of ours, so the next change gets a distinct one).
// Names we made, removed or moved are noted too (onNameChanged), and the first name event for each
// is taken as ours; any other name event invalidates the entry. If the kernel's event queue
// overflows, every node's attributes, pages and listing are invalidated.

import type { Notifier } from '../kernel/index.js';
import * as sys from '../../sys/index.js';
import * as ino from '../../sys/inotify.js';
import type { Node } from './nodes.js';
import type { PassthroughFs } from './passthrough.js';

const MAX_WATCHES = 8192;
const MAX_OWN_NAMES = 4096;
const S_IFDIR = 0o040000;
/** What fs.watch asked for: entries that appear, go or move, and changes of the files' data or attributes. */
const WATCH_MASK = ino.IN_ATTRIB | ino.IN_CREATE | ino.IN_MODIFY | ino.IN_DELETE | ino.IN_DELETE_SELF |
  ino.IN_MOVE_SELF | ino.IN_MOVED_FROM | ino.IN_MOVED_TO;
/** Events on a name that mean it appeared, went or moved (fs.watch's 'rename'). */
const NAME_EVENTS = ino.IN_CREATE | ino.IN_DELETE | ino.IN_MOVED_FROM | ino.IN_MOVED_TO;

export class CacheWatcher {
  /** Each watched directory's watch descriptor, by node id, and the directory by watch descriptor. */
  private readonly wdOf = new Map<number, number>();
  private readonly dirOf = new Map<number, Node>();
  private inotify: ino.Inotify | undefined;

  constructor(private readonly fs: PassthroughFs, private readonly notifier: Notifier) {}

  /** The ctime we saw right after our own latest change of each node. */
  private readonly ownCtime = new WeakMap<Node, string>();
  /** Names changed by us in each directory whose event has not come yet (latin1: bytes kept). */
  private readonly ownNames = new WeakMap<Node, Set<string>>();

  attach(): void {
    this.inotify = new ino.Inotify((wd, mask, _cookie, name) => this.onEvent(wd, mask, name), () => this.detach());
    this.fs.onLookup = (node) => {
      if (node.type === S_IFDIR) this.watchDir(node);
    };
    // A forgotten directory's watch goes with it: otherwise it stays until an event comes (it
    // pins the inode too), and after a few cache drops MAX_WATCHES stale ones left directories
    // the kernel looks up again without a watch, their changes behind the mount unseen.
    this.fs.onForget = (node) => this.unwatch(node.id, true);
    this.fs.onChanged = (node) => this.ownCtime.set(node, ctimeKey(sys.fstat(node.fd)));
    this.fs.onNameChanged = (dir, name) => {
      let names = this.ownNames.get(dir);
      if (!names) this.ownNames.set(dir, (names = new Set()));
      if (names.size >= MAX_OWN_NAMES) names.clear(); // events lost: forget, invalidate more
      names.add(name.toString('latin1'));
    };
    this.watchDir(this.fs.nodes.root);
    this.notifier.prepare();
  }

  /** Stop watching (the mount is going away, or the inotify descriptor failed). */
  detach(): void {
    this.inotify?.close();
    this.inotify = undefined;
    this.wdOf.clear();
    this.dirOf.clear();
  }

  private watchDir(dir: Node): void {
    if (!this.inotify || this.wdOf.has(dir.id) || this.wdOf.size >= MAX_WATCHES) return;
    let wd: number;
    try {
      wd = this.inotify.add(sys.fdPath(dir.fd), WATCH_MASK);
    } catch {
      return; // gone already
    }
    this.wdOf.set(dir.id, wd);
    this.dirOf.set(wd, dir);
  }

  private unwatch(id: number, remove: boolean): void {
    const wd = this.wdOf.get(id);
    if (wd === undefined) return;
    this.wdOf.delete(id);
    this.dirOf.delete(wd);
    if (remove) this.inotify?.remove(wd);
  }

  private onEvent(wd: number, mask: number, name: Buffer): void {
    if (mask & ino.IN_Q_OVERFLOW) {
      // Which names and files changed is lost: drop everything the kernel caches but the names
      // (a stale name is still checked by its LOOKUP's attributes, whose inode changed).
      for (const node of this.fs.nodes.all()) void this.notifier.invalInode(node.id, 0, 0);
      return;
    }
    const dir = this.dirOf.get(wd);
    if (!dir) return; // a watch removed with events still queued
    if (mask & ino.IN_IGNORED) return this.unwatch(dir.id, false); // the directory is gone
    if (this.fs.nodes.get(dir.id) !== dir) return this.unwatch(dir.id, true); // forgotten by the kernel
    if (name.length === 0) {
      if (this.isNews(dir, sys.fstat(dir.fd))) void this.notifier.invalInode(dir.id, -1, 0);
      return;
    }
    if (mask & NAME_EVENTS && !this.ownNames.get(dir)?.delete(name.toString('latin1'))) {
      void this.notifier.invalEntry(dir.id, name);
      // INVAL_ENTRY of a name the kernel never looked up does nothing at all (ENOENT), not even
      // to the directory: drop its attributes (nlink, mtime) and its cached listing (its pages).
      void this.notifier.invalInode(dir.id, 0, 0);
    }
    const st = sys.statatIfExists(dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
    const child = st && this.fs.nodes.find(st);
    if (child && this.isNews(child, st)) void this.notifier.invalInode(child.id, 0, 0);
  }

  private isNews(node: Node, st: sys.Stat): boolean {
    return this.ownCtime.get(node) !== ctimeKey(st);
  }
}

const ctimeKey = (st: sys.Stat): string => `${st.ctime.sec}.${st.ctime.nsec}`;
