// Callbacks: the cache-consistency promise of sessions (proto/session.proto, "Callbacks").
// INTERFACE FIRST: the implementation is being written; session.ts and the direct-change watcher
// code against this API.
//
// A callback is (session, inode, what): the session may cache the inode's attributes (ATTR), data
// (DATA) or, for a directory, its names and listing (NAMES). Inodes are cluster inode numbers
// (Attr.ino), as bigint.

/** What changed, as sent in an Invalidate. */
export type Change =
  | { kind: 'attr'; ino: bigint }
  /** length 0n: to the end of the file. */
  | { kind: 'data'; ino: bigint; offset: bigint; length: bigint }
  /** name empty: every name of the directory and its listing. */
  | { kind: 'name'; dir: bigint; name: Buffer };

/** How the callback table reaches one session's main stream (session.ts provides it). */
export interface CallbackSink {
  /** Writes one Invalidate frame {seq, change} on the session's main stream. Must not throw. */
  send(seq: number, change: Change): void;
  /** The session did not acknowledge in time: end it as an expired lease does (release everything). */
  fence(why: string): void;
}

/** The Invalidate message of ServerFrame.invalidate for `change` (64-bit values as numbers or decimal strings). */
export function invalidateMessage(seq: number, change: Change): object {
  switch (change.kind) {
    case 'attr': return { seq, attr: { ino: u64(change.ino) } };
    case 'data': return { seq, data: { ino: u64(change.ino), offset: u64(change.offset), length: u64(change.length) } };
    case 'name': return { seq, name: { dir: u64(change.dir), name: change.name } };
  }
}
const u64 = (n: bigint): number | string => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString());

export const ATTR = 1;
export const DATA = 2;
export const NAMES = 4;

export class Callbacks {
  constructor(readonly nodeId: number, readonly perSession: number) {}
  /** A session's main stream is up: it may hold callbacks from now on. */
  attach(_session: string, _sink: CallbackSink, _ackTimeoutMs: number): void {}
  /** The session's main stream ended (or it was fenced): its callbacks are dropped, nobody waits for its acks. */
  detach(_session: string): void {}
  /** An InvalidateAck arrived on the session's stream. */
  ack(_session: string, _seq: number): void {}
  /** Whether any session holds a callback on `ino` (the direct-change watcher skips the rest). */
  watched(_ino: bigint): boolean {
    return false;
  }
  /** The seq of the last Invalidate sent to `session` (ServerFrame.after); 0 when none. */
  sentUpTo(_session: string): number {
    return 0;
  }
  /**
   * Sends each change to every session but `except` that holds a callback on it, and resolves when
   * all of them acknowledged (or were fenced for not doing so in time). Never rejects.
   */
  async invalidate(_changes: Change[], _except?: string): Promise<void> {}
}
