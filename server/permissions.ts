// mfsd's own permission rules: only those the kernel cannot apply for it. Every other check a
// caller is subject to (search on each directory, read/write on open, write + search and the sticky
// bit on namespace changes, the owner rules of chmod/chown/utimes/ACLs, protected_hardlinks, POSIX
// ACLs everywhere) is the kernel's own: mfsd runs that syscall with the caller's filesystem
// credentials (as-caller.ts), so a peer acting as uid U gets exactly what uid U gets on the bare
// directory. What stays here:
//  - root_squash (squash): NFS's rule. A squashed export maps uid 0 to nobody (65534), a primary
//    gid 0 to nogroup (65534), and drops group 0 from the supplementary groups, so neither root's
//    uid nor root's group grants anything on a squashed export ({uid 1000, gid 0} is squashed too,
//    as knfsd's root_squash squashes any gid 0). Other supplementary groups are kept, as in NFS.
//  - set-id bits cleared by a write (modeAfterWrite): data is written on libuv's thread pool, which
//    runs as root (CAP_FSETID), so the kernel would keep the bits it drops for the caller.
//  - root-only operations that setfsuid does not take away from a root daemon: device nodes
//    (CAP_MKNOD), trusted.* and security.* xattrs (CAP_SYS_ADMIN); see ops-names and ops-extra.
export interface Caller { uid: number; gid: number; groups: number[]; pid: number }
export interface Owned { mode: number; uid: number; gid: number }

export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const NOBODY = 65534;
export const NOGROUP = 65534;

export const isRoot = (c: Caller): boolean => c.uid === 0;

export function inGroup(c: Caller, gid: number): boolean {
  return c.gid === gid || c.groups.includes(gid);
}

/** Root squash (see the header): uid 0, gid 0 and group 0 grant nothing. */
export function squash(c: Caller): Caller {
  return {
    uid: c.uid === 0 ? NOBODY : c.uid,
    gid: c.gid === 0 ? NOGROUP : c.gid,
    groups: c.groups.filter((g) => g !== 0),
    pid: c.pid,
  };
}

/**
 * Mode after a write by `c`, or null when unchanged: the kernel's rule for a writer without
 * CAP_FSETID (setattr_should_drop_suidgid): on a regular file setuid always goes, setgid goes when
 * group-execute is set or the writer is not in the file's group.
 */
export function modeAfterWrite(st: Owned, c: Caller): number | null {
  if (isRoot(c) || (st.mode & S_IFMT) !== S_IFREG) return null;
  const before = st.mode & 0o7777;
  let bits = before & ~S_ISUID;
  if ((bits & S_ISGID) !== 0 && ((bits & 0o010) !== 0 || !inGroup(c, st.gid))) bits &= ~S_ISGID;
  return bits === before ? null : bits;
}
