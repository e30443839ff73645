// POSIX byte-range locks over the wire: held in the LockTable, keyed by the file's node-local id so
// that every handle and open of the same file locks together.
import { Errno } from '../proto/errno.js';
import type { LocalFs } from './local-fs.js';
import type { LockTable, LockType } from './locks.js';
import { bigU64, callerOf, type WireCaller } from './wire.js';

export interface LockIn { caller: WireCaller; handle: Buffer; client_id: string; lock_owner: string; start: string; end: string; type: number }

const LOCK_TYPES: readonly LockType[] = ['read', 'write', 'unlock'];

async function lockArgs(lfs: LocalFs, req: LockIn) {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const type = LOCK_TYPES[req.type];
  if (type === undefined) throw new Errno('EINVAL', 'unknown lock type');
  const start = bigU64(req.start);
  const end = bigU64(req.end);
  if (end < start) throw new Errno('EINVAL', 'lock range ends before it starts');
  if (typeof req.client_id !== 'string' || req.client_id === '') throw new Errno('EINVAL', 'missing client id');
  const owner = `${req.client_id}:${bigU64(req.lock_owner)}`;
  return { key: node.id.toString(), lock: { start, end, type, owner, pid: node.caller.pid } };
}

export async function getLk(locks: LockTable, lfs: LocalFs, req: LockIn) {
  const { key, lock } = await lockArgs(lfs, req);
  const held = locks.get(key, lock);
  if (!held) return { conflict: false, start: '0', end: '0', type: 2, pid: 0 };
  return { conflict: true, start: held.start.toString(), end: held.end.toString(), type: held.type === 'read' ? 0 : 1, pid: held.pid };
}

export async function setLk(locks: LockTable, lfs: LocalFs, req: LockIn): Promise<Record<string, never>> {
  const { key, lock } = await lockArgs(lfs, req);
  locks.set(key, lock);
  return {};
}

export async function setLkW(locks: LockTable, lfs: LocalFs, req: LockIn, signal: AbortSignal): Promise<Record<string, never>> {
  const { key, lock } = await lockArgs(lfs, req);
  await locks.setWait(key, lock, signal);
  return {};
}

/** Releases every lock `owner` holds on file `key` (a close drops the process's locks on the file). */
export function unlockAll(locks: LockTable, key: string, owner: string, pid: number): void {
  locks.set(key, { start: 0n, end: 2n ** 63n - 1n, type: 'unlock', owner, pid });
}
