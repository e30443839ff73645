// Namespace operations: create, mkdir, mknod, symlink, link, unlink, rmdir, rename.
// New files are created by root (the daemon) and then given to the caller: owner = caller, group =
// the parent's when it is setgid (directories also inherit the setgid bit), mode = mode & ~umask.
import * as fs from 'node:fs';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { Errno } from '../proto/errno.js';
import type { LocalFs, Node } from './local-fs.js';
import { O_PATH, recordOf } from './local-fs.js';
import { checkName } from './names.js';
import {
  checkAccess, checkSticky, inGroup, isRoot, newFileGroup, S_ISGID, W_OK, X_OK, type Caller,
} from './permissions.js';
import { entryOf } from './ops-meta.js';
import { bigU64, callerOf, type Entry, type WireCaller } from './wire.js';

const run = promisify(execFile);
const { O_NOFOLLOW } = fs.constants;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;
const S_IFREG = 0o100000;

export type DirNode = Node & { fd: number };

/** Resolves a directory the caller may create in / remove from (write + search, export writable). */
export async function writableDir(lfs: LocalFs, handle: Buffer, wire: WireCaller): Promise<DirNode> {
  const dir = await lfs.resolveDir(handle, callerOf(wire));
  if (dir.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  checkAccess(dir.st, dir.caller, W_OK | X_OK, 'directory');
  return dir;
}

export const inDir = (dir: DirNode, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

/** Gives a just-created file to the caller: owner, group (setgid inheritance) and exact mode. */
export function giveToCaller(path: string, dir: DirNode, c: Caller, bits: number, isDirectory: boolean): fs.Stats {
  const fd = fs.openSync(path, O_PATH | O_NOFOLLOW);
  try {
    const pinned = `/proc/self/fd/${fd}`;
    const st = fs.fstatSync(fd);
    const gid = newFileGroup(dir.st, c);
    if (st.isSymbolicLink()) {
      fs.lchownSync(path, c.uid, gid);
    } else {
      fs.chownSync(pinned, c.uid, gid);
      let mode = bits & 0o7777;
      if (isDirectory && (dir.st.mode & S_ISGID) !== 0) mode |= S_ISGID;
      if (!isDirectory && (mode & S_ISGID) !== 0 && !isRoot(c) && !inGroup(c, gid)) mode &= ~S_ISGID;
      fs.chmodSync(pinned, mode);
    }
    return fs.lstatSync(path);
  } finally {
    fs.closeSync(fd);
  }
}

async function entry(lfs: LocalFs, dir: DirNode, name: string, st: fs.Stats): Promise<Entry> {
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, id, handle, st);
}

export async function mkdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string; mode: number; umask: number }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const path = inDir(dir, name);
  fs.mkdirSync(path, 0o700);
  const st = giveToCaller(path, dir, dir.caller, req.mode & ~req.umask, true);
  return entry(lfs, dir, name, st);
}

export async function mknod(
  lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string; mode: number; umask: number; rdev: string },
): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const path = inDir(dir, name);
  const type = req.mode & S_IFMT;
  // Child processes see our fds through /proc/<our pid>, not their own /proc/self.
  const childPath = `/proc/${process.pid}/fd/${dir.fd}/${name}`;
  if (type === S_IFREG || type === 0) {
    fs.closeSync(fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW | fs.constants.O_WRONLY, 0o600));
  } else if (type === S_IFIFO) {
    await mknodTool(['-m', '600', childPath, 'p'], path);
  } else if (type === S_IFCHR || type === S_IFBLK) {
    if (!isRoot(dir.caller)) throw new Errno('EPERM', 'only root makes device nodes');
    const rdev = bigU64(req.rdev);
    // Linux dev_t encoding (glibc's gnu_dev_major / gnu_dev_minor).
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    await mknodTool(['-m', '600', childPath, type === S_IFCHR ? 'c' : 'b', String(major), String(minor)], path);
  } else if (type === S_IFSOCK) {
    await makeSocket(dir, path);
  } else {
    throw new Errno('EINVAL', 'unknown file type');
  }
  const st = giveToCaller(path, dir, dir.caller, req.mode & ~req.umask, false);
  return entry(lfs, dir, name, st);
}

async function mknodTool(args: string[], path: string): Promise<void> {
  if (fs.existsSync(path) || isSymlink(path)) throw new Errno('EEXIST', 'file exists');
  try {
    await run('mknod', args);
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? '');
    if (/File exists/.test(msg)) throw new Errno('EEXIST', 'file exists');
    throw new Errno('EIO', `mknod failed: ${msg.trim()}`);
  }
}

/**
 * A socket node without mknod: bind a listening socket under a temporary name in the same
 * directory, hard-link it to the final name (link fails atomically with EEXIST), then close the
 * listener (libuv unlinks the temporary name).
 */
async function makeSocket(dir: DirNode, path: string): Promise<void> {
  const tmp = inDir(dir, `.omfs-sock-${randomBytes(6).toString('hex')}`);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  try {
    fs.linkSync(tmp, path);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(tmp, { force: true });
  }
}

function isSymlink(path: string): boolean {
  try {
    return fs.lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export async function symlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string; target: string }): Promise<Entry> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const target = String(req.target);
  if (target === '' || target.includes('\0')) throw new Errno('EINVAL', 'invalid symlink target');
  if (Buffer.byteLength(target) >= 4096) throw new Errno('ENAMETOOLONG', 'symlink target too long');
  const path = inDir(dir, name);
  // The target is stored as text and never followed by the server.
  fs.symlinkSync(target, path);
  const st = giveToCaller(path, dir, dir.caller, 0o777, false);
  return entry(lfs, dir, name, st);
}

export async function link(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; new_dir: Buffer; new_name: string }): Promise<Entry> {
  const src = await lfs.resolve(req.handle, callerOf(req.caller));
  const dir = await writableDir(lfs, req.new_dir, req.caller);
  if (src.exp.id !== dir.exp.id) throw new Errno('EXDEV', 'link across exports');
  if (src.st.isDirectory()) throw new Errno('EPERM', 'hard link to a directory');
  const name = checkName(req.new_name);
  fs.linkSync(src.path, inDir(dir, name)); // link(2) does not follow a symlink source
  const st = fs.lstatSync(inDir(dir, name));
  if (st.ino !== src.st.ino) throw new Errno('ESTALE', 'source replaced during link');
  // The newest name becomes the recorded one: the handle survives the removal of the old name.
  await lfs.store.remember(src.id, recordOf(dir.id, name, st));
  return entryOf(lfs, src.id, lfs.store.mint(dir.exp.id, src.id), st);
}

function child(dir: DirNode, name: string): fs.Stats {
  return fs.lstatSync(inDir(dir, name));
}

export async function unlink(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const st = child(dir, name);
  if (st.isDirectory()) throw new Errno('EISDIR', 'is a directory');
  checkSticky(dir.st, st, dir.caller);
  fs.unlinkSync(inDir(dir, name));
  return {};
}

export async function rmdir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string }): Promise<Record<string, never>> {
  const dir = await writableDir(lfs, req.dir, req.caller);
  const name = checkName(req.name);
  const st = child(dir, name);
  if (!st.isDirectory()) throw new Errno('ENOTDIR', 'not a directory');
  checkSticky(dir.st, st, dir.caller);
  fs.rmdirSync(inDir(dir, name));
  lfs.forgetDir(await lfs.store.localId(st.dev, st.ino));
  return {};
}

const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

function exists(path: string): fs.Stats | null {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Rename. RENAME_EXCHANGE is refused with EINVAL: Node has no renameat2 and no dance of link/rename
 * swaps two names atomically. RENAME_NOREPLACE is race-free for non-directories (link() fails with
 * EEXIST atomically, then the old name is unlinked); for directories it is a check then a rename,
 * which a concurrent create of the target between the two can defeat (documented limit).
 */
export async function rename(
  lfs: LocalFs,
  req: { caller: WireCaller; old_dir: Buffer; old_name: string; new_dir: Buffer; new_name: string; flags: number },
): Promise<Record<string, never>> {
  const from = await writableDir(lfs, req.old_dir, req.caller);
  const to = await writableDir(lfs, req.new_dir, req.caller);
  if (from.exp.id !== to.exp.id) throw new Errno('EXDEV', 'rename across exports');
  const flags = req.flags >>> 0;
  if (flags & RENAME_EXCHANGE) throw new Errno('EINVAL', 'RENAME_EXCHANGE is not supported');
  if (flags & ~RENAME_NOREPLACE) throw new Errno('EINVAL', 'unknown rename flags');
  const oldName = checkName(req.old_name);
  const newName = checkName(req.new_name);
  const c = from.caller;
  const src = child(from, oldName);
  checkSticky(from.st, src, c);
  const target = exists(inDir(to, newName));
  if (target) {
    checkSticky(to.st, target, c);
    if (flags & RENAME_NOREPLACE) throw new Errno('EEXIST', 'target exists');
  }
  // Moving a directory to a new parent rewrites its "..": that needs write permission on it.
  if (src.isDirectory() && from.id !== to.id) checkAccess(src, c, W_OK, 'directory');
  const oldPath = inDir(from, oldName);
  const newPath = inDir(to, newName);
  if ((flags & RENAME_NOREPLACE) && !src.isDirectory()) {
    fs.linkSync(oldPath, newPath);
    fs.unlinkSync(oldPath);
  } else {
    fs.renameSync(oldPath, newPath);
  }
  const id = await lfs.store.localId(src.dev, src.ino);
  await lfs.store.remember(id, recordOf(to.id, newName, src));
  if (target?.isDirectory()) lfs.forgetDir(await lfs.store.localId(target.dev, target.ino));
  return {};
}

