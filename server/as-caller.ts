// Acting as the caller: every syscall whose outcome depends on who asks runs with the caller's
// filesystem uid, gid and groups (sys.asCaller, this thread only), so the kernel applies its own
// rules: POSIX ACLs, the sticky bit, protected_hardlinks, the owner rules of chmod/chown/utimes,
// setgid directories, default ACLs. A root daemon that imitated them from mode bits got ACLs
// wrong, and creating as root then chowning by name let a caller swap the name in between.
//
// Everything inside fn must be synchronous: other requests run at every await, and they must not
// inherit this caller's credentials or umask. Root (uid 0, gid 0) runs as the daemon itself.
//
// The sync functions here run on the event loop whatever the export; the *At versions take the
// export and run through its io (export-io.ts), on its own threads when it is off-thread, where
// the same credentials are set on that thread.
import * as sys from '../sys/index.js';
import type { Caller } from './permissions.js';
import type { ExportCtx } from './local-fs.js';

export function asCaller<T>(c: Caller, fn: () => T): T {
  return sys.asCaller(c, fn);
}

/**
 * fn as the caller with the request's umask: a file made by mkdirat/openat(O_CREAT)/mknodat gets
 * its owner, group, mode and default ACL exactly as the caller's own syscall would give it. The
 * umask is process-wide; files the daemon itself creates meanwhile on other threads (the handle
 * database) pass explicit modes inside a 0700 state directory, so a caller's umask cannot widen them.
 */
export function asCreator<T>(c: Caller, umask: number, fn: () => T): T {
  const old = process.umask(umask & 0o777);
  try {
    return sys.asCaller(c, fn);
  } finally {
    process.umask(old);
  }
}

/**
 * Throws EACCES (or the kernel's errno) unless the caller may access the file fd is on (any fd,
 * O_PATH included) for `mask` (R_OK | W_OK | X_OK): faccessat2 with AT_EACCESS checks the
 * filesystem credentials asCaller set, ACLs included.
 */
export function checkAccess(fd: number, c: Caller, mask: number): void {
  asCaller(c, () => sys.faccessat2(fd, '', mask, sys.AT_EACCESS | sys.AT_EMPTY_PATH));
}

/** checkAccess as a question: whether the caller may access the file for `mask`. */
export function mayAccess(fd: number, c: Caller, mask: number): boolean {
  try {
    checkAccess(fd, c, mask);
    return true;
  } catch {
    return false;
  }
}

/** checkAccess through the export's io. */
export async function checkAccessAt(exp: ExportCtx, fd: number, c: Caller, mask: number): Promise<void> {
  await exp.io.call(c, 'faccessat2', fd, '', mask, sys.AT_EACCESS | sys.AT_EMPTY_PATH);
}

/** mayAccess through the export's io. */
export async function mayAccessAt(exp: ExportCtx, fd: number, c: Caller, mask: number): Promise<boolean> {
  try {
    await checkAccessAt(exp, fd, c, mask);
    return true;
  } catch {
    return false;
  }
}
