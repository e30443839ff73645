// Metadata operations: root, lookup, getattr, setattr, access, readdir, readlink, statfs.
import { Errno } from '../proto/errno.js';
import * as sys from '../sys/index.js';
import { ON_FD, reopenAs, withPinnedAsync, type LocalFs, type Node } from './local-fs.js';
import { checkName } from './names.js';
import { checkAccessAt } from './as-caller.js';
import { W_OK } from './permissions.js';
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
  return entryOf(lfs, exp.rootId, lfs.store.mint(exp.id, exp.rootId, 0), await exp.io.call(null, 'fstat', exp.rootFd));
}

export async function lookup(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: Buffer }): Promise<Entry> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  const name = checkName(req.name);
  // As the caller: the kernel checks search permission on the directory.
  const st = await dir.exp.io.call(dir.caller, 'statat', dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
  if (lfs.notServed(dir.exp, st)) throw new Errno('ENOENT', 'this node does not serve its /proc, /sys or /dev');
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, id, handle, st);
}

export async function getAttr(lfs: LocalFs, files: OpenFiles, req: FileIn): Promise<{ attr: Attr }> {
  return { attr: attrOf(lfs, await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh)) };
}

/**
 * SetAttr: owner, mode, size and times, each applied as the caller, so the kernel's rules decide
 * (only root changes the owner, the owner changes the group to one of its groups and the mode,
 * setgid dropped for a group the caller is not in, set-id bits cleared by chown and truncate, a
 * non-owner with write permission may only touch both times to now), ACLs included. Applied to
 * the caller's open file when the request names one (fh), else to the verified file of the
 * handle. Times are exact to the nanosecond (utimensat); "now" is the server's clock.
 */
export async function setAttr(lfs: LocalFs, files: OpenFiles, req: SetAttrIn): Promise<{ attr: Attr }> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  const c = node.caller;
  checkWritable(node);
  const st = node.st;
  const xio = node.exp.io;
  const st2 = await withPinnedAsync(node, async (fd, io) => {
    if (req.valid_uid || req.valid_gid) {
      // -1 leaves one unchanged; on the fd's own file, a symlink itself included.
      const uid = req.valid_uid ? req.uid >>> 0 : -1;
      const gid = req.valid_gid ? req.gid >>> 0 : -1;
      await xio.call(c, 'fchownat', fd, '', uid, gid, ON_FD);
    }
    if (req.valid_mode) {
      // A symlink answers EOPNOTSUPP (fchmodat2 with AT_SYMLINK_NOFOLLOW), as on the bare directory.
      await xio.call(c, 'fchmodat', fd, '', req.mode & 0o7777, ON_FD);
    }
    if (req.valid_size) {
      if (sys.isDir(st.mode)) throw new Errno('EISDIR', 'is a directory');
      if (!sys.isReg(st.mode)) throw new Errno('EINVAL', 'not a regular file');
      const size = u64(req.size, 'size');
      if (io && openForWriting(node.open!)) {
        await xio.call(c, 'ftruncate', fd, size);
      } else {
        // Reopened for writing as the caller: the kernel checks write permission.
        const w = await reopenAs(node.exp, c, fd, O_WRONLY);
        try {
          await xio.call(c, 'ftruncate', w, size);
        } finally {
          xio.close(w);
        }
      }
    }
    if (req.valid_atime || req.valid_mtime) {
      const time = (valid: boolean, now: boolean, t: Timespec | null): sys.TimeArg => (!valid ? 'omit' : now ? 'now' : fromWireTime(t));
      const atime = time(req.valid_atime, req.atime_now, req.atime);
      const mtime = time(req.valid_mtime, req.mtime_now, req.mtime);
      await xio.call(c, 'utimensat', fd, '', atime, mtime, ON_FD);
    }
    return xio.call(null, 'fstat', fd);
  });
  return { attr: toAttr(st2, lfs.clusterIno(node.id)) };
}

/** access(2) by the kernel: faccessat2 with the caller's credentials (ACLs included). */
export async function access(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; mask: number }): Promise<Record<string, never>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const mask = req.mask & 7;
  if ((mask & W_OK) && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  await withPinnedAsync(node, (fd) => checkAccessAt(node.exp, fd, node.caller, mask));
  return {};
}

export async function readlink(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<{ target: Buffer }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  if (!sys.isLnk(node.st.mode)) throw new Errno('EINVAL', 'not a symlink');
  return { target: await withPinnedAsync(node, (fd) => node.exp.io.call(null, 'readlinkat', fd, '')) };
}

export async function statFs(lfs: LocalFs, files: OpenFiles, req: FileIn): Promise<Record<string, string | number>> {
  const node = await lfs.resolveFile(req.handle, callerOf(req.caller), files, req.fh);
  // fstatfs on the pinned fd itself (a symlink's O_PATH fd included): no path, so none in an error.
  const s = await withPinnedAsync(node, (fd) => node.exp.io.call(null, 'fstatfs', fd));
  return {
    blocks: String(s.blocks), bfree: String(s.bfree), bavail: String(s.bavail), files: String(s.files), ffree: String(s.ffree),
    bsize: s.bsize, namelen: s.namelen, frsize: s.frsize || s.bsize,
  };
}
