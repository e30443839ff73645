// Namespace operations: create, mkdir, mknod, symlink, link, unlink, rmdir, rename.
// New files are created by root (the daemon) and then given to the caller: owner = caller, group =
// the parent's when it is setgid (directories also inherit the setgid bit), mode = mode & ~umask.
// Every call is a directory fd plus one name (the *at syscalls of sys/), never a path string.
import { closeSync } from 'node:fs';
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { ON_FD, withPinned, type LocalFs, type Node } from './local-fs.js';
import { checkName } from './names.js';
import {
  checkAccess, checkSticky, inGroup, isRoot, newFileGroup, S_ISGID, W_OK, X_OK, type Caller,
} from './permissions.js';
import { entryOf } from './ops-meta.js';
import { bigU64, callerOf, type Entry, type WireCaller } from './wire.js';

const NOFOLLOW = sys.AT_SYMLINK_NOFOLLOW;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;
const S_IFREG = 0o100000;
const PATH_MAX = 4096;

export type DirNode = Node & { fd: number };

/** Resolves a directory the caller may create in / remove from (write + search, export writable). */
export async function writableDir(lfs: LocalFs, handle: Buffer, wire: WireCaller): Promise<DirNode> {
  const dir = await lfs.resolveDir(handle, callerOf(wire));
  if (dir.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  checkAccess(dir.st, dir.caller, W_OK | X_OK, 'directory');
  return dir;
}

/** Gives a just-created file `name` in `dir` to the caller: owner, group (setgid inheritance) and exact mode. */
export function giveToCaller(dir: DirNode, name: Buffer, c: Caller, bits: number, isDirectory: boolean): sys.Stat {
  const fd = sys.openat(dir.fd, name, sys.O_PATH | sys.O_NOFOLLOW);
  try {
    const st = sys.fstat(fd);
    const gid = newFileGroup(dir.st, c);
    // chown before chmod: chown clears the setuid and setgid bits.
    sys.fchownat(fd, '', c.uid, gid, ON_FD);
    if (!sys.isLnk(st.mode)) {
      let mode = bits & 0o7777;
      if (isDirectory && (dir.st.mode & S_ISGID) !== 0) mode |= S_ISGID;
      if (!isDirectory && (mode & S_ISGID) !== 0 && !isRoot(c) && !inGroup(c, gid)) mode &= ~S_ISGID;
      sys.fchmodat(fd, '', mode, ON_FD);
    }
    return sys.fstat(fd);
  } finally {
    closeSync(fd);
  }
}

async function entry(lfs: LocalFs, dir: DirNode, name: Buffer, st: sys.Stat): Promise<Entry> {
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, id, handle, st);
}

export async function mkdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer; mode: number; umask: number }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  sys.mkdirat(dir.fd, name, 0o700);
  const st = giveToCaller(dir, name, dir.caller, req.mode & ~req.umask, true);
  return entry(lfs, dir, name, st);
}

/** Mknod of a regular file, fifo, socket or (root only) character or block device, by mknodat(2). */
export async function mknod(
  lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer; mode: number; umask: number; rdev: string },
): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  let type = req.mode & S_IFMT;
  let dev = 0;
  if (type === 0) type = S_IFREG;
  if (type === S_IFCHR || type === S_IFBLK) {
    if (!isRoot(dir.caller)) throw new Errno('EPERM', 'only root makes device nodes');
    // The wire carries a Linux dev_t (glibc's makedev encoding), which is what mknodat takes.
    const rdev = bigU64(req.rdev);
    if (rdev > BigInt(Number.MAX_SAFE_INTEGER)) throw new Errno('EINVAL', 'device number out of range');
    dev = Number(rdev);
  } else if (type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFREG) {
    throw new Errno('EINVAL', 'unknown file type');
  }
  sys.mknodat(dir.fd, name, type | 0o600, dev);
  const st = giveToCaller(dir, name, dir.caller, req.mode & ~req.umask, false);
  return entry(lfs, dir, name, st);
}

export async function symlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer; target: Buffer }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const target = req.target;
  if (!Buffer.isBuffer(target) || target.length === 0 || target.includes(0)) throw new Errno('EINVAL', 'invalid symlink target');
  if (target.length >= PATH_MAX) throw new Errno('ENAMETOOLONG', 'symlink target too long');
  // The target is stored as bytes and never followed by the server.
  sys.symlinkat(target, dir.fd, name);
  const st = giveToCaller(dir, name, dir.caller, 0o777, false);
  return entry(lfs, dir, name, st);
}

export async function link(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; new_dir: Buffer; new_name: Buffer }): Promise<Entry> {
  const src = await lfs.resolve(req.handle, callerOf(req.caller));
  const dir = await writableDir(lfs, req.new_dir, req.caller);
  if (src.exp.id !== dir.exp.id) throw new Errno('EXDEV', 'link across exports');
  if (sys.isDir(src.st.mode)) throw new Errno('EPERM', 'hard link to a directory');
  const name = checkName(req.new_name);
  // Links exactly the verified file (the pinned fd), a symlink itself included.
  withPinned(src, (fd) => sys.linkat(fd, '', dir.fd, name, sys.AT_EMPTY_PATH));
  const st = sys.statat(dir.fd, name, NOFOLLOW);
  // The newest name is tried first; the old ones stay known, so the handle survives the removal of either.
  const { handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, src.id, handle, st);
}

export async function unlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const st = sys.statat(dir.fd, name, NOFOLLOW);
  if (sys.isDir(st.mode)) throw new Errno('EISDIR', 'is a directory');
  checkSticky(dir.st, st, dir.caller);
  sys.unlinkat(dir.fd, name, 0);
  return {};
}

export async function rmdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const st = sys.statat(dir.fd, name, NOFOLLOW);
  if (!sys.isDir(st.mode)) throw new Errno('ENOTDIR', 'not a directory');
  checkSticky(dir.st, st, dir.caller);
  sys.unlinkat(dir.fd, name, sys.AT_REMOVEDIR);
  lfs.forgetDir(await lfs.store.localId(st.dev, st.ino));
  return {};
}

/**
 * Rename by renameat2(2) on the two directory fds: RENAME_NOREPLACE fails with EEXIST atomically
 * (directories too), RENAME_EXCHANGE swaps the two names atomically. Permission checks as Linux
 * makes them: write and search on both directories, the sticky bit on every name that goes away
 * (both for an exchange), and write permission on a directory that moves to a new parent (its
 * ".." is rewritten).
 */
export async function rename(
  lfs: LocalFs,
  req: { caller: WireCaller; old_dir: Buffer; old_name: Buffer; new_dir: Buffer; new_name: Buffer; flags: number },
): Promise<Record<string, never>> {
  const from = await writableDir(lfs, req.old_dir, req.caller);
  const to = await writableDir(lfs, req.new_dir, req.caller);
  if (from.exp.id !== to.exp.id) throw new Errno('EXDEV', 'rename across exports');
  const flags = req.flags >>> 0;
  const exchange = (flags & sys.RENAME_EXCHANGE) !== 0;
  const noReplace = (flags & sys.RENAME_NOREPLACE) !== 0;
  if (flags & ~(sys.RENAME_NOREPLACE | sys.RENAME_EXCHANGE)) throw new Errno('EINVAL', 'unknown rename flags');
  if (exchange && noReplace) throw new Errno('EINVAL', 'RENAME_EXCHANGE with RENAME_NOREPLACE');
  const oldName = checkName(req.old_name);
  const newName = checkName(req.new_name);
  const c = from.caller;
  const src = sys.statat(from.fd, oldName, NOFOLLOW);
  const target = sys.statatIfExists(to.fd, newName, NOFOLLOW);
  if (exchange && !target) throw new Errno('ENOENT', 'nothing to exchange with');
  if (noReplace && target) throw new Errno('EEXIST', 'target exists');
  checkSticky(from.st, src, c);
  if (target) checkSticky(to.st, target, c);
  if (from.id !== to.id) {
    if (sys.isDir(src.mode)) checkAccess(src, c, W_OK, 'directory');
    if (exchange && sys.isDir(target!.mode)) checkAccess(target!, c, W_OK, 'directory');
  }
  sys.renameat2(from.fd, oldName, to.fd, newName, flags);
  const sameInode = target !== undefined && target.dev === src.dev && target.ino === src.ino;
  // Two names of one file: renameat2 leaves both in place (an exchange too), and so do the records.
  if (sameInode) return {};
  const srcId = await lfs.store.localId(src.dev, src.ino);
  const oldAt = { parent: from.id.toString(), name: oldName };
  const newAt = { parent: to.id.toString(), name: newName };
  await lfs.moved(srcId, oldAt, to.id, newName, src);
  if (exchange) {
    // Each file now has the other's old name.
    await lfs.moved(await lfs.store.localId(target!.dev, target!.ino), newAt, from.id, oldName, target!);
  } else if (target && sys.isDir(target.mode)) {
    lfs.forgetDir(await lfs.store.localId(target.dev, target.ino));
  }
  return {};
}
