// What the /mfs mount needs from one node: its typed file operations, the invalidations that keep
// its caches right, and its state. A Session (proto/session-client.ts) is one, over the network; a
// node's own mfsd hosting the mount gives it another that runs the operations in process, on the
// same callback table (server/local-link.ts): the mount cannot tell them apart, so /mfs/<own node>
// is served by the same code as every other node, with no socket in between.
//
// Events, as the session library emits them:
// - 'invalidate' (Invalidation): something the mount may have cached changed. A listener may return
//   a promise: the change that caused it completes only once every listener's promise settled (the
//   ack waits for it), so a writer's call returns after the mount dropped what it held.
// - 'reset' (Errno): the node dropped this link's callbacks: drop everything cached from it.
// - 'expired': the link's open files and locks on the node are gone too.
// - 'state' (SessionStatus).
import type {
  Attr, Caller, DirEntry, Entry, Invalidation, LockArgs, LockReply, Name, SessionStatus, U64,
} from './session-client.js';
import type { Session } from './session-client.js';
import type { Errno } from './errno.js';
import type { ExportInfo } from './node.js';

export interface NodeLink {
  /** Incremented whenever the node dropped this link's callbacks: only replies of the current epoch may be cached. */
  readonly epoch: number;
  readonly status: SessionStatus;
  /** Calls made and not yet answered. */
  readonly inFlight: number;

  on(event: 'invalidate', listener: (inv: Invalidation) => unknown): this;
  on(event: 'reset', listener: (why: Errno) => unknown): this;
  on(event: 'expired' | 'resumed', listener: () => unknown): this;
  on(event: 'state', listener: (state: SessionStatus) => unknown): this;
  off(event: 'invalidate', listener: (inv: Invalidation) => unknown): this;
  off(event: 'reset', listener: (why: Errno) => unknown): this;
  off(event: 'expired' | 'resumed', listener: () => unknown): this;
  off(event: 'state', listener: (state: SessionStatus) => unknown): this;
  removeAllListeners(event?: string): this;
  /** Ends the link: its calls fail (EHOSTDOWN), the node releases its open files and locks. */
  close(): void;

  root(caller: Caller, exportPath: string): Promise<Entry>;
  lookup(caller: Caller, dir: Buffer, name: Name): Promise<Entry>;
  getAttr(caller: Caller, handle: Buffer, fh?: U64): Promise<Attr>;
  setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr>;
  access(caller: Caller, handle: Buffer, mask: number): Promise<unknown>;
  mkdir(caller: Caller, dir: Buffer, name: Name, mode?: number, umask?: number): Promise<Entry>;
  mknod(caller: Caller, dir: Buffer, name: Name, mode: number, umask?: number, rdev?: U64): Promise<Entry>;
  create(caller: Caller, dir: Buffer, name: Name, flags: number, mode?: number, umask?: number): Promise<{ entry: Entry; fh: U64 }>;
  open(caller: Caller, handle: Buffer, flags: number): Promise<U64>;
  release(caller: Caller, fh: U64, handle?: Buffer, locks?: { clientId: string; lockOwner: U64 }): Promise<unknown>;
  unlink(caller: Caller, dir: Buffer, name: Name): Promise<unknown>;
  rmdir(caller: Caller, dir: Buffer, name: Name): Promise<unknown>;
  rename(caller: Caller, oldDir: Buffer, oldName: Name, newDir: Buffer, newName: Name, flags?: number): Promise<unknown>;
  link(caller: Caller, handle: Buffer, newDir: Buffer, newName: Name): Promise<Entry>;
  symlink(caller: Caller, dir: Buffer, name: Name, target: Name): Promise<Entry>;
  readlink(caller: Caller, handle: Buffer): Promise<Buffer>;
  statFs(caller: Caller, handle: Buffer, fh?: U64): Promise<Record<string, U64>>;
  fsync(caller: Caller, handle: Buffer, fh: U64, datasync?: boolean): Promise<unknown>;
  fallocate(caller: Caller, handle: Buffer, fh: U64, offset: number, length: number, mode?: number): Promise<unknown>;
  lseek(caller: Caller, handle: Buffer, fh: U64, offset: number, whence: number): Promise<number>;
  copyFileRange(caller: Caller, inHandle: Buffer, fhIn: U64, offIn: number, outHandle: Buffer, fhOut: U64, offOut: number, length: number): Promise<number>;
  getXattr(caller: Caller, handle: Buffer, name: string, fh?: U64): Promise<Buffer>;
  setXattr(caller: Caller, handle: Buffer, name: string, value: Buffer, flags?: number, fh?: U64): Promise<unknown>;
  listXattr(caller: Caller, handle: Buffer, fh?: U64): Promise<string[]>;
  removeXattr(caller: Caller, handle: Buffer, name: string, fh?: U64): Promise<unknown>;
  getLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<LockReply>;
  setLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown>;
  setLkW(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown>;
  read(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags?: number): Promise<Buffer>;
  write(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags?: number): Promise<number>;
  readDirBatch(caller: Caller, dir: Buffer, cookie?: U64): Promise<{ entries: DirEntry[]; eof: boolean }>;
}

/**
 * A node the mount reaches without dialing it (the hosting mfsd's own): its exports, as its
 * Identify would list them, and a way to open a link to it.
 */
export interface LocalNode {
  readonly exports: readonly ExportInfo[];
  openLink(): NodeLink;
}

// A Session is a NodeLink as it stands: this line fails to compile the day they drift apart.
export type SessionIsNodeLink = Session extends NodeLink ? true : never;
const sessionIsNodeLink: SessionIsNodeLink = true;
void sessionIsNodeLink;
