// POSIX byte-range locks over the wire: held in the LockTable, keyed by the file's node-local id so
// that every handle and open of the same file locks together, and by the peer the call came on
// (locks.ts: a peer's locks are its own, limited, and dropped when it goes).
//
// A lock only on a file the caller could open (issue 8: uid 1000 write-locked root's 0600 file and
// root's own SetLk then got EAGAIN). The kernel's rule: fcntl(F_SETLK) needs an fd open for
// reading to take a read lock and for writing to take a write lock, else EBADF. The request carries
// no fd, so the kernel is asked whether the caller could open one, with its credentials and ACLs
// (faccessat2 AT_EACCESS, as-caller.ts):
// - read lock: R_OK, write lock: W_OK (a directory is never open for writing: a write lock on one
//   is EBADF);
// - refused, but the caller could open the file the other way: EBADF (what fcntl gives on an fd
//   of the wrong mode);
// - refused both ways: EACCES (the caller could not have opened the file at all: open's errno);
// - unlock: no check. The caller's fd is already open on a local kernel, so a later chmod never
//   keeps a process from dropping its own locks;
// - GetLk: the caller needs R_OK or W_OK (EACCES otherwise), as it needs some fd for F_GETLK.
// A read-only export (or filesystem) opens nothing for writing: a write lock there is EBADF when the
// file is readable, as on a read-only mount, where an fd can only be open for reading.
import { constants } from 'node:fs';
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { mayAccessAt } from './as-caller.js';
import { withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { TO_EOF, type LockTable, type LockType } from './locks.js';
import { bigU64, callerOf, type WireCaller } from './wire.js';

export interface LockIn { caller: WireCaller; handle: Buffer; client_id: string; lock_owner: string; start: string; end: string; type: number }

const LOCK_TYPES: readonly LockType[] = ['read', 'write', 'unlock'];

async function lockArgs(lfs: LocalFs, req: LockIn, peer: string) {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const type = LOCK_TYPES[req.type];
  if (type === undefined) throw new Errno('EINVAL', 'unknown lock type');
  const start = bigU64(req.start);
  const end = bigU64(req.end);
  if (end < start) throw new Errno('EINVAL', 'lock range ends before it starts');
  if (typeof req.client_id !== 'string' || req.client_id === '') throw new Errno('EINVAL', 'missing client id');
  const owner = `${req.client_id}:${bigU64(req.lock_owner)}`;
  return { node, key: node.id.toString(), lock: { start, end, type, owner, pid: node.caller.pid, peer } };
}

/** Whether the caller may access the node's file for `mask` (the kernel decides, ACLs included). */
async function may(node: Node, mask: number): Promise<boolean> {
  try {
    // Through the export's io: on a slow export the check runs on its own threads.
    return await withPinnedAsync(node, (fd) => mayAccessAt(node.exp, fd, node.caller, mask));
  } catch {
    return false; // the file could not be pinned (replaced meanwhile): no fd could be had either
  }
}

/** Whether the caller could open the file for writing: never a directory, never on a read-only export. */
async function canWrite(node: Node): Promise<boolean> {
  return !sys.isDir(node.st.mode) && !node.exp.spec.readOnly && await may(node, constants.W_OK);
}

/** Throws unless the caller could hold an fd on the file good for a `type` lock (see the header). */
async function mayLock(node: Node, type: LockType): Promise<void> {
  if (type === 'unlock') return;
  const readable = await may(node, constants.R_OK);
  const writable = await canWrite(node);
  if (type === 'read' ? readable : writable) return;
  if (readable || writable) throw new Errno('EBADF', `the caller cannot open this file for ${type === 'read' ? 'reading' : 'writing'}, as a ${type} lock needs`);
  throw new Errno('EACCES', 'the caller cannot open this file');
}

/** For GetLk: some fd, of either mode. */
async function mayOpen(node: Node): Promise<void> {
  if (await may(node, constants.R_OK)) return;
  if (await canWrite(node)) return;
  throw new Errno('EACCES', 'the caller cannot open this file');
}

// `peer`: the authenticated connection the call came on (Peer.key). '' until file-service.ts passes
// it: every caller is then one peer, as before peers existed.
export async function getLk(locks: LockTable, lfs: LocalFs, req: LockIn, peer = '') {
  const { node, key, lock } = await lockArgs(lfs, req, peer);
  if (lock.type === 'unlock') throw new Errno('EINVAL', 'F_GETLK asks about a read or write lock, not unlock');
  await mayOpen(node);
  const held = locks.get(key, lock);
  if (!held) return { conflict: false, start: '0', end: '0', type: 2, pid: 0 };
  return { conflict: true, start: held.start.toString(), end: held.end.toString(), type: held.type === 'read' ? 0 : 1, pid: held.pid };
}

export async function setLk(locks: LockTable, lfs: LocalFs, req: LockIn, peer = ''): Promise<Record<string, never>> {
  const { node, key, lock } = await lockArgs(lfs, req, peer);
  await mayLock(node, lock.type);
  locks.set(key, lock);
  return {};
}

export async function setLkW(locks: LockTable, lfs: LocalFs, req: LockIn, signal: AbortSignal, peer = ''): Promise<Record<string, never>> {
  const { node, key, lock } = await lockArgs(lfs, req, peer);
  await mayLock(node, lock.type);
  await locks.setWait(key, lock, signal);
  return {};
}

/** Releases every lock `owner` holds on file `key` (a close drops the process's locks on the file). */
export function unlockAll(locks: LockTable, key: string, owner: string, pid: number, peer = ''): void {
  locks.set(key, { start: 0n, end: TO_EOF, type: 'unlock', owner, pid, peer });
}
