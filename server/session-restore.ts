// A daemon start takes back the sessions persisted by the last run (session-store.ts): each one's
// locks are reinstated for its peer at once (so nobody else gets them during its lease) and its
// open files are reopened under their old fh numbers, as the caller they were opened for. The
// session is then "away" with a fresh lease (session.ts): a resume within it finds its fhs and
// locks; otherwise the lease expires and everything is released as for any away session.
//
// Decisions:
// - Files are reopened here, at start, not at resume: then a resumed session after a restart is
//   exactly an away session (one path), and a file that cannot be reopened is known at once. The
//   cost is the fds of sessions that never come back, until their lease expires.
// - A reopen never truncates (O_TRUNC is dropped: it took effect at the first open); the open file
//   keeps its original flags (append, access mode).
// - A file that cannot be reopened (removed, its permissions changed, its export gone) loses its fh
//   (later uses: EBADF, as for any fh the server does not hold); a lock that cannot be reinstated
//   (a conflicting record, over the peer's limit) is dropped. The session itself is kept.
import { constants } from 'node:fs';
import type { LocalFs } from './local-fs.js';
import type { LockTable } from './locks.js';
import type { OpenFileTable } from './open-files.js';
import { openNodeAsync } from './ops-io.js';
import type { Peers } from './peers.js';
import type { StoredSession } from './session-store.js';
import { callerOf } from './wire.js';

export interface RestoreContext { lfs: LocalFs; peers: Peers; table: OpenFileTable; locks: LockTable }

/** Reinstates every stored session; returns the records as they now stand (opens that failed left out). */
export async function restoreSessions(stored: readonly StoredSession[], ctx: RestoreContext): Promise<StoredSession[]> {
  const out: StoredSession[] = [];
  for (const s of stored) {
    const peer = ctx.peers.get(s.key);
    for (const l of s.locks) {
      try {
        ctx.locks.set(l.file, { start: BigInt(l.start), end: BigInt(l.end), type: l.type, owner: l.owner, pid: l.pid, peer: s.key });
      } catch {
        // See the header: dropped.
      }
    }
    const opens = [];
    for (const o of s.opens) {
      try {
        const node = await ctx.lfs.resolve(Buffer.from(o.handle, 'base64'), callerOf(o.caller));
        const file = await openNodeAsync(node, o.flags & ~constants.O_TRUNC);
        ctx.table.addAt(peer, BigInt(o.fh), { ...file, flags: o.flags });
        opens.push(o);
      } catch {
        // See the header: this fh is gone.
      }
    }
    out.push({ ...s, opens });
  }
  return out;
}
