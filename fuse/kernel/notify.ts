// Notifications a filesystem may send at any moment to keep the kernel's caches honest. They are
// written by the device's notify worker (see device.ts): the write can block until the kernel has
// taken page locks, and those may be held by READs that only our main thread can answer.
// Results: undefined = done; 'ENOENT' = the kernel had nothing cached (harmless).
import { encodeDelete, encodeInvalEntry, encodeInvalInode } from './encode.js';

export interface NotifyChannel {
  notify(frame: Buffer): Promise<string | undefined>;
  /** Get ready to send (start what sending needs) without sending anything. */
  prepare?(): void;
}

export class Notifier {
  constructor(private readonly channel: NotifyChannel) {}

  /**
   * Start the notify worker now rather than at the first notification, for a filesystem that will
   * send some: a worker takes tens of milliseconds of CPU to start, which would otherwise fall
   * in the middle of whatever requests are being served when the first change is seen.
   */
  prepare(): void {
    this.channel.prepare?.();
  }

  /** Drop cached attributes; with off >= 0 also cached pages [off, off+len) (len <= 0: to EOF). */
  invalInode(nodeId: number, off = -1, len = 0): Promise<string | undefined> {
    return this.channel.notify(encodeInvalInode(nodeId, off, len));
  }

  /** Forget the dentry `name` in `parent` (and the parent's attributes). */
  invalEntry(parent: number, name: Buffer | string): Promise<string | undefined> {
    return this.channel.notify(encodeInvalEntry(parent, name));
  }

  /** Tell the kernel `name` in `parent` (node `child`) is gone; also wakes inotify watchers. */
  delete(parent: number, child: number, name: Buffer | string): Promise<string | undefined> {
    return this.channel.notify(encodeDelete(parent, child, name));
  }
}
