// ReadDir: the entries of a directory after a cookie, each with its handle and attributes.
//
// Cookies are the backing filesystem's own d_off (as the FUSE passthrough's): each call opens its own
// fd of the directory, seeks to the cookie and reads one getdents buffer at a time, so nothing grows
// with the directory's size. A batch is stat'ed, remembered in one LevelDB write and sent; the event
// loop gets a turn between batches, and when the client does not take entries (the stream's buffer
// is full) the listing waits for it, holding one batch at most. Entries come in the directory's own
// order, which is what makes d_off cookies resumable: after any cookie returned, the listing goes on
// after that entry, entries added or removed meanwhile as on the bare directory. A caller who may
// read the directory but not search it gets the names without handles or attributes, as `ls -l`
// of such a directory on the bare filesystem lists names whose stat fails.
import * as sys from '../sys/index.js';
import type { LocalFs, Node } from './local-fs.js';
import { isDotOrDotDot } from './names.js';
import { checkAccessAt, mayAccessAt } from './as-caller.js';
import { R_OK, X_OK } from './permissions.js';
import { entryOf } from './ops-meta.js';
import { callerOf, bigU64, type Entry, type WireCaller } from './wire.js';

const O_RDONLY = 0;
/** Reading a directory as the daemon (root, its owner or not) may say O_NOATIME. */
const O_NOATIME = 0o1000000;
/** One getdents64 call: a few hundred to a couple of thousand entries, depending on name lengths. */
const BATCH_BYTES = 32 * 1024;

/** `entry` is absent when the caller cannot search the directory (no stat of its entries). */
export interface DirEntryOut { name: Buffer; cookie: string; entry?: Entry }

/**
 * Sends one entry. Returns true to go on; false to stop (the call is gone); or a promise of that
 * when the client must take what was sent before the next entry (backpressure).
 */
export type EmitEntry = (e: DirEntryOut) => boolean | Promise<boolean>;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const cookieOf = (off: bigint): string => BigInt.asUintN(64, off).toString();

/** The batch's entries with handles and attributes, stat'ed and remembered together (one LevelDB write). */
async function withEntries(lfs: LocalFs, dir: Node & { fd: number }, fd: number, listed: sys.Dirent[]): Promise<DirEntryOut[]> {
  const found: Array<{ name: Buffer; st: sys.Stat; off: bigint }> = [];
  // One call for the batch: a single trip to the export's threads when it is off-thread.
  const stats = await dir.exp.io.call(null, 'statMany', fd, listed.map((d) => d.name), sys.AT_SYMLINK_NOFOLLOW);
  listed.forEach((d, i) => {
    const st = stats[i];
    // Else removed while listing; /proc, /sys and /dev of this machine are not served (local-fs.ts notServed).
    if (st && !lfs.notServed(dir.exp, st)) found.push({ name: d.name, st, off: d.off });
  });
  const remembered = await lfs.rememberAll(dir.exp, dir.id, found);
  return found.map(({ name, st, off }, i) => {
    const { id, handle } = remembered[i]!;
    return { name, cookie: cookieOf(off), entry: entryOf(lfs, id, handle, st) };
  });
}

export async function readDir(lfs: LocalFs, req: { caller: WireCaller; dir: Buffer; cookie: string }, emit: EmitEntry): Promise<void> {
  const dir = await lfs.resolveDir(req.dir, callerOf(req.caller));
  const io = dir.exp.io;
  await checkAccessAt(dir.exp, dir.fd, dir.caller, R_OK);
  const searchable = await mayAccessAt(dir.exp, dir.fd, dir.caller, X_OK);
  const cookie = bigU64(req.cookie);
  // A fresh fd: getdents reads from the fd's position, and the cached directory fd is shared.
  // O_NOATIME: the daemon's reading is not the caller's (a listing is then served from caches without us).
  const fd = await io.call(null, 'openat', dir.fd, '.', O_RDONLY | sys.O_DIRECTORY | O_NOATIME);
  const buf = Buffer.allocUnsafe(BATCH_BYTES);
  // On the export's threads the buffer cannot be shared: getdents there fills one of its own.
  const getdents = (): Promise<sys.Dirent[]> => (io.offThread ? io.call(null, 'getdents', fd, Buffer.allocUnsafe(BATCH_BYTES)) : io.call(null, 'getdents', fd, buf));
  try {
    // d_off is a signed 64-bit value (loff_t); the wire's u64 carries it unchanged.
    if (cookie !== 0n) await io.call(null, 'seekdir', fd, BigInt.asIntN(64, cookie));
    for (let batch = await getdents(); batch.length > 0; batch = await getdents()) {
      const listed = batch.filter((d) => !isDotOrDotDot(d.name));
      const out = searchable
        ? await withEntries(lfs, dir, fd, listed)
        : listed.map((d) => ({ name: d.name, cookie: cookieOf(d.off) }));
      for (const e of out) {
        let go = emit(e);
        if (typeof go !== 'boolean') go = await go;
        if (!go) return;
      }
      await nextTurn();
    }
  } finally {
    io.close(fd);
  }
}
