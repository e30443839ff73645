// Permission rules as Linux applies them, computed from mode bits for the caller the daemon acts for
// (the daemon itself runs as root, so the kernel would allow everything).
import { Errno } from '../proto/errno.js';

export interface Caller { uid: number; gid: number; groups: number[]; pid: number }
export interface Owned { mode: number; uid: number; gid: number }

export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
export const NOBODY = 65534;

export const isRoot = (c: Caller): boolean => c.uid === 0;
export const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;

export function inGroup(c: Caller, gid: number): boolean {
  return c.gid === gid || c.groups.includes(gid);
}

/** Root squash: uid 0 acts as nobody. */
export function squash(c: Caller): Caller {
  return c.uid === 0 ? { uid: NOBODY, gid: NOBODY, groups: [], pid: c.pid } : c;
}

/** Whether the caller may access `st` for `mask` (R_OK|W_OK|X_OK). */
export function mayAccess(st: Owned, c: Caller, mask: number): boolean {
  if (isRoot(c)) {
    // Root bypasses read/write; execute needs at least one x bit (directories are always searchable).
    return (mask & X_OK) === 0 || isDir(st.mode) || (st.mode & 0o111) !== 0;
  }
  let bits: number;
  if (c.uid === st.uid) bits = (st.mode >> 6) & 7;
  else if (inGroup(c, st.gid)) bits = (st.mode >> 3) & 7;
  else bits = st.mode & 7;
  return (bits & mask) === mask;
}

export function checkAccess(st: Owned, c: Caller, mask: number, what = 'file'): void {
  if (!mayAccess(st, c, mask)) throw new Errno('EACCES', `permission denied on ${what}`);
}

/** Sticky directory: only the file's owner, the directory's owner or root may remove or rename it. */
export function checkSticky(dir: Owned, child: Owned, c: Caller): void {
  if ((dir.mode & S_ISVTX) !== 0 && !isRoot(c) && c.uid !== child.uid && c.uid !== dir.uid) {
    throw new Errno('EPERM', 'sticky directory: not the owner');
  }
}

export function isOwnerOrRoot(st: Owned, c: Caller): boolean {
  return isRoot(c) || c.uid === st.uid;
}

/** The group a new file gets: the parent's when the parent is setgid, else the caller's. */
export function newFileGroup(parent: Owned, c: Caller): number {
  return (parent.mode & S_ISGID) !== 0 ? parent.gid : c.gid;
}

/** Mode bits a chmod by `c` really sets: setgid is dropped when a non-root caller is not in the file's group. */
export function chmodBits(st: Owned, c: Caller, mode: number): number {
  let bits = mode & 0o7777;
  if (!isRoot(c) && !inGroup(c, st.gid)) bits &= ~S_ISGID;
  return bits;
}

/** Mode after a write/truncate by `c`: non-root writers clear setuid, and setgid when group-exec is set. */
export function modeAfterWrite(st: Owned, c: Caller): number | null {
  if (isRoot(c)) return null;
  let bits = st.mode & 0o7777;
  const before = bits;
  bits &= ~S_ISUID;
  if ((bits & 0o010) !== 0) bits &= ~S_ISGID;
  return bits === before ? null : bits;
}
