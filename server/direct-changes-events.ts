// What one fanotify event means for caching sessions: the Changes (callbacks.ts) to send, with inodes
// as cluster inode numbers. Pure translation; the watcher (direct-changes.ts) reads the events,
// resolves handles and sends the batch.
//
// Which record names what (measured on ext4 with FAN_REPORT_DFID_NAME | FAN_REPORT_FID |
// FAN_REPORT_TARGET_FID; the kernel merges consecutive events on one object, so a mask may carry
// several bits, e.g. CREATE|MODIFY for `echo > f`):
// - a directory-entry event (create, delete, moved from/to): DFID_NAME = (directory, name), FID =
//   the entry's own inode (with TARGET_FID; without it the FID record is absent or the directory);
// - an event on a file itself (modify, attrib, delete_self, move_self): FID = the file, and
//   DFID_NAME its parent and name; on a directory itself with no FID record: DFID_NAME (dir, ".").
import type { Change } from './callbacks.js';
import { handleOf, inoOfHandle, FAN_ATTRIB, FAN_CREATE, FAN_DELETE, FAN_DELETE_SELF, FAN_EVENT_INFO_TYPE_DFID, FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_FID, FAN_MODIFY, FAN_MOVE_SELF, FAN_MOVED_FROM, FAN_MOVED_TO, type FanEvent, type FidRecord } from '../sys/fanotify.js';

const DIRENT = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;
const SELF_GONE = FAN_DELETE_SELF | FAN_MOVE_SELF;
const DOT = Buffer.from('.');

/** A record's file as a cluster inode number, or undefined when it is not one mfsd knows. */
export type ResolveFid = (rec: FidRecord) => bigint | undefined;

const sameHandle = (a: FidRecord, b: FidRecord): boolean => a.fsid === b.fsid && a.handleType === b.handleType && a.handle.equals(b.handle);

/** The Changes an event stands for; nothing for files mfsd never gave out (resolve says undefined). */
export function changesOf(ev: FanEvent, resolve: ResolveFid): Change[] {
  const dirRec = ev.records.find((r) => r.type === FAN_EVENT_INFO_TYPE_DFID_NAME || r.type === FAN_EVENT_INFO_TYPE_DFID);
  const fidRec = ev.records.find((r) => r.type === FAN_EVENT_INFO_TYPE_FID);
  const onDirItself = dirRec?.name !== undefined && dirRec.name.equals(DOT);
  const out: Change[] = [];

  if (ev.mask & DIRENT && dirRec?.name && !onDirItself) {
    const dir = resolve(dirRec);
    if (dir !== undefined) {
      // The name appeared or went, and the directory's mtime, ctime (and nlink for a subdirectory) changed.
      out.push({ kind: 'name', dir, name: dirRec.name }, { kind: 'attr', ino: dir });
    }
    // The entry's own inode: its nlink and ctime change (link, unlink, rename), so cached attributes are stale.
    if (fidRec && !sameHandle(fidRec, dirRec)) {
      const child = resolve(fidRec);
      if (child !== undefined) out.push({ kind: 'attr', ino: child });
    }
  }

  if (ev.mask & (FAN_MODIFY | FAN_ATTRIB | SELF_GONE)) {
    const selfRec = fidRec ?? (onDirItself ? dirRec : undefined);
    const self = selfRec && resolve(selfRec);
    if (self !== undefined) {
      if (ev.mask & FAN_MODIFY) out.push({ kind: 'data', ino: self, offset: 0n, length: 0n });
      out.push({ kind: 'attr', ino: self });
    }
  }
  return out;
}

/** Changes gathered over one batching window, each sent once. */
export class ChangeBatch {
  private readonly byKey = new Map<string, Change>();

  add(changes: readonly Change[]): void {
    for (const c of changes) {
      const key = c.kind === 'name' ? `n${c.dir}:${c.name.toString('latin1')}` : `${c.kind[0]}${c.ino}`;
      if (!this.byKey.has(key)) this.byKey.set(key, c);
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The changes gathered, and an empty batch for the next window. */
  take(): Change[] {
    const out = [...this.byKey.values()];
    this.byKey.clear();
    return out;
  }
}

/**
 * The handle type of the filesystem `rootFd` is on whose inode number can be read in place, checked
 * on a known inode (the export root): ext4's type 1 passes; tmpfs's type 1, whose first word is the
 * generation, does not. undefined: always open by handle.
 */
export function inPlaceHandleType(rootFd: number, rootIno: bigint): number | undefined {
  try {
    const { handleType, handle } = handleOf(rootFd);
    return inoOfHandle(handleType, handle) === rootIno ? handleType : undefined;
  } catch {
    return undefined; // a filesystem without handles to check with
  }
}
