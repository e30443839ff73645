// The raw libc entry points, declared once through koffi (a maintained FFI with prebuilt binaries
// for every Linux architecture, so CI builds nothing). Measured on this VM (bench/syscall-cost.ts):
// a koffi call costs about 0.3 us over the syscall itself, and statx through koffi is cheaper than
// Node's own fs.lstatSync. Everything here is synchronous on the calling thread; sys/blocking.ts
// runs the calls that may wait on the disk on a worker.
//
// Syscalls that glibc 2.36 has no wrapper for go through syscall(2) with a fixed prototype: on
// x86_64 and arm64 a variadic call passes integer and pointer arguments exactly like a plain one.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

/** A path or name as C wants it: a string goes as UTF-8 (koffi adds the NUL), bytes as they are. */
export type PathArg = Buffer | string;

/** A NUL-terminated copy of bytes for C (koffi passes a Buffer's bytes as they are, with no NUL). */
export function cstr(p: PathArg): PathArg {
  if (typeof p === 'string') return p;
  const b = Buffer.allocUnsafe(p.length + 1);
  p.copy(b);
  b[p.length] = 0;
  return b;
}

/** errno of the last call on this thread. */
export const errno = (): number => koffi.errno();

export const openat = libc.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)');
export const statx = libc.func('int statx(int dirfd, const char *path, int flags, uint32_t mask, _Out_ uint8_t *buf)');
export const mkdirat = libc.func('int mkdirat(int dirfd, const char *path, uint32_t mode)');
export const mknodat = libc.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)');
export const symlinkat = libc.func('int symlinkat(const char *target, int dirfd, const char *path)');
export const readlinkat = libc.func('intptr_t readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)');
export const unlinkat = libc.func('int unlinkat(int dirfd, const char *path, int flags)');
export const renameat2 = libc.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, uint32_t flags)');
export const linkat = libc.func('int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)');
export const fchownat = libc.func('int fchownat(int dirfd, const char *path, uint32_t uid, uint32_t gid, int flags)');
export const fchmodat = libc.func('int fchmodat(int dirfd, const char *path, uint32_t mode, int flags)');
export const fchmod = libc.func('int fchmod(int fd, uint32_t mode)');
export const utimensat = libc.func('int utimensat(int dirfd, const char *path, const uint8_t *times, int flags)');
export const fallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
export const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');
export const ioctl = libc.func('int ioctl(int fd, unsigned long request, uint8_t *arg)');
export const close = libc.func('int close(int fd)');
export const pread = libc.func('intptr_t pread(int fd, _Out_ uint8_t *buf, size_t count, int64_t offset)');
export const pwrite = libc.func('intptr_t pwrite(int fd, const uint8_t *buf, size_t count, int64_t offset)');
export const write = libc.func('intptr_t write(int fd, const uint8_t *buf, size_t count)');
export const read = libc.func('intptr_t read(int fd, _Out_ uint8_t *buf, size_t count)');
export const schedYield = libc.func('int sched_yield(void)');
export const fsync = libc.func('int fsync(int fd)');
export const fdatasync = libc.func('int fdatasync(int fd)');
export const ftruncate = libc.func('int ftruncate(int fd, int64_t length)');
/** umask(2) of this thread's fs_struct (shared with the process unless unshare(CLONE_FS) was called). */
export const umask = libc.func('uint32_t umask(uint32_t mask)');
export const unshare = libc.func('int unshare(int flags)');
/** _exit(2): ends the process at once, without joining threads (one stuck in a syscall would never join). */
export const exitNow = libc.func('void _exit(int status)');
// struct iovec, registered by name for preadv2: koffi passes a Buffer given as `base` by its address.
koffi.struct('omfs_iovec', { base: 'void *', len: 'size_t' });
export const preadv2 = libc.func('intptr_t preadv2(int fd, const omfs_iovec *iov, int iovcnt, int64_t offset, int flags)');
export const poll = libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)');
export const getdents64 = libc.func('intptr_t getdents64(int fd, _Out_ uint8_t *buf, size_t size)');

export const getxattr = libc.func('intptr_t getxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)');
export const lgetxattr = libc.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)');
export const fgetxattr = libc.func('intptr_t fgetxattr(int fd, const char *name, _Out_ uint8_t *value, size_t size)');
export const listxattr = libc.func('intptr_t listxattr(const char *path, _Out_ uint8_t *list, size_t size)');
export const llistxattr = libc.func('intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)');
export const flistxattr = libc.func('intptr_t flistxattr(int fd, _Out_ uint8_t *list, size_t size)');
export const setxattr = libc.func('int setxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)');
export const lsetxattr = libc.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)');
export const fsetxattr = libc.func('int fsetxattr(int fd, const char *name, const uint8_t *value, size_t size, int flags)');
export const removexattr = libc.func('int removexattr(const char *path, const char *name)');
export const lremovexattr = libc.func('int lremovexattr(const char *path, const char *name)');
export const fremovexattr = libc.func('int fremovexattr(int fd, const char *name)');

const SYS_openat2 = 437;
const SYS_fchmodat2 = 452;
export const openat2 = (dirfd: number, path: PathArg, how: Buffer): number =>
  Number(sysOpenat2(SYS_openat2, dirfd, path, how, how.length));
const sysOpenat2 = libc.func('long syscall(long nr, int dirfd, const char *path, const uint8_t *how, size_t size)');
const SYS_faccessat2 = 439;
/** faccessat2(2) (glibc's faccessat may emulate AT_EACCESS from mode bits; the syscall never does). */
export const faccessat2 = (dirfd: number, path: PathArg, mode: number, flags: number): number =>
  Number(sysFaccessat2(SYS_faccessat2, dirfd, path, mode, flags));
const sysFaccessat2 = libc.func('long syscall(long nr, int dirfd, const char *path, int mode, int flags)');
export const fstatfs = libc.func('int fstatfs(int fd, _Out_ uint8_t *buf)');
export const fchmodat2 = (dirfd: number, path: PathArg, mode: number, flags: number): number =>
  Number(sysFchmodat2(SYS_fchmodat2, dirfd, path, mode, flags));
const sysFchmodat2 = libc.func('long syscall(long nr, int dirfd, const char *path, uint32_t mode, int flags)');

// Per-thread credentials: setfsuid/setfsgid are plain syscalls in glibc, and setgroups through
// syscall(2) skips glibc's broadcast to every thread, so only the calling thread changes.
export const setfsuid = libc.func('int setfsuid(uint32_t uid)');
export const setfsgid = libc.func('int setfsgid(uint32_t gid)');
const SYS_setgroups = process.arch === 'arm64' ? 159 : 116;
const sysSetgroups = libc.func('long syscall(long nr, size_t size, const uint32_t *list)');
export const setgroupsThread = (list: Uint32Array): number => Number(sysSetgroups(SYS_setgroups, list.length, list));
export const setrlimit = libc.func('int setrlimit(int resource, const uint64_t *rlim)');

// The *xattrat calls (Linux 6.13): xattrs of a name relative to a directory fd, symlinks included.
const SYS_setxattrat = 463;
const SYS_getxattrat = 464;
const SYS_listxattrat = 465;
const SYS_removexattrat = 466;
const sysXattrat = libc.func('long syscall(long nr, int dfd, const char *path, uint32_t atFlags, const char *name, uint8_t *args, size_t size)');
const sysListxattrat = libc.func('long syscall(long nr, int dfd, const char *path, uint32_t atFlags, _Out_ uint8_t *list, size_t size)');
const sysRemovexattrat = libc.func('long syscall(long nr, int dfd, const char *path, uint32_t atFlags, const char *name)');
export const getxattrat = (dfd: number, path: PathArg, atFlags: number, name: string, args: Buffer): number =>
  Number(sysXattrat(SYS_getxattrat, dfd, path, atFlags, name, args, args.length));
export const setxattrat = (dfd: number, path: PathArg, atFlags: number, name: string, args: Buffer): number =>
  Number(sysXattrat(SYS_setxattrat, dfd, path, atFlags, name, args, args.length));
export const listxattrat = (dfd: number, path: PathArg, atFlags: number, list: Buffer): number =>
  Number(sysListxattrat(SYS_listxattrat, dfd, path, atFlags, list, list.length));
export const removexattrat = (dfd: number, path: PathArg, atFlags: number, name: string): number =>
  Number(sysRemovexattrat(SYS_removexattrat, dfd, path, atFlags, name));
