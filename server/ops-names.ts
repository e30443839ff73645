// Namespace operations: create, mkdir, mknod, symlink, link, unlink, rmdir, rename.
// Each syscall runs as the caller (as-caller.ts), new files with the request's umask: the kernel
// checks write + search on the directories, the sticky bit and protected_hardlinks, and gives a new
// file its owner, group (setgid directories), mode and default ACL itself. Nothing is chowned or
// chmodded by name afterwards, so no name swapped in meanwhile can be given away.
// Every call is a directory fd plus one name (the *at syscalls of sys/), never a path string.
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { checkName } from './names.js';
import { isRoot } from './permissions.js';
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

/**
 * Resolves a directory for a namespace change on a writable export. The caller's write and
 * search permission on it is checked by the kernel when the change itself runs as the caller.
 */
export async function writableDir(lfs: LocalFs, handle: Buffer, wire: WireCaller): Promise<DirNode> {
  const dir = await lfs.resolveDir(handle, callerOf(wire));
  if (dir.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  return dir;
}

/** The entry of an inode just made in `dir` (mkdir, mknod, symlink: fresh, see handles.ts Sighting). */
async function entry(lfs: LocalFs, dir: DirNode, name: Buffer, st: sys.Stat): Promise<Entry> {
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st, true);
  return entryOf(lfs, id, handle, st);
}

export async function mkdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer; mode: number; umask: number }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  await dir.exp.io.create(dir.caller, req.umask, 'mkdirat', dir.fd, name, req.mode & 0o7777);
  const st = await dir.exp.io.call(dir.caller, 'statat', dir.fd, name, NOFOLLOW);
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
    // mfsd's own rule: setfsuid leaves a root daemon CAP_MKNOD, so the kernel would allow it.
    if (!isRoot(dir.caller)) throw new Errno('EPERM', 'only root makes device nodes');
    // The wire carries a Linux dev_t (glibc's makedev encoding), which is what mknodat takes.
    const rdev = bigU64(req.rdev);
    if (rdev > BigInt(Number.MAX_SAFE_INTEGER)) throw new Errno('EINVAL', 'device number out of range');
    dev = Number(rdev);
  } else if (type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFREG) {
    throw new Errno('EINVAL', 'unknown file type');
  }
  await dir.exp.io.create(dir.caller, req.umask, 'mknodat', dir.fd, name, type | (req.mode & 0o7777), dev);
  const st = await dir.exp.io.call(dir.caller, 'statat', dir.fd, name, NOFOLLOW);
  return entry(lfs, dir, name, st);
}

export async function symlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer; target: Buffer }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const target = req.target;
  if (!Buffer.isBuffer(target) || target.length === 0 || target.includes(0)) throw new Errno('EINVAL', 'invalid symlink target');
  if (target.length >= PATH_MAX) throw new Errno('ENAMETOOLONG', 'symlink target too long');
  // The target is stored as bytes and never followed by the server.
  await dir.exp.io.call(dir.caller, 'symlinkat', target, dir.fd, name);
  const st = await dir.exp.io.call(dir.caller, 'statat', dir.fd, name, NOFOLLOW);
  return entry(lfs, dir, name, st);
}

/**
 * Link of exactly the verified file (its pinned O_PATH fd), a symlink itself included, as the
 * caller: the kernel applies protected_hardlinks (a caller who does not own the source needs read
 * and write access to a regular, non-set-id file). Through the fd's /proc magic link with
 * AT_SYMLINK_FOLLOW, which resolves to the fd's own inode: linkat(fd, "", AT_EMPTY_PATH) would
 * need CAP_DAC_READ_SEARCH, which a non-root caller's credentials do not have.
 */
export async function link(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; new_dir: Buffer; new_name: Buffer }): Promise<Entry> {
  const src = await lfs.resolve(req.handle, callerOf(req.caller));
  const dir = await writableDir(lfs, req.new_dir, req.caller);
  if (src.exp.id !== dir.exp.id) throw new Errno('EXDEV', 'link across exports');
  if (sys.isDir(src.st.mode)) throw new Errno('EPERM', 'hard link to a directory');
  const name = checkName(req.new_name);
  const io = dir.exp.io;
  const st = await withPinnedAsync(src, async (fd) => {
    await io.call(dir.caller, 'linkat', sys.AT_FDCWD, sys.fdPath(fd), dir.fd, name, sys.AT_SYMLINK_FOLLOW);
    return io.call(dir.caller, 'statat', dir.fd, name, NOFOLLOW);
  });
  // The newest name is tried first; the old ones stay known, so the handle survives the removal of either.
  const { handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, src.id, handle, st);
}

export async function unlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  // The kernel answers EISDIR for a directory, and checks the sticky bit.
  await dir.exp.io.call(dir.caller, 'unlinkat', dir.fd, name, 0);
  return {};
}

export async function rmdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const st = await dir.exp.io.call(dir.caller, 'statat', dir.fd, name, NOFOLLOW);
  await dir.exp.io.call(dir.caller, 'unlinkat', dir.fd, name, sys.AT_REMOVEDIR);
  lfs.forgetDir(await lfs.store.localId(st.dev, st.ino));
  return {};
}

/**
 * Rename by renameat2(2) on the two directory fds, as the caller: RENAME_NOREPLACE fails with
 * EEXIST atomically (directories too), RENAME_EXCHANGE swaps the two names atomically, and the
 * permission checks (write and search on both directories, the sticky bit, write permission on a
 * directory that moves to a new parent) are the kernel's.
 */
export async function rename(
  lfs: LocalFs,
  req: { caller: WireCaller; old_dir: Buffer; old_name: Buffer; new_dir: Buffer; new_name: Buffer; flags: number },
): Promise<Record<string, never>> {
  const from = await writableDir(lfs, req.old_dir, req.caller);
  const to = await writableDir(lfs, req.new_dir, req.caller);
  if (from.exp.id !== to.exp.id) throw new Errno('EXDEV', 'rename across exports');
  const flags = req.flags >>> 0;
  if (flags & ~(sys.RENAME_NOREPLACE | sys.RENAME_EXCHANGE)) throw new Errno('EINVAL', 'unknown rename flags');
  const exchange = (flags & sys.RENAME_EXCHANGE) !== 0;
  const oldName = checkName(req.old_name);
  const newName = checkName(req.new_name);
  // The two files as they were just before the rename, for the handle records.
  const io = from.exp.io;
  const src = await io.call(from.caller, 'statat', from.fd, oldName, NOFOLLOW);
  const target = await io.call(from.caller, 'statatIfExists', to.fd, newName, NOFOLLOW);
  await io.call(from.caller, 'renameat2', from.fd, oldName, to.fd, newName, flags);
  const sameInode = target !== undefined && target.dev === src.dev && target.ino === src.ino;
  // Two names of one file: renameat2 leaves both in place (an exchange too), and so do the records.
  if (sameInode) return {};
  const srcId = await lfs.store.localId(src.dev, src.ino);
  const oldAt = { parent: from.id.toString(), name: oldName };
  const newAt = { parent: to.id.toString(), name: newName };
  await lfs.moved(srcId, oldAt, to.id, newName, src);
  if (exchange && target) {
    // Each file now has the other's old name.
    await lfs.moved(await lfs.store.localId(target.dev, target.ino), newAt, from.id, oldName, target);
  } else if (target && sys.isDir(target.mode)) {
    lfs.forgetDir(await lfs.store.localId(target.dev, target.ino));
  }
  return {};
}
