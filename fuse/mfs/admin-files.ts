// /mfs/.admin: the node's DFSA tuning tables as files, where openMosix had /proc/hpc/admin:
// - mfscosts: the 6 mfscosts values (`mfsctl getcosts`),
// - overheads: the 14 migration overheads (`mfsctl gettune`),
// - decay: INTERVAL SLOW FAST (`mfsctl getdecay`).
// Same layout as those commands print (one line of whitespace-separated integers): `cat` shows
// the table in use, `echo "36 40 14 19 88 56" > /mfs/.admin/mfscosts` replaces it.
//
// Rules:
// - readable by every user; writable by root only: mode 0644 owned by root (the mount's
//   default_permissions makes the kernel refuse a non-root open for writing with EACCES), and a
//   WRITE from another uid is refused with EACCES too;
// - each write(2) is a whole table, as with /proc files (a value split over two writes is refused):
//   every value is checked before anything is stored; a bad one fails the write with EINVAL and
//   leaves the table as it was, and the mount's log (mfsd's stderr) says which field and why;
// - opened with DIRECT_IO, size 0 like a /proc file: every read(2) reaches the mount and shows the
//   table as it is now (mfsctl set* changes the same files).
// The tables themselves are the node's (its mfsd's state directory): the host gives them through
// AdminTables (bin/ over dfsa/tuning.ts; fuse/mfs cannot import dfsa).
import { Errno } from '../../proto/errno.js';
import type { Attr } from '../kernel/index.js';
import { S_IFREG } from './attrs.js';

export const ADMIN_DIR = '.admin';
export const ADMIN_FILES = ['mfscosts', 'overheads', 'decay'] as const;
export type AdminFile = (typeof ADMIN_FILES)[number];

export const isAdminFile = (name: string): name is AdminFile => (ADMIN_FILES as readonly string[]).includes(name);

/** The node's tables, as the host reads and writes them. */
export interface AdminTables {
  /** The table's text as `mfsctl get*` prints it (its defaults when never set). */
  read(file: AdminFile): Promise<string>;
  /**
   * Replaces the table from `text` (whitespace-separated values). A value the table refuses is an
   * Errno EINVAL whose message names the field and why; nothing is written then.
   */
  write(file: AdminFile, text: string): Promise<void>;
}

/** Who writes, for the log line. */
export interface AdminCaller { uid: number; pid: number }

const started = { sec: Math.floor(Date.now() / 1000), nsec: 0 };

/** 0644 root:root, size 0 (a /proc-like file: reads return what they return). */
export function adminFileAttr(ino: number): Attr {
  return {
    ino, size: 0, blocks: 0, atime: started, mtime: started, ctime: started,
    mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096,
  };
}

export class AdminFiles {
  constructor(private readonly tables: AdminTables, private readonly log: (line: string) => void) {}

  /** A READ of `size` bytes at `offset` of the table's text. */
  async read(file: AdminFile, offset: number, size: number): Promise<Buffer> {
    return Buffer.from(await this.tables.read(file)).subarray(offset, offset + size);
  }

  /** A WRITE: the whole table; resolves with the bytes taken (all of them). */
  async write(who: AdminCaller, file: AdminFile, data: Buffer): Promise<number> {
    if (who.uid !== 0) throw new Errno('EACCES', `/${ADMIN_DIR}/${file} is writable by root only`);
    try {
      await this.tables.write(file, data.toString('latin1'));
    } catch (err) {
      this.log(`${ADMIN_DIR}/${file}: write by pid ${who.pid} refused: ${(err as Error).message}`);
      throw err;
    }
    this.log(`${ADMIN_DIR}/${file}: set to ${data.toString('latin1').trim().split(/\s+/).join(' ')} by pid ${who.pid}`);
    return data.length;
  }
}
