// Metadata operations: root, lookup, getattr, setattr, access, readdir, readlink, statfs.
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Errno } from '../proto/errno.js';
import type { LocalFs, Node } from './local-fs.js';
import { checkName } from './names.js';
import {
  checkAccess, chmodBits, inGroup, isOwnerOrRoot, isRoot, modeAfterWrite, mayAccess, R_OK, W_OK, X_OK,
} from './permissions.js';
import { bigU64, callerOf, toAttr, u64, type Attr, type Entry, type Timespec, type WireCaller } from './wire.js';
import type { OpenFiles } from './open-files.js';

export interface SetAttrIn {
  caller: WireCaller; handle: Buffer; valid_mode: boolean; mode: number; valid_uid: boolean; uid: number;
  valid_gid: boolean; gid: number; valid_size: boolean; size: string; valid_atime: boolean; atime_now: boolean;
  atime: Timespec | null; valid_mtime: boolean; mtime_now: boolean; mtime: Timespec | null; fh: string;
}

export function entryOf(lfs: LocalFs, id: bigint, handle: Buffer, st: fs.Stats): Entry {
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
  const st = fs.fstatSync(exp.rootFd);
  return entryOf(lfs, exp.rootId, lfs.store.mint(exp.id, exp.rootId), st);
}

export async function lookup(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; name: string }): Promise<Entry> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  const name = checkName(req.name);
  checkAccess(dir.st, dir.caller, X_OK, 'directory');
  const st = fs.lstatSync(`/proc/self/fd/${dir.fd}/${name}`);
  const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
  return entryOf(lfs, id, handle, st);
}

export async function getAttr(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<{ attr: Attr }> {
  return { attr: attrOf(lfs, await lfs.resolve(req.handle, callerOf(req.caller))) };
}

/**
 * A wire time as fractional seconds for utimes, exact to the microsecond: libuv truncates the
 * fraction to whole microseconds and a double near 2026 resolves about 0.24 us, so half a
 * microsecond is added to land inside the intended one rather than on the one below.
 */
const toSeconds = (t: Timespec | null): number => {
  if (!t || t.nsec >= 1e9) throw new Errno('EINVAL', 'missing or invalid time');
  return Number(bigU64(t.sec)) + (Math.floor(t.nsec / 1000) + 0.5) / 1e6;
};

export async function setAttr(lfs: LocalFs, files: OpenFiles, req: SetAttrIn): Promise<{ attr: Attr }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const c = node.caller;
  checkWritable(node);
  const st = node.st;
  lfs.withPinned(node, (pinned) => {
    if (req.valid_uid || req.valid_gid) {
      const uid = req.valid_uid ? req.uid >>> 0 : st.uid;
      const gid = req.valid_gid ? req.gid >>> 0 : st.gid;
      if (uid !== st.uid && !isRoot(c)) throw new Errno('EPERM', 'only root changes the owner');
      if (gid !== st.gid && !isRoot(c) && (c.uid !== st.uid || !inGroup(c, gid))) throw new Errno('EPERM', 'not allowed to change the group');
      if (uid !== st.uid || gid !== st.gid) {
        // lchown through the pinned fd's /proc link acts on the file itself (a symlink too).
        if (st.isSymbolicLink()) fs.lchownSync(node.path, uid, gid);
        else fs.chownSync(pinned, uid, gid);
      } else if (!isOwnerOrRoot(st, c)) {
        throw new Errno('EPERM', 'not the owner');
      }
    }
    if (req.valid_mode) {
      if (!isOwnerOrRoot(st, c)) throw new Errno('EPERM', 'only the owner changes the mode');
      if (st.isSymbolicLink()) throw new Errno('EOPNOTSUPP', 'symlinks have no mode');
      const now = fs.lstatSync(pinned);
      fs.chmodSync(pinned, chmodBits(now, c, req.mode));
    }
    if (req.valid_size) {
      if (st.isDirectory()) throw new Errno('EISDIR', 'is a directory');
      if (!st.isFile()) throw new Errno('EINVAL', 'not a regular file');
      const size = u64(req.size, 'size');
      const viaFh = files.getWritable(bigU64(req.fh), node.id, c.uid);
      if (viaFh === undefined) checkAccess(st, c, W_OK);
      if (viaFh !== undefined) fs.ftruncateSync(viaFh, size);
      else fs.truncateSync(pinned, size);
      const cleared = modeAfterWrite(fs.lstatSync(pinned), c);
      if (cleared !== null) fs.chmodSync(pinned, cleared);
    }
    if (req.valid_atime || req.valid_mtime) {
      const explicit = (req.valid_atime && !req.atime_now) || (req.valid_mtime && !req.mtime_now);
      if (!isOwnerOrRoot(st, c)) {
        if (explicit) throw new Errno('EPERM', 'only the owner sets explicit times');
        checkAccess(st, c, W_OK);
      }
      const cur = fs.lstatSync(pinned);
      // "Now" is the server's clock: this process runs on the server.
      const now = Date.now() / 1000;
      const atime = !req.valid_atime ? cur.atimeMs / 1000 : req.atime_now ? now : toSeconds(req.atime);
      const mtime = !req.valid_mtime ? cur.mtimeMs / 1000 : req.mtime_now ? now : toSeconds(req.mtime);
      if (st.isSymbolicLink()) fs.lutimesSync(node.path, atime, mtime);
      else fs.utimesSync(pinned, atime, mtime);
    }
  });
  return { attr: toAttr(fs.lstatSync(node.path), lfs.clusterIno(node.id)) };
}

export async function access(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer; mask: number }): Promise<Record<string, never>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const mask = req.mask & 7;
  if ((mask & W_OK) && node.exp.spec.readOnly) throw new Errno('EROFS', 'read-only export');
  if (!mayAccess(node.st, node.caller, mask)) throw new Errno('EACCES', 'access denied');
  return {};
}

/**
 * A directory cookie is a 62-bit hash of the entry name (never 0): entries are sent in cookie order,
 * so resuming after a cookie stays right when entries are added or removed between two calls.
 */
export function nameCookie(name: string): bigint {
  const h = createHash('sha256').update(name).digest().readBigUInt64BE(0) & ((1n << 62n) - 1n);
  return h === 0n ? 1n : h;
}

export interface DirEntryOut { name: string; cookie: string; entry: Entry }

export async function readDir(
  lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; cookie: string }, emit: (e: DirEntryOut) => boolean,
): Promise<void> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  checkAccess(dir.st, dir.caller, R_OK, 'directory');
  const after = bigU64(req.cookie);
  const names = fs.readdirSync(`/proc/self/fd/${dir.fd}`)
    .map((name) => ({ name, cookie: nameCookie(name) }))
    .filter((e) => e.cookie > after)
    .sort((a, b) => (a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : 0));
  for (const { name, cookie } of names) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(`/proc/self/fd/${dir.fd}/${name}`);
    } catch {
      continue; // removed while listing
    }
    const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
    if (!emit({ name, cookie: cookie.toString(), entry: entryOf(lfs, id, handle, st) })) return;
  }
}

export async function readlink(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<{ target: string }> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  if (!node.st.isSymbolicLink()) throw new Errno('EINVAL', 'not a symlink');
  return { target: fs.readlinkSync(node.path) };
}

export async function statFs(lfs: LocalFs, req: { caller: WireCaller; handle: Buffer }): Promise<Record<string, string | number>> {
  const node = await lfs.resolve(req.handle, callerOf(req.caller));
  const s = fs.statfsSync(node.st.isSymbolicLink() ? `/proc/self/fd/${node.exp.rootFd}` : node.path);
  return {
    blocks: String(s.blocks), bfree: String(s.bfree), bavail: String(s.bavail), files: String(s.files), ffree: String(s.ffree),
    bsize: s.bsize, namelen: 255, frsize: s.bsize,
  };
}

