// inotify(7) through koffi, without libuv's fs.watch. fs.watch costs a JS FSWatcher, a libuv
// handle and a path lookup per watch, about 18 us each: with one watch per directory a cold walk
// of a 600-directory tree spent about 27 ms on watching (fuse/passthrough/watch.ts). Here a watch
// is one inotify_add_watch(2), and the events of every watch come through one descriptor, read on
// the event loop as a stream (sys/fd-stream.ts). Layout from include/uapi/linux/inotify.h.
import type { Socket } from 'node:net';
import koffi from 'koffi';
import * as c from './libc.js';
import { SysError } from './errors.js';
import { readStreamOfFd } from './fd-stream.js';

const libc = koffi.load('libc.so.6');
const inotify_init1 = libc.func('int inotify_init1(int flags)');
const inotify_add_watch = libc.func('int inotify_add_watch(int fd, const char *path, uint32_t mask)');
const inotify_rm_watch = libc.func('int inotify_rm_watch(int fd, int wd)');

/** Event bits (inotify_event.mask and inotify_add_watch's mask). */
export const IN_MODIFY = 0x2;
export const IN_ATTRIB = 0x4;
export const IN_MOVED_FROM = 0x40;
export const IN_MOVED_TO = 0x80;
export const IN_CREATE = 0x100;
export const IN_DELETE = 0x200;
export const IN_DELETE_SELF = 0x400;
export const IN_MOVE_SELF = 0x800;
/** Events were lost: the queue overflowed (wd is -1). */
export const IN_Q_OVERFLOW = 0x4000;
/** The watch is gone (removed, or its inode deleted or its filesystem unmounted). */
export const IN_IGNORED = 0x8000;
export const IN_ISDIR = 0x40000000;

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const EINVAL = 22;
/** struct inotify_event: wd s32, mask u32, cookie u32, len u32, then len bytes of NUL-padded name. */
const EVENT_HEADER = 16;
/** Room for at least one event with the longest name (NAME_MAX + its NUL). */
const READ_BUFFER = 64 * 1024;

/** One event; `name` is the entry's name in the watched directory, or empty for the directory itself. */
export type InotifyListener = (wd: number, mask: number, cookie: number, name: Buffer) => void;

/** One inotify descriptor: watches added by path, their events handed to `listener` on the event loop. */
export class Inotify {
  private readonly stream: Socket;
  readonly fd: number;

  constructor(listener: InotifyListener, onError: (err: Error) => void) {
    const fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) as number;
    if (fd < 0) throw new SysError(c.errno(), 'inotify_init1');
    this.fd = fd;
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    this.stream = readStreamOfFd(fd, {
      onread: {
        buffer,
        callback: (n) => {
          parseEvents(buffer, n, listener);
          return true;
        },
      },
    });
    this.stream.on('error', onError);
    this.stream.unref(); // watching never keeps the process alive by itself
  }

  /** Watch `path` (followed if a symlink, so /proc/self/fd/N names the open inode) for `mask`; the watch descriptor. */
  add(path: c.PathArg, mask: number): number {
    const wd = inotify_add_watch(this.fd, c.cstr(path), mask) as number;
    if (wd < 0) throw new SysError(c.errno(), 'inotify_add_watch');
    return wd;
  }

  /** Remove a watch; one already gone (its inode deleted) is no error. */
  remove(wd: number): void {
    if ((inotify_rm_watch(this.fd, wd) as number) < 0 && c.errno() !== EINVAL) throw new SysError(c.errno(), 'inotify_rm_watch');
  }

  /** Stop reading and close the descriptor (every watch goes with it). */
  close(): void {
    this.stream.destroy();
  }
}

/** Calls `listener` for each event in buf[0, n) (a read returns whole events only). */
export function parseEvents(buf: Buffer, n: number, listener: InotifyListener): void {
  for (let at = 0; at + EVENT_HEADER <= n; ) {
    const wd = buf.readInt32LE(at);
    const mask = buf.readUInt32LE(at + 4);
    const cookie = buf.readUInt32LE(at + 8);
    const len = buf.readUInt32LE(at + 12);
    const nameAt = at + EVENT_HEADER;
    let end = nameAt;
    while (end < nameAt + len && buf[end] !== 0) end++;
    listener(wd, mask, cookie, Buffer.from(buf.subarray(nameAt, end)));
    at = nameAt + len;
  }
}
