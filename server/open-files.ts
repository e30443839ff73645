// Open files: fh -> fd, per peer. An fh is usable only by the peer that opened it and only for the
// uid it was opened for; an fh the server does not know is refused (EBADF), never reopened: a
// made-up fh must not cost an fd. (A session's fhs are reopened once, at daemon start, from its
// persisted record: session-restore.ts.) fh 0 is stateless I/O (a file opened for one call, closed after).
// When a peer ends (Peers.end), every file it still holds is closed.
import { constants } from 'node:fs';
import { Errno } from '../proto/errno.js';
import { closeFd } from './export-io.js';
import type { Peer } from './peers.js';

const { O_WRONLY, O_RDWR } = constants;
const O_ACCMODE = 3;

/** An open file; `uid` is the caller it was opened for: only that caller may use it through its fh. */
export interface OpenFile { fd: number; id: bigint; flags: number; uid: number }

export function openForWriting(f: OpenFile): boolean {
  const mode = f.flags & O_ACCMODE;
  return mode === O_WRONLY || mode === O_RDWR;
}

interface Held { file: OpenFile; peer: Peer }

/** Every open file of the daemon, with the peer holding it. */
export class OpenFileTable {
  private readonly files = new Map<bigint, Held>();
  private readonly byPeer = new Map<Peer, Set<bigint>>();
  // fhs start from a time-based point so an fh from before a restart is unlikely to name another file
  // (it would be EBADF anyway unless the same peer key opened it, which a new connection is not).
  private next = BigInt(Date.now()) << 16n;

  constructor(private readonly maxPerPeer: number) {}

  /** The files of `peer`, as the ops see them. */
  forPeer(peer: Peer): OpenFiles {
    return new OpenFiles(this, peer);
  }

  /** How many files `peer` holds. */
  countOf(peer: Peer): number {
    return this.byPeer.get(peer)?.size ?? 0;
  }

  /**
   * Throws EMFILE when `peer` may not open one more file (its own limit: other peers are unaffected).
   * Files being opened by calls still running count too, so concurrent Opens cannot overshoot.
   */
  checkRoom(peer: Peer): void {
    if (this.countOf(peer) + peer.opening >= this.maxPerPeer) {
      throw new Errno('EMFILE', `this peer holds ${this.maxPerPeer} open files (limits.openFilesPerPeer)`);
    }
  }

  add(peer: Peer, file: OpenFile): bigint {
    const fh = ++this.next;
    this.files.set(fh, { file, peer });
    let mine = this.byPeer.get(peer);
    if (!mine) this.byPeer.set(peer, (mine = new Set()));
    mine.add(fh);
    return fh;
  }

  /**
   * Adds a file under a given fh: a session's open file reopened after a daemon restart keeps its
   * number (session-store.ts). Later fhs are numbered above it.
   */
  addAt(peer: Peer, fh: bigint, file: OpenFile): void {
    if (this.files.has(fh)) throw new Error(`fh ${fh} is in use`);
    if (fh >= this.next) this.next = fh;
    this.files.set(fh, { file, peer });
    let mine = this.byPeer.get(peer);
    if (!mine) this.byPeer.set(peer, (mine = new Set()));
    mine.add(fh);
  }

  get(peer: Peer, fh: bigint): OpenFile | undefined {
    const h = this.files.get(fh);
    return h && h.peer === peer ? h.file : undefined;
  }

  release(peer: Peer, fh: bigint): OpenFile | undefined {
    const h = this.files.get(fh);
    if (!h || h.peer !== peer) return undefined;
    this.files.delete(fh);
    this.byPeer.get(peer)?.delete(fh);
    closeFd(h.file.fd);
    return h.file;
  }

  /** Closes every file `peer` holds (it is gone). Idempotent. */
  releasePeer(peer: Peer): void {
    const mine = this.byPeer.get(peer);
    if (!mine) return;
    this.byPeer.delete(peer);
    for (const fh of mine) {
      const h = this.files.get(fh);
      this.files.delete(fh);
      if (h) closeFd(h.file.fd);
    }
  }

  closeAll(): void {
    for (const h of this.files.values()) closeFd(h.file.fd);
    this.files.clear();
    this.byPeer.clear();
  }
}

/** One peer's open files: the view the ops (ops-io, local-fs) are given for a call of that peer. */
export class OpenFiles {
  constructor(private readonly table: OpenFileTable, readonly peer: Peer) {}

  add(file: OpenFile): bigint {
    return this.table.add(this.peer, file);
  }

  /** The open file `fh` when this peer opened it on file `id` for caller `uid`; else undefined. */
  get(fh: bigint, id: bigint, uid: number): OpenFile | undefined {
    const f = this.table.get(this.peer, fh);
    return f && f.id === id && f.uid === uid ? f : undefined;
  }

  release(fh: bigint): OpenFile | undefined {
    return this.table.release(this.peer, fh);
  }
}
