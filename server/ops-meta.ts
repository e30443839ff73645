// Metadata operations: root, lookup, getattr, setattr, access, readdir, readlink, statfs.
import { ftruncateSync, statfsSync, closeSync } from 'node:fs';
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { ON_FD, reopen, withPinned, type LocalFs, type Node } from './local-fs.js';
import { checkName } from './names.js';
import {
  checkAccess, chmodBits, inGroup, isOwnerOrRoot, isRoot, modeAfterWrite, mayAccess, W_OK, X_OK,
} from './permissions.js';
import { callerOf, fromWireTime, toAttr, u64, type Attr, type Entry, type Timespec, type U64, type WireCaller } from './wire.js';
import { openForWriting, type OpenFiles } from './open-files.js';

const O_WRONLY = 1;

export interface SetAttrIn {
  caller: WireCaller; handle: Buffer; valid_mode: boolean; mode: number; valid_uid: boolean; uid: number;
  valid_gid: boolean; gid: number; valid_size: boolean; size: string; valid_atime: boolean; atime_now: boolean;
  atime: Timespec | null; valid_mtime: boolean; mtime_now: boolean; mtime: Timespec | null; fh: string;
}

/** A request naming a file by handle and, optionally, by an open file of the caller. */
export interface FileIn { caller: WireCaller; handle: Buffer; fh?: U64 }

export function entryOf(lfs: LocalFs, id: bigint, handle: Buffer, st: sys.Stat): Entry {
  return { handle, attr: toAttr(st, lfs.clusterIno(id)) };
}

export function attrOf(lfs: LocalFs, node: Node): Attr {
  return toAttr(node.st, lfs.clusterIno(node.id));
}

export function checkWritable(node: Node): void {
  if (node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
}

export async function root(lfs: LocalFs, req: { caller: WireCaller; export_path: string }): Promise<Entry> {
  callerOf(req.caller);
  const exp = lfs.byPath.get(String(req.export_path));
  if (!exp) throw new Errno('ENOENT', `no export ${JSON.stringify(req.export_path)}`);
  return entryOf(lfs, exp.rootId, lfs.store.mint(exp.id, exp.rootId), sys.fstat(exp.rootFd));
}

export async function lookup(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Entry> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  const name = checkName(req.name);
  checkAccess(dir.st, dir.caller, X_OK, 'directory');
  const st = sys.statat(dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, id, handle, st);
}

export async function getAttr(lfs: LocalFs, files: OpenFiles, req: FileIn): Promise<{ attr: Attr }> {
  return { attr: attrOf(lfs, await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh)) };
}

/**
 * SetAttr: owner, mode, size and times, each checked as Linux checks it for the caller, applied to
 * the caller's open file when the request names one (fh), else to the verified file of the handle.
 * Times are exact to the nanosecond (utimensat); "now" is the server's clock.
 */
export async function setAttr(lfs: LocalFs, files: OpenFiles, req: SetAttrIn): Promise<{ attr: Attr }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const c = node.caller;
  checkWritable(node);
  const st = node.st;
  const isLink = sys.isLnk(st.mode);
  const st2 = withPinned(node, (fd, io) => {
    if (req.valid_uid || req.valid_gid) {
      const uid = req.valid_uid ? req.uid >>> 0 : st.uid;
      const gid = req.valid_gid ? req.gid >>> 0 : st.gid;
      if (uid !== st.uid && !isRoot(c)) throw new Errno('EPERM', 'only root changes the owner');
      if (gid !== st.gid && !isRoot(c) && (c.uid !== st.uid || !inGroup(c, gid))) throw new Errno('EPERM', 'not allowed to change the group');
      // On the fd's own file, a symlink itself included.
      if (uid !== st.uid || gid !== st.gid) sys.fchownat(fd, '', uid, gid, ON_FD);
      else if (!isOwnerOrRoot(st, c)) throw new Errno('EPERM', 'not the owner');
    }
    if (req.valid_mode) {
      if (!isOwnerOrRoot(st, c)) throw new Errno('EPERM', 'only the owner changes the mode');
      if (isLink) throw new Errno('EOPNOTSUPP', 'symlinks have no mode');
      sys.fchmodat(fd, '', chmodBits(sys.fstat(fd), c, req.mode), ON_FD);
    }
    if (req.valid_size) {
      if (sys.isDir(st.mode)) throw new Errno('EISDIR', 'is a directory');
      if (!sys.isReg(st.mode)) throw new Errno('EINVAL', 'not a regular file');
      const size = u64(req.size, 'size');
      if (io && openForWriting(node.open!)) {
        ftruncateSync(fd, size);
      } else {
        checkAccess(st, c, W_OK);
        const w = reopen(fd, O_WRONLY);
        try {
          ftruncateSync(w, size);
        } finally {
          closeSync(w);
        }
      }
      const cleared = modeAfterWrite(sys.fstat(fd), c);
      if (cleared !== null) sys.fchmodat(fd, '', cleared, ON_FD);
    }
    if (req.valid_atime || req.valid_mtime) {
      // Linux lets a non-owner with write permission set both times to now (touch), nothing else.
      const touch = req.valid_atime && req.atime_now && req.valid_mtime && req.mtime_now;
      if (!isOwnerOrRoot(st, c)) {
        if (!touch) throw new Errno('EPERM', 'only the owner sets explicit times');
        checkAccess(st, c, W_OK);
      }
      const time = (valid: boolean, now: boolean, t: Timespec | null): sys.TimeArg => (!valid ? 'omit' : now ? 'now' : fromWireTime(t));
      sys.utimensat(fd, '', time(req.valid_atime, req.atime_now, req.atime), time(req.valid_mtime, req.mtime_now, req.mtime), ON_FD);
    }
    return sys.fstat(fd);
  });
  return { attr: toAttr(st2, lfs.clusterIno(node.id)) };
}

export async function access(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; mask: number }): Promise<Record<string, never>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const mask = req.mask & 7;
  if ((mask & W_OK) && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  if (!mayAccess(node.st, node.caller, mask)) throw new Errno('EACCES', 'access denied');
  return {};
}

export async function readlink(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<{ target: Buffer }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  if (!sys.isLnk(node.st.mode)) throw new Errno('EINVAL', 'not a symlink');
  return { target: withPinned(node, (fd) => sys.readlinkat(fd, '')) };
}

export async function statFs(lfs: LocalFs, files: OpenFiles, req: FileIn): Promise<Record<string, string | number>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  // statfs follows the /proc link: for a symlink, ask its directory (the same filesystem).
  const s = sys.isLnk(node.st.mode)
    ? statfsSync(sys.fdPath(node.dirFd))
    : withPinned(node, (fd) => statfsSync(sys.fdPath(fd)));
  return {
    blocks: String(s.blocks), bfree: String(s.bfree), bavail: String(s.bavail), files: String(s.files), ffree: String(s.ffree),
    bsize: s.bsize, namelen: 255, frsize: s.bsize,
  };
}
