// ReadDir: the entries of a directory after a cookie, each with its handle and attributes.
import { closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as sys from '../sys/index.js';
import type { LocalFs } from './local-fs.js';
import { isDotOrDotDot } from './names.js';
import { checkAccess } from './as-caller.js';
import { R_OK } from './permissions.js';
import { entryOf } from './ops-meta.js';
import { callerOf, bigU64, type Entry, type WireCaller } from './wire.js';

const O_RDONLY = 0;

/**
 * A directory cookie is a 62-bit hash of the entry name's bytes (never 0): entries are sent in
 * cookie order, so resuming after a cookie stays right when entries are added or removed between
 * two calls.
 */
export function nameCookie(name: Buffer): bigint {
  const h = createHash('sha256').update(name).digest().readBigUInt64BE(0) & ((1n << 62n) - 1n);
  return h === 0n ? 1n : h;
}

const direntBuf = Buffer.alloc(64 * 1024);

/** Every name in the directory open at `dirFd` but "." and "..", as the bytes stored. */
function listNames(dirFd: number): Buffer[] {
  // A fresh fd: getdents reads from the fd's position, and the cached directory fd is shared.
  const fd = sys.openat(dirFd, '.', O_RDONLY | sys.O_DIRECTORY);
  const out: Buffer[] = [];
  try {
    for (let batch = sys.getdents(fd, direntBuf); batch.length > 0; batch = sys.getdents(fd, direntBuf)) {
      for (const d of batch) if (!isDotOrDotDot(d.name)) out.push(d.name);
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

export interface DirEntryOut { name: Buffer; cookie: string; entry: Entry }

export async function readDir(
  lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; cookie: string }, emit: (e: DirEntryOut) => boolean,
): Promise<void> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  checkAccess(dir.fd, dir.caller, R_OK);
  const after = bigU64(req.cookie);
  const names = listNames(dir.fd)
    .map((name) => ({ name, cookie: nameCookie(name) }))
    .filter((e) => e.cookie > after)
    .sort((a, b) => (a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : 0));
  for (const { name, cookie } of names) {
    let st: sys.Stat | undefined;
    try {
      st = sys.statatIfExists(dir.fd, name, sys.AT_SYMLINK_NOFOLLOW);
    } catch {
      st = undefined;
    }
    if (!st) continue; // removed while listing
    const { id, handle } = await lfs.remember(dir.exp, dir.id, name, st);
    if (!emit({ name, cookie: cookie.toString(), entry: entryOf(lfs, id, handle, st) })) return;
  }
}
