// Sessions persisted across a daemon restart (issue 9: "locks persisted with their session, so a
// daemon restart within the lease keeps them"; "handles and open files keep working").
//
// One LevelDB (<stateDir>/sessions) holds one record per session the daemon holds, live or away:
// its key, node, boot id, its open files (fh -> what reopens it: the file handle, the open flags,
// the caller it was opened for) and its locks (the LockTable's ranges of its peer).
//
// Decisions:
// - Write-behind: session.ts calls `touch(key)` when something of a session changed (a new session,
//   open, create, release, a lock call, the session ending); within FLUSH_MS the store asks the
//   snapshot function for the session's whole record and writes it (or deletes it when the session
//   is gone), all dirty sessions in one LevelDB batch. Read, write, getattr and every other
//   operation never touch LevelDB; an open or a lock costs a Set insertion. A crash loses at most
//   the last FLUSH_MS of changes; a clean stop (close()) flushes everything.
// - Batches go out one after another, so an older record never overwrites a newer one.
// - A record that does not parse is skipped (and deleted): a damaged state file must not keep the
//   daemon from starting.
import { Level } from 'level';
import type { WireCaller } from './wire.js';

/** An open file of a session: what reopens it under the same fh after a restart. */
export interface StoredOpen { fh: string; handle: string /* base64 */; flags: number; caller: WireCaller }
/** A held lock range of a session (locks.ts HeldLock plus the file's key), 64-bit values as decimal strings. */
export interface StoredLock { file: string; start: string; end: string; type: 'read' | 'write'; owner: string; pid: number }
export interface StoredSession { key: string; node: number; bootId: string /* hex */; opens: StoredOpen[]; locks: StoredLock[] }

/** How long a change may wait before its record is written (the crash window). */
export const FLUSH_MS = 20;

export class SessionStore {
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();
  private snapshot: (key: string) => StoredSession | null = () => null;
  private closed = false;

  private constructor(private readonly db: Level<string, string>) {}

  static async open(dir: string): Promise<SessionStore> {
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    return new SessionStore(db);
  }

  /** Every stored session (at start, before anything is touched). */
  async load(): Promise<StoredSession[]> {
    const out: StoredSession[] = [];
    const bad: string[] = [];
    for await (const [key, value] of this.db.iterator()) {
      const s = parse(value);
      if (s && s.key === key) out.push(s);
      else bad.push(key);
    }
    if (bad.length > 0) await this.db.batch(bad.map((key) => ({ type: 'del' as const, key })));
    return out;
  }

  /** Where records come from: the session's current state, or null when the session is gone. */
  setSnapshot(fn: (key: string) => StoredSession | null): void {
    this.snapshot = fn;
  }

  /** Something of session `key` changed: its record is rewritten within FLUSH_MS. */
  touch(key: string): void {
    if (this.closed) return;
    this.dirty.add(key);
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes every dirty record now; resolves when it is on disk (LevelDB's write). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const keys = [...this.dirty];
    this.dirty.clear();
    if (keys.length === 0) return this.writes;
    const ops = keys.map((key) => {
      const s = this.snapshot(key);
      return s ? { type: 'put' as const, key, value: JSON.stringify(s) } : { type: 'del' as const, key };
    });
    // A failed write is retried with the next change of the session; it must not stop later writes.
    this.writes = this.writes.then(() => this.db.batch(ops)).catch(() => undefined);
    return this.writes;
  }

  /** Flushes and closes (clean stop). Later touches are ignored. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.db.close();
  }
}

function parse(value: string): StoredSession | null {
  try {
    const s = JSON.parse(value) as StoredSession;
    if (typeof s.key !== 'string' || typeof s.node !== 'number' || typeof s.bootId !== 'string' || !Array.isArray(s.opens) || !Array.isArray(s.locks)) return null;
    return s;
  } catch {
    return null;
  }
}
