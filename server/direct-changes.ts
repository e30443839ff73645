// Changes made directly in an export's directory, not through mfsd (a local process, an admin):
// noticed and sent as invalidations to every session holding a callback on what changed.
//
// The bound: a direct change reaches the caching sessions within directChangeMs (config
// sessions.directChangeMs, default 100 ms) plus the time those sessions take to acknowledge.
// Every directChangeMs the watcher drains what the kernel queued since the last time, turns it into
// Changes (direct-changes-events.ts), sends them in one invalidate() and goes on without waiting for
// the acks (a slow session is fenced by the callback table after its lease, as for any change).
// Under a flood a drain stops after DRAIN_BUDGET_MS of work and goes on from setImmediate, so other
// requests are served in between; the bound then grows with the backlog rather than the event
// loop stalling.
//
// How: fanotify (sys/fanotify.ts) with FAN_MARK_FILESYSTEM on the filesystem of each export, in
// file-id mode (FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID): events name the
// directory and the entry name, and the file itself, by kernel file handle, never by an open fd.
// A handle becomes the cluster inode number through its inode number (read in place when the
// filesystem's handle type passed a check on the export root at start, as ext4's does; else
// open_by_handle_at on the export root + statx, as for tmpfs) and handles.knownLocalId, which never
// allocates: a device mfsd never saw, or an inode >= 2^40 it never looked up, has no id, and no
// session can have cached it.
// - Events caused by mfsd itself (its pid; its worker threads share it) are skipped: the operations
//   invalidate what they change before they reply.
// - Which inodes are sent: those some session holds a callback on (callbacks.watched), and those an
//   operation resolved lately (their handle record is in memory, or an export root). The second set
//   closes a race: an operation notes callbacks.now(), reads the file, and registers its callback;
//   a direct change that lands between the read and the registration, and that the watcher handles
//   before the registration, would find nobody watching and the session would keep the old value.
//   Given to invalidate() anyway, it is remembered as the inode's last change and registered()
//   recalls the fresh callback at once. Every other inode of the filesystem (the mark sees all of
//   it) is skipped: remembering those would only churn the callback table's change memory.
// - The filesystem mark sees the whole filesystem, not only the exports: an unrelated file's event
//   costs one parse and one map lookup. A submount inside an export is another filesystem and is
//   not watched (nor is a btrfs subvolume with its own fsid).
// - FAN_UNLIMITED_QUEUE: no event is ever dropped (a queue overflow would lose invalidations and the
//   callback table has no "drop everything" change); the backlog is drained every window.
// - Not root (or no fanotify, or a filesystem without file handles): one line on stderr says direct
//   changes are not watched (there, or at all); there is no inotify fallback, as inotify would need
//   a watch per directory of every export. mfsd normally runs as root; the tests do.
//
// Reading: a non-blocking fanotify fd read on a timer every directChangeMs rather than a worker
// blocked in read(2). A blocking read cannot be interrupted to stop the watcher, and the timer is
// the batching window anyway. Measured on this 2-core VM (busy with other work on the same ext4):
// an empty read costs about 1 us and read + parse about 8 us per event; the watcher's CPU is about
// 0.3% of a core at the default 100 ms, 2% at 10 ms and 6% at 1 ms (the timer's own cost). End to
// end (test/server/session-direct-change.test.ts, directChangeMs 50): a node:fs change reached the
// caching session 20-52 ms later.
import type { Callbacks } from './callbacks.js';
import type { SessionSettings } from './config.js';
import type { LocalFs } from './local-fs.js';
import { ChangeBatch, changesOf, inPlaceHandleType, type ResolveFid } from './direct-changes-events.js';
import { errnoName, SysError } from '../sys/index.js';
import * as fan from '../sys/fanotify.js';

export interface DirectChanges { close(): void }

const MASK = fan.FAN_CREATE | fan.FAN_DELETE | fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO | fan.FAN_ATTRIB | fan.FAN_MODIFY
  | fan.FAN_DELETE_SELF | fan.FAN_MOVE_SELF | fan.FAN_ONDIR;
const INIT_FLAGS = fan.FAN_CLASS_NOTIF | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_UNLIMITED_QUEUE | fan.FAN_REPORT_FID | fan.FAN_REPORT_DFID_NAME;
const READ_BUFFER = 64 * 1024;
/** Event-loop time one drain may take before it yields (about 1 000 events at ~8 us each). */
const DRAIN_BUDGET_MS = 8;

/**
 * One watched filesystem: the st_dev of its files, an fd on it for open_by_handle_at, and the
 * handle type whose inode number can be read in place (checked on the export root), if any.
 */
interface WatchedFs { dev: number; mountFd: number; inPlaceType: number | undefined }

const NOT_WATCHED: DirectChanges = { close() {} };

function say(line: string): void {
  process.stderr.write(`mfsd: ${line}\n`);
}

const reason = (err: unknown): string => (err instanceof SysError ? errnoName(err.errno) : String(err));

/** The fanotify group, with the child's file id on entry events when the kernel has it (5.17+). */
function openGroup(): number {
  try {
    return fan.fanotifyInit(INIT_FLAGS | fan.FAN_REPORT_TARGET_FID);
  } catch (err) {
    if (!(err instanceof SysError && errnoName(err.errno) === 'EINVAL')) throw err;
    // Older kernel: entry events then carry no child id, and a link/unlink of a cached file
    // reaches its holders through the ATTRIB event of its nlink change.
    return fan.fanotifyInit(INIT_FLAGS);
  }
}

export function watchDirectChanges(lfs: LocalFs, callbacks: Callbacks, settings: SessionSettings): DirectChanges {
  let fd: number;
  try {
    fd = openGroup();
  } catch (err) {
    say(`direct changes in the exports are not watched (fanotify: ${reason(err)}; it needs root)`);
    return NOT_WATCHED;
  }
  const filesystems = new Map<bigint, WatchedFs>();
  for (const exp of lfs.byId.values()) {
    // A file system whose calls may hang (NFS, FUSE, ...): resolving its file handles would block the
    // event loop, and its other clients' changes would not be seen here anyway.
    if (exp.io.fsName !== null) {
      say(`direct changes in export ${exp.spec.path} are not watched (${exp.io.fsName}: changes by its other clients are not reported here)`);
      continue;
    }
    try {
      const fsid = fan.fsidOf(exp.rootFd);
      if (filesystems.has(fsid)) continue;
      fan.fanotifyMark(fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, MASK, exp.rootFd, null);
      filesystems.set(fsid, { dev: exp.rootDev, mountFd: exp.rootFd, inPlaceType: inPlaceHandleType(exp.rootFd, exp.rootIno) });
    } catch (err) {
      say(`direct changes in export ${exp.spec.path} are not watched (fanotify_mark: ${reason(err)})`);
    }
  }
  if (filesystems.size === 0) {
    fan.closeFd(fd);
    return NOT_WATCHED;
  }

  const roots = new Set([...lfs.byId.values()].map((exp) => exp.rootId));
  const resolve: ResolveFid = (rec) => {
    const fs = filesystems.get(rec.fsid);
    if (!fs) return undefined;
    let dev = fs.dev;
    let ino = rec.handleType === fs.inPlaceType ? fan.inoOfHandle(rec.handleType, rec.handle) : undefined;
    if (ino === undefined) {
      const st = fan.statByHandle(fs.mountFd, rec.handleType, rec.handle);
      if (!st) return undefined;
      ({ dev, ino } = st);
    }
    const local = lfs.store.knownLocalId(dev, ino);
    if (local === undefined) return undefined;
    const cluster = lfs.clusterIno(local);
    return callbacks.watched(cluster) || lfs.store.inMemory(local) || roots.has(local) ? cluster : undefined;
  };

  const buf = Buffer.allocUnsafe(READ_BUFFER);
  const batch = new ChangeBatch();
  let overflowSaid = false;
  let closed = false;
  let more: NodeJS.Immediate | undefined;
  const drain = (): void => {
    more = undefined;
    const until = performance.now() + DRAIN_BUDGET_MS;
    try {
      for (;;) {
        if (performance.now() > until) {
          more = setImmediate(drain);
          break;
        }
        const n = fan.readEvents(fd, buf);
        if (n === 0) break;
        for (const ev of fan.parseEvents(buf, n, process.pid)) {
          if (ev.mask & fan.FAN_Q_OVERFLOW && !overflowSaid) {
            overflowSaid = true;
            say('fanotify queue overflowed: some direct changes in the exports were not invalidated');
          }
          batch.add(changesOf(ev, resolve));
        }
      }
    } catch (err) {
      // Never expected (the fd is ours and non-blocking): say it once and stop, rather than every window.
      say(`direct changes in the exports are no longer watched (fanotify read: ${reason(err)})`);
      stop();
    }
    if (batch.size > 0) void callbacks.invalidate(batch.take());
  };
  const timer = setInterval(() => {
    if (!more) drain();
  }, settings.directChangeMs);
  timer.unref();

  function stop(): void {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    if (more) clearImmediate(more);
    fan.closeFd(fd);
  }
  return { close: stop };
}
