// SETATTR on a backing file, and the suid/sgid clearing that HANDLE_KILLPRIV_V2 leaves to us.
import type { BigIntStats } from 'node:fs';
import { constants as C } from 'node:fs';
import { SetattrValid, type RequestOf } from '../kernel/index.js';
import { toAttr, toUtime } from './attrs.js';
import * as io from './fd-io.js';
import { sys } from './fd-io.js';

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

/** Apply the requested changes (through the open fd when the kernel named one); returns the new stat. */
export function applySetattr(path: string, fd: number | undefined, r: RequestOf<'SETATTR'>, caller: Caller): BigIntStats {
  const v = r.valid;
  if (v & SetattrValid.MODE) {
    if (fd !== undefined) io.fchmod(fd, r.mode & 0o7777);
    else sys.chmod(path, r.mode & 0o7777);
  }
  if (v & (SetattrValid.UID | SetattrValid.GID)) {
    sys.lchown(path, v & SetattrValid.UID ? r.uid : -1, v & SetattrValid.GID ? r.gid : -1);
  }
  if (v & SetattrValid.SIZE) {
    if (fd !== undefined) io.ftruncate(fd, r.size);
    else sys.truncate(path, r.size);
  }
  if (v & SetattrValid.KILL_SUIDGID && !(v & SetattrValid.MODE)) killSuidgid(caller, path, fd);
  if (v & (SetattrValid.ATIME | SetattrValid.MTIME)) {
    // utimes sets both; the one not asked for keeps its current value.
    const now = Date.now() / 1000;
    const keep = toAttr(sys.lstat(path));
    const atime = v & SetattrValid.ATIME ? (v & SetattrValid.ATIME_NOW ? now : toUtime(r.atime)) : toUtime(keep.atime);
    const mtime = v & SetattrValid.MTIME ? (v & SetattrValid.MTIME_NOW ? now : toUtime(r.mtime)) : toUtime(keep.mtime);
    sys.lutimes(path, atime, mtime);
  }
  return fd !== undefined ? io.fstat(fd) : sys.lstat(path);
}

/** Who asked (RequestContext fits). */
export interface Caller { gid: number; groups: number[] }

/**
 * Clear the set-id bits the way the kernel would for an unprivileged writer: suid always; sgid
 * when group-executable or when the caller is not in the file's group (linux
 * setattr_should_drop_sgid). The kernel asks us to; as root (CAP_FSETID) our own writes would not
 * clear them in the backing fs. Returns whether the mode changed.
 */
export function killSuidgid(caller: Caller, path: string, fd?: number): boolean {
  const st = fd !== undefined ? io.fstat(fd) : sys.lstat(path);
  const mode = Number(st.mode);
  const fileGid = Number(st.gid);
  let cleared = mode & ~S_ISUID;
  if (mode & C.S_IXGRP || (caller.gid !== fileGid && !caller.groups.includes(fileGid))) cleared &= ~S_ISGID;
  if (cleared === mode) return false;
  if (fd !== undefined) io.fchmod(fd, cleared & 0o7777);
  else sys.chmod(path, cleared & 0o7777);
  return true;
}
