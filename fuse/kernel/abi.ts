// The kernel FUSE ABI as this layer speaks it: opcodes, struct sizes, flag bits. Names follow
// linux include/uapi/linux/fuse.h so a reader can check each value against the header.

/** The protocol version we implement; the reply carries min(kernel, ours). */
export const KERNEL_VERSION = 7;
export const KERNEL_MINOR_VERSION = 45;

export const Opcode = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32,
  SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40,
  NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
  COPY_FILE_RANGE: 47, SETUPMAPPING: 48, REMOVEMAPPING: 49, SYNCFS: 50, TMPFILE: 51, STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;
export type OpcodeName = keyof typeof Opcode;

export const NotifyCode = { POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6 } as const;

// Struct sizes in bytes (x86_64, fuse.h 7.45).
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;
export const OPEN_OUT_SIZE = 16;
export const INIT_IN_SIZE = 64;
export const INIT_OUT_SIZE = 64;
export const DIRENT_HEADER_SIZE = 24;
export const DIRENTPLUS_HEADER_SIZE = ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE;
export const STATFS_OUT_SIZE = 80;
export const FILE_LOCK_SIZE = 24;

/** FUSE_ROOT_ID: the mount's root node, never forgotten. */
export const ROOT_ID = 1;

// INIT flags (bits 0-31 in flags, 32-63 in flags2 when INIT_EXT is set).
export const InitFlag = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  DONT_MASK: 1n << 6n,
  FLOCK_LOCKS: 1n << 10n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n,
  WRITEBACK_CACHE: 1n << 16n,
  PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n,
  POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  EXPLICIT_INVAL_DATA: 1n << 25n,
  HANDLE_KILLPRIV_V2: 1n << 28n,
  SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n,
  HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n,
  PASSTHROUGH: 1n << 37n,
} as const;

/**
 * What we ask for at INIT (intersected with what the kernel offers), one reason per choice.
 * Not asked: WRITEBACK_CACHE (the kernel would own size/mtime and delay writes: wrong for a
 * filesystem whose files change behind the kernel), EXPLICIT_INVAL_DATA (AUTO_INVAL_DATA is the
 * safety net when a notification is missed: pages drop whenever mtime/size change), DONT_MASK
 * (no ACLs; the kernel applies the umask), SETXATTR_EXT (we decode only the short setxattr_in).
 */
export const WANTED_INIT_FLAGS =
  InitFlag.ASYNC_READ | // several READs of one handle in flight at once: readahead in parallel
  InitFlag.POSIX_LOCKS | // fcntl locks come to us, so a cluster can make them global
  InitFlag.ATOMIC_O_TRUNC | // O_TRUNC arrives with OPEN: one request, no separate SETATTR
  InitFlag.EXPORT_SUPPORT | // we answer "." and ".." lookups and never reuse node ids
  InitFlag.BIG_WRITES | // writes larger than one page
  InitFlag.AUTO_INVAL_DATA | // cached pages are dropped when mtime/size change
  InitFlag.DO_READDIRPLUS | // entries and attributes in one pass (ls -l, find)
  InitFlag.READDIRPLUS_AUTO | // ...but the kernel chooses plain READDIR when it needs no attrs
  InitFlag.ASYNC_DIO | // direct I/O split into parallel requests
  InitFlag.PARALLEL_DIROPS | // lookups and readdirs of one directory run concurrently
  InitFlag.ABORT_ERROR | // an aborted connection reads ECONNABORTED, distinct from unmount
  InitFlag.MAX_PAGES | // requests up to max_pages (1 MiB) instead of 128 KiB
  InitFlag.CACHE_SYMLINKS | // readlink results stay in the page cache
  InitFlag.HANDLE_KILLPRIV_V2 | // we clear suid/sgid on write/truncate ourselves: no extra SETATTR
  InitFlag.INIT_EXT | // flags2 is meaningful
  InitFlag.DIRECT_IO_ALLOW_MMAP; // MAP_SHARED works on direct-I/O files (exec, databases)

export const MAX_WRITE = 1024 * 1024;
export const MAX_PAGES = MAX_WRITE / 4096;
export const MAX_READAHEAD = 1024 * 1024;
/**
 * Readahead of the /mfs mount (setMountReadahead), larger than the passthrough's: each READ there
 * is a network round trip, so a sequential reader is only as fast as the READs the kernel keeps in
 * flight at once (max_pages each: 1 MiB), and 8 of them hide the trip (cold 512 MiB read on this VM:
 * 86 MB/s at 1 MiB, 112-126 MB/s at 8 MiB).
 */
export const MFS_READAHEAD = 8 * 1024 * 1024;
export const MAX_BACKGROUND = 64;
/** Read buffer: the largest WRITE (header + write_in + max_write) plus slack for any other op. */
export const READ_BUFFER_SIZE = MAX_WRITE + 4096;

// FOPEN_* reply flags of OPEN/OPENDIR/CREATE.
export const OpenFlag = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
  PASSTHROUGH: 1 << 7,
} as const;

/**
 * ioctls on /dev/fuse for kernel passthrough (fuse.h FUSE_DEV_IOC_*): register an open backing
 * file (struct fuse_backing_map {i32 fd; u32 flags; u64 padding}) and get its id; unregister it.
 */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;
/** max_stack_depth answered with PASSTHROUGH: backing files live on a plain (unstacked) fs. */
export const PASSTHROUGH_STACK_DEPTH = 1;

// FATTR_* bits of setattr_in.valid.
export const SetattrValid = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11,
} as const;

export const GETATTR_FH = 1 << 0;
export const WRITE_KILL_SUIDGID = 1 << 2;
export const OPEN_KILL_SUIDGID = 1 << 0;
export const LK_FLOCK = 1 << 0;
export const FSYNC_FDATASYNC = 1 << 0;
export const RELEASE_FLUSH = 1 << 0;
export const RELEASE_FLOCK_UNLOCK = 1 << 1;
