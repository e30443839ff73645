// SETATTR on a backing inode, and the suid/sgid clearing that HANDLE_KILLPRIV_V2 leaves to us.
// Everything goes through the node's O_PATH descriptor (or the open file's, when the kernel names
// one), so it works on any hard link and on a file whose last name is gone.
import { constants as C, ftruncateSync, truncateSync } from 'node:fs';
import { KernelErrno, SetattrValid, type RequestOf } from '../kernel/index.js';
import * as sys from '../../sys/index.js';
import { inChownCall } from '../../sys/process.js';
import type { Node } from './nodes.js';

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const ON_FD = sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW;
/** The fields a SETATTR changes (the others say how: FH, LOCKOWNER, KILL_SUIDGID, *_NOW, CTIME). */
const CHANGES = SetattrValid.MODE | SetattrValid.UID | SetattrValid.GID | SetattrValid.SIZE | SetattrValid.ATIME | SetattrValid.MTIME;

/** Apply the requested changes; `fd` is the open file the kernel named, if any. Returns the new stat. */
export function applySetattr(node: Node, fd: number | undefined, r: RequestOf<'SETATTR'>, caller: Caller): sys.Stat {
  const v = r.valid;
  if (v & SetattrValid.MODE) chmod(node, fd, r.mode & 0o7777);
  // With HANDLE_KILLPRIV_V2 a chown that changes nothing, chown(f, -1, -1), still comes: as a
  // SETATTR with none of these fields. It must clear set-id bits as a chown does, so it is one.
  const changesNothing = (v & CHANGES) === 0;
  if (v & (SetattrValid.UID | SetattrValid.GID) || changesNothing) {
    const before = caller.uid !== 0 ? sys.fstat(node.fd) : undefined;
    if (changesNothing && before && refusedKill(caller, before)) throw new KernelErrno('EPERM');
    sys.fchownat(node.fd, '', v & SetattrValid.UID ? r.uid : -1, v & SetattrValid.GID ? r.gid : -1, ON_FD);
    // We chown as root, who may keep a setgid bit; a caller outside the file's group may not
    // (setattr_should_drop_sgid, judged on the group the file had).
    if (before && !sys.isDir(before.mode) && before.mode & S_ISGID && !inGroup(caller, before.gid)) chmod(node, fd, sys.fstat(node.fd).mode & 0o7777 & ~S_ISGID);
  }
  if (v & SetattrValid.SIZE) {
    if (fd !== undefined) ftruncateSync(fd, r.size);
    else truncateSync(sys.fdPath(node.fd), r.size);
  }
  // A truncate by anyone but root drops set-id bits (see PassthroughFs.dropSetid); a chown (done
  // as root) drops them in the backing fs itself, with the rules chown has.
  if (v & SetattrValid.SIZE && !(v & SetattrValid.MODE) && caller.uid !== 0) killSuidgid(caller, node, fd);
  if (v & (SetattrValid.ATIME | SetattrValid.MTIME)) {
    const time = (set: number, now: number, t: sys.Timespec): sys.TimeArg => (!(v & set) ? 'omit' : v & now ? 'now' : t);
    sys.utimensat(node.fd, '', time(SetattrValid.ATIME, SetattrValid.ATIME_NOW, r.atime), time(SetattrValid.MTIME, SetattrValid.MTIME_NOW, r.mtime), ON_FD);
  }
  return sys.fstat(fd ?? node.fd);
}

function chmod(node: Node, fd: number | undefined, mode: number): void {
  if (fd !== undefined) sys.fchmod(fd, mode);
  else sys.fchmodat(node.fd, '', mode, ON_FD);
}

/** Who asked (RequestContext fits); pid is the caller's thread. */
export interface Caller { uid: number; gid: number; groups: number[]; pid: number }

/**
 * Clear the set-id bits the way the kernel would for an unprivileged writer: suid always; sgid
 * when group-executable or when the caller is not in the file's group (linux
 * setattr_should_drop_sgid). The kernel asks us to; as root (CAP_FSETID) our own writes would not
 * clear them in the backing fs. Returns whether the mode changed.
 */
export function killSuidgid(caller: Caller, node: Node, fd?: number): boolean {
  const st = sys.fstat(fd ?? node.fd);
  let cleared = st.mode & ~S_ISUID;
  if (st.mode & C.S_IXGRP || !inGroup(caller, st.gid)) cleared &= ~S_ISGID;
  if (cleared === st.mode) return false;
  chmod(node, fd, cleared & 0o7777);
  return true;
}

/**
 * Whether an empty SETATTR from a caller other than root is a chown(f, -1, -1) the bare filesystem
 * refuses. A chown clears set-id bits (setuid, setgid with group execute), a mode change that only
 * the owner may make: the VFS refuses it to anyone else with EPERM. But under HANDLE_KILLPRIV_V2
 * the FUSE kernel drops that mode change and sends what is left, an empty SETATTR, exactly as it
 * does for the set-id clearing before a write by a non-owner (ATTR_FORCE: always allowed), so only
 * the caller's own system call tells the two apart.
 */
function refusedKill(caller: Caller, st: sys.Stat): boolean {
  const kills = (st.mode & S_ISUID) !== 0 || (st.mode & (S_ISGID | C.S_IXGRP)) === (S_ISGID | C.S_IXGRP);
  return kills && st.uid !== caller.uid && !sys.isDir(st.mode) && inChownCall(caller.pid) === true;
}

const inGroup = (caller: Caller, gid: number): boolean => caller.gid === gid || caller.groups.includes(gid);
