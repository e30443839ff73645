// fanotify(7) in file-id mode: a watch on a whole filesystem whose events name files by kernel file
// handle (and directory entries by the directory's handle plus the name), never by an open fd. Only
// the pieces mfsd's direct-change watcher needs: init, mark, a non-blocking read of raw events, the
// parse of the info records, and turning a handle back into an inode number (decoded in place for
// the common "inode + generation" handle types, else open_by_handle_at + statx). Layouts from
// include/uapi/linux/fanotify.h and include/linux/exportfs.h (x86_64 and arm64 alike).
import koffi from 'koffi';
import * as c from './libc.js';
import { SysError } from './errors.js';
import { decodeStatx, STATX_BASIC_STATS, STATX_BUFFER_SIZE } from './stat.js';

const libc = koffi.load('libc.so.6');
const fanotify_init = libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)');
const fanotify_mark = libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)');
const read = libc.func('intptr_t read(int fd, _Out_ uint8_t *buf, size_t count)');
const open_by_handle_at = libc.func('int open_by_handle_at(int mount_fd, const uint8_t *handle, int flags)');
const name_to_handle_at = libc.func('int name_to_handle_at(int dirfd, const char *path, _Inout_ uint8_t *handle, _Out_ int *mount_id, int flags)');

/** Event bits (fanotify_event_metadata.mask and fanotify_mark's mask). */
export const FAN_MODIFY = 0x2;
export const FAN_ATTRIB = 0x4;
export const FAN_CLOSE_WRITE = 0x8;
export const FAN_MOVED_FROM = 0x40;
export const FAN_MOVED_TO = 0x80;
export const FAN_CREATE = 0x100;
export const FAN_DELETE = 0x200;
export const FAN_DELETE_SELF = 0x400;
export const FAN_MOVE_SELF = 0x800;
export const FAN_Q_OVERFLOW = 0x4000;
export const FAN_ONDIR = 0x40000000;

/** fanotify_init flags. */
export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_NOTIF = 0x0;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_REPORT_FID = 0x200;
export const FAN_REPORT_DIR_FID = 0x400;
export const FAN_REPORT_NAME = 0x800;
export const FAN_REPORT_TARGET_FID = 0x1000;
export const FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME;

/** fanotify_mark flags. */
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_FILESYSTEM = 0x100;

/** Info record types. */
export const FAN_EVENT_INFO_TYPE_FID = 1;
export const FAN_EVENT_INFO_TYPE_DFID_NAME = 2;
export const FAN_EVENT_INFO_TYPE_DFID = 3;

const EAGAIN = 11;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const AT_EMPTY_PATH = 0x1000;
const AT_SYMLINK_NOFOLLOW = 0x100;
const statBuf = Buffer.alloc(STATX_BUFFER_SIZE);

/** struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32. */
const META = { LEN: 0, METADATA_LEN: 6, MASK: 8, PID: 20, SIZE: 24 } as const;
/** struct fanotify_event_info_fid: header (type u8, pad u8, len u16), fsid (2 x s32), struct file_handle. */
const INFO = { TYPE: 0, LEN: 2, FSID: 4, HANDLE: 12 } as const;
/** struct file_handle: handle_bytes u32, handle_type s32, f_handle[handle_bytes]. */
const FH = { BYTES: 0, TYPE: 4, DATA: 8 } as const;

/** exportfs handle types that carry the inode number itself (include/linux/exportfs.h). */
const FILEID_INO32_GEN = 1;
const FILEID_INO32_GEN_PARENT = 2;
const FILEID_INO64_GEN = 0x81;
const FILEID_INO64_GEN_PARENT = 0x82;

/** One file named by an event: its filesystem, its kernel file handle, and for a DFID_NAME record the name in that directory. */
export interface FidRecord {
  type: number;
  /** f_fsid as 8 raw bytes, read as one little-endian number (compare with fsidOf()). */
  fsid: bigint;
  handleType: number;
  handle: Buffer;
  /** DFID_NAME records only: the entry's name bytes ("." for an event on the directory itself). */
  name?: Buffer;
}

export interface FanEvent { mask: number; pid: number; records: FidRecord[] }

function check(ret: number, syscall: string): number {
  if (ret === -1) throw new SysError(c.errno(), syscall);
  return ret;
}

/** fanotify_init(2); throws SysError (EPERM without CAP_SYS_ADMIN, EINVAL for flags this kernel lacks). */
export function fanotifyInit(flags: number, eventFlags = O_RDONLY | O_CLOEXEC): number {
  return check(fanotify_init(flags, eventFlags), 'fanotify_init');
}

/** fanotify_mark(2) on the object `path` relative to `dirfd` ("" with a directory fd: that directory). */
export function fanotifyMark(fd: number, flags: number, mask: number, dirfd: number, path: string | null): void {
  check(fanotify_mark(fd, flags, BigInt(mask), dirfd, path), 'fanotify_mark');
}

/** One read(2) of whole events into buf: the bytes read, 0 when nothing is queued (non-blocking fd). */
export function readEvents(fd: number, buf: Buffer): number {
  const n = Number(read(fd, buf, buf.length));
  if (n >= 0) return n;
  const e = c.errno();
  if (e === EAGAIN) return 0;
  throw new SysError(e, 'read');
}

/**
 * The events in buf[0, n): every info record parsed, handles and names copied out of buf. Events of
 * process `skipPid` are left out before any record is parsed (a watcher skips its own changes).
 */
export function parseEvents(buf: Buffer, n: number, skipPid = -1): FanEvent[] {
  const out: FanEvent[] = [];
  for (let at = 0, len = 0; at + META.SIZE <= n; at += len) {
    len = buf.readUInt32LE(at + META.LEN);
    if (len < META.SIZE || at + len > n) break; // never happens with a whole read; a guard, not a loop forever
    const pid = buf.readInt32LE(at + META.PID);
    if (pid === skipPid) continue;
    const ev: FanEvent = { mask: buf.readUInt32LE(at + META.MASK), pid, records: [] };
    for (let r = at + buf.readUInt16LE(at + META.METADATA_LEN); r + INFO.HANDLE <= at + len;) {
      const rlen = buf.readUInt16LE(r + INFO.LEN);
      if (rlen < 4) break;
      const type = buf[r + INFO.TYPE]!;
      if (type === FAN_EVENT_INFO_TYPE_FID || type === FAN_EVENT_INFO_TYPE_DFID_NAME || type === FAN_EVENT_INFO_TYPE_DFID) {
        const fh = r + INFO.HANDLE;
        const bytes = buf.readUInt32LE(fh + FH.BYTES);
        const rec: FidRecord = {
          type,
          fsid: buf.readBigUInt64LE(r + INFO.FSID),
          handleType: buf.readInt32LE(fh + FH.TYPE),
          handle: Buffer.from(buf.subarray(fh + FH.DATA, fh + FH.DATA + bytes)),
        };
        if (type === FAN_EVENT_INFO_TYPE_DFID_NAME) {
          const from = fh + FH.DATA + bytes;
          const nul = buf.indexOf(0, from);
          rec.name = Buffer.from(buf.subarray(from, nul < 0 || nul > r + rlen ? r + rlen : nul));
        }
        ev.records.push(rec);
      }
      r += rlen;
    }
    out.push(ev);
  }
  return out;
}

/**
 * The inode number a handle of one of the "inode + generation" types would carry in place (ext2/3/4
 * and xfs use these layouts, and fanotify's own 64-bit encoding for filesystems without export
 * operations). A type number's layout is the filesystem's own business (tmpfs answers type 1 with
 * the generation first), so a caller trusts this only for a (filesystem, type) it has checked
 * against a known inode (handleOf); undefined for other types.
 */
export function inoOfHandle(handleType: number, handle: Buffer): bigint | undefined {
  if ((handleType === FILEID_INO32_GEN || handleType === FILEID_INO32_GEN_PARENT) && handle.length >= 8) return BigInt(handle.readUInt32LE(0));
  if ((handleType === FILEID_INO64_GEN || handleType === FILEID_INO64_GEN_PARENT) && handle.length >= 12) return handle.readBigUInt64LE(0);
  return undefined;
}

/**
 * (dev, ino) of the file a handle names, by open_by_handle_at(2) with O_PATH (CAP_DAC_READ_SEARCH;
 * `mountFd` is any fd on the same filesystem) and statx. undefined when the file is gone (ESTALE)
 * or cannot be opened.
 */
export function statByHandle(mountFd: number, handleType: number, handle: Buffer): { dev: number; ino: bigint } | undefined {
  const fh = Buffer.alloc(FH.DATA + handle.length);
  fh.writeUInt32LE(handle.length, FH.BYTES);
  fh.writeInt32LE(handleType, FH.TYPE);
  handle.copy(fh, FH.DATA);
  const fd = open_by_handle_at(mountFd, fh, O_PATH | O_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    if (c.statx(fd, '', AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, statBuf) === -1) return undefined;
    const st = decodeStatx(statBuf);
    return { dev: st.dev, ino: st.ino };
  } finally {
    c.close(fd);
  }
}

const MAX_HANDLE_SZ = 128;
const AT_HANDLE_FID = 0x200;
const EINVAL = 22;

/**
 * The file handle of the file `fd` is open on, as fanotify reports it (name_to_handle_at with
 * AT_HANDLE_FID, Linux 6.5; a plain handle on older kernels, the same for filesystems that can
 * decode handles). Throws SysError (EOPNOTSUPP: the filesystem has no handles).
 */
export function handleOf(fd: number): { handleType: number; handle: Buffer } {
  const fh = Buffer.alloc(FH.DATA + MAX_HANDLE_SZ);
  const mountId = new Int32Array(1);
  for (const flags of [AT_EMPTY_PATH | AT_HANDLE_FID, AT_EMPTY_PATH]) {
    fh.writeUInt32LE(MAX_HANDLE_SZ, FH.BYTES);
    if (name_to_handle_at(fd, '', fh, mountId, flags) === 0) {
      const bytes = fh.readUInt32LE(FH.BYTES);
      return { handleType: fh.readInt32LE(FH.TYPE), handle: Buffer.from(fh.subarray(FH.DATA, FH.DATA + bytes)) };
    }
    if (c.errno() !== EINVAL) break;
  }
  throw new SysError(c.errno(), 'name_to_handle_at');
}

/** f_fsid of the filesystem `fd` is on, as fanotify reports it in FidRecord.fsid. */
export function fsidOf(fd: number): bigint {
  // struct statfs on 64-bit Linux: seven 8-byte words, then f_fsid (2 x s32).
  const b = Buffer.alloc(120);
  check(c.fstatfs(fd, b), 'fstatfs');
  return b.readBigUInt64LE(56);
}

export function closeFd(fd: number): void {
  c.close(fd);
}
