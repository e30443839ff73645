// The typed interface a filesystem implements to be served over /dev/fuse. One optional method per
// operation, named after the syscall; a missing method answers ENOSYS (with the kernel's sticky
// fallbacks, see fuse-protocol.md A2). Methods throw an errno-carrying error (Errno or Node's
// SystemError) to fail; anything else thrown is a bug and becomes EIO.
import { readFileSync } from 'node:fs';
import type { FileLock, Request, RequestOf } from './decode.js';
import type { AttrOut, DirBuffer, EntryOut, OpenOut, StatfsOut } from './encode.js';

const GROUPS_CACHE_MS = 1000;
const groupsCache = new Map<number, { groups: number[]; at: number }>();

/** Supplementary groups of a process, from /proc/PID/status; cached briefly per pid. */
export function groupsOfPid(pid: number): number[] {
  const now = Date.now();
  const hit = groupsCache.get(pid);
  if (hit && now - hit.at < GROUPS_CACHE_MS) return hit.groups;
  let groups: number[] = [];
  try {
    const line = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    groups = (line?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // the process may be gone already; no supplementary groups then
  }
  if (groupsCache.size > 4096) groupsCache.clear();
  groupsCache.set(pid, { groups, at: now });
  return groups;
}

/**
 * What a filesystem's read() gives back when it has handed the request to something that writes
 * the reply to /dev/fuse itself (a worker thread): the session then sends nothing for it.
 */
export const ANSWERED_ELSEWHERE: unique symbol = Symbol('omfs.answeredElsewhere');

/** Who asked, and a signal that fires when the kernel interrupts the request. */
export class RequestContext {
  private groupList: number[] | undefined;
  // Made on first use: an AbortController per request cost ~3% of a create-heavy run.
  private controller: AbortController | undefined;
  private wasInterrupted = false;
  constructor(
    readonly uid: number,
    readonly gid: number,
    readonly pid: number,
    readonly unique: bigint,
  ) {}

  /** Aborted when the kernel sends INTERRUPT for this request (e.g. the caller got a signal). */
  get interrupted(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.wasInterrupted) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** Called by the session on INTERRUPT. */
  interrupt(): void {
    this.wasInterrupted = true;
    this.controller?.abort();
  }

  /** Supplementary groups, read lazily: most requests never need them. */
  get groups(): number[] {
    this.groupList ??= groupsOfPid(this.pid);
    return this.groupList;
  }
}

/**
 * One operation. Return the answer itself when it is at hand (it is sent at once, with no promise
 * or microtask per request) or a promise when the work is asynchronous; throw or reject with an
 * errno-coded error (`code: 'ENOENT'`, KernelErrno) for an error reply. A missing method is ENOSYS.
 */
type Op<K extends Request['op'], R> = (ctx: RequestContext, req: RequestOf<K>) => Promise<R> | R;

export interface CreateOut { entry: EntryOut; open: OpenOut }
export interface InitInfo { major: number; minor: number; flags: bigint }

export interface FileSystem {
  /** Called once INIT has been answered. */
  init?(info: InitInfo): void;
  destroy?(): void;
  lookup?: Op<'LOOKUP', EntryOut>;
  /** No reply is sent; called once per node for FORGET and for each BATCH_FORGET item. */
  forget?(nodeId: number, nlookup: number): void;
  getattr?: Op<'GETATTR', AttrOut>;
  setattr?: Op<'SETATTR', AttrOut>;
  readlink?: Op<'READLINK', string | Buffer>;
  symlink?: Op<'SYMLINK', EntryOut>;
  mknod?: Op<'MKNOD', EntryOut>;
  mkdir?: Op<'MKDIR', EntryOut>;
  unlink?: Op<'UNLINK', void>;
  rmdir?: Op<'RMDIR', void>;
  /** RENAME and RENAME2 (flags 0 for plain RENAME). */
  rename?: Op<'RENAME', void>;
  link?: Op<'LINK', EntryOut>;
  open?: Op<'OPEN', OpenOut>;
  /** May return fewer bytes than asked (EOF). */
  read?: Op<'READ', Buffer | typeof ANSWERED_ELSEWHERE>;
  /** Returns the number of bytes written. */
  write?: Op<'WRITE', number>;
  statfs?: Op<'STATFS', StatfsOut>;
  release?: Op<'RELEASE', void>;
  fsync?: Op<'FSYNC', void>;
  setxattr?: Op<'SETXATTR', void>;
  /** The whole value; the session answers size probes and ERANGE. */
  getxattr?: Op<'GETXATTR', Buffer>;
  /** NUL-separated names; the session answers size probes and ERANGE. */
  listxattr?: Op<'LISTXATTR', Buffer>;
  removexattr?: Op<'REMOVEXATTR', void>;
  flush?: Op<'FLUSH', void>;
  opendir?: Op<'OPENDIR', OpenOut>;
  /** Fill `out` from entry cookie req.offset on; stop at the first add() that returns false. */
  readdir?(ctx: RequestContext, req: RequestOf<'READDIR'>, out: DirBuffer): Promise<void> | void;
  readdirplus?(ctx: RequestContext, req: RequestOf<'READDIRPLUS'>, out: DirBuffer): Promise<void> | void;
  releasedir?: Op<'RELEASEDIR', void>;
  fsyncdir?: Op<'FSYNCDIR', void>;
  getlk?: Op<'GETLK', FileLock>;
  /** SETLK and SETLKW (req.op tells whether to wait). */
  setlk?: Op<'SETLK' | 'SETLKW', void>;
  access?: Op<'ACCESS', void>;
  create?: Op<'CREATE', CreateOut>;
  fallocate?: Op<'FALLOCATE', void>;
  lseek?: Op<'LSEEK', number>;
  copyFileRange?: Op<'COPY_FILE_RANGE', number>;
}
