// Replies and notifications -> bytes. Every reply starts with fuse_out_header {len, error, unique}.
import {
  ATTR_OUT_SIZE, DIRENT_HEADER_SIZE, DIRENTPLUS_HEADER_SIZE, ENTRY_OUT_SIZE, FILE_LOCK_SIZE, INIT_OUT_SIZE,
  NotifyCode, OPEN_OUT_SIZE, OUT_HEADER_SIZE, STATFS_OUT_SIZE,
} from './abi.js';
import type { FileLock, Timespec } from './decode.js';

export interface Attr {
  /** A bigint when it may exceed 2^53 (cluster inode numbers); a number otherwise. */
  ino: number | bigint; size: number; blocks: number;
  atime: Timespec; mtime: Timespec; ctime: Timespec;
  mode: number; nlink: number; uid: number; gid: number; rdev: number; blksize: number;
}
/** A LOOKUP-style answer. Timeouts are in seconds (fractions allowed). nodeId 0 = negative entry. */
export interface EntryOut { nodeId: number; generation: number; entryTimeout: number; attrTimeout: number; attr: Attr }
export interface AttrOut { attr: Attr; attrTimeout: number }
/** backingId: with FOPEN_PASSTHROUGH, the id FUSE_DEV_IOC_BACKING_OPEN gave for the backing file. */
export interface OpenOut { fh: number; openFlags: number; backingId?: number }
export interface StatfsOut {
  blocks: number; bfree: number; bavail: number; files: number; ffree: number;
  bsize: number; namelen: number; frsize: number;
}
export interface InitOut {
  major: number; minor: number; maxReadahead: number; flags: bigint; maxBackground: number;
  congestionThreshold: number; maxWrite: number; timeGran: number; maxPages: number;
  /** With PASSTHROUGH: how many stacked filesystems may lie below (1 = a plain disk fs). */
  maxStackDepth?: number;
}

/** A name as the kernel takes it: bytes as they are, a string as UTF-8 (names are bytes; see decode.ts). */
const bytesOf = (name: Buffer | string): Buffer => (typeof name === 'string' ? Buffer.from(name) : name);

/** A u64 from a number (exact up to 2^53) or a bigint (inode numbers of a cluster use all 64 bits). */
function putU64(buf: Buffer, at: number, v: number | bigint): void {
  if (typeof v === 'bigint') {
    buf.writeBigUInt64LE(BigInt.asUintN(64, v), at);
    return;
  }
  buf.writeUInt32LE(v >>> 0, at);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000) >>> 0, at + 4);
}
function putI64(buf: Buffer, at: number, v: number): void {
  buf.writeBigInt64LE(BigInt(Math.trunc(v)), at);
}

export function encodeOutHeader(buf: Buffer, len: number, error: number, unique: bigint): void {
  buf.writeUInt32LE(len, 0);
  buf.writeInt32LE(error, 4);
  buf.writeBigUInt64LE(unique, 8);
}

/** A reply of `bodySize` bytes with the header filled in; the caller fills the body at 16. */
export function replyBuffer(unique: bigint, bodySize: number): Buffer {
  const buf = Buffer.alloc(OUT_HEADER_SIZE + bodySize);
  encodeOutHeader(buf, buf.length, 0, unique);
  return buf;
}

/** An error reply: the header alone with -errno. */
export function encodeError(unique: bigint, errno: number): Buffer {
  const buf = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  encodeOutHeader(buf, OUT_HEADER_SIZE, -errno, unique);
  return buf;
}

function splitTimeout(seconds: number): [number, number] {
  const sec = Math.max(0, Math.floor(seconds));
  return [sec, Math.round((seconds - sec) * 1e9) % 1e9];
}

export function writeAttr(buf: Buffer, at: number, a: Attr): void {
  putU64(buf, at, a.ino);
  putU64(buf, at + 8, a.size);
  putU64(buf, at + 16, a.blocks);
  putI64(buf, at + 24, a.atime.sec);
  putI64(buf, at + 32, a.mtime.sec);
  putI64(buf, at + 40, a.ctime.sec);
  buf.writeUInt32LE(a.atime.nsec, at + 48);
  buf.writeUInt32LE(a.mtime.nsec, at + 52);
  buf.writeUInt32LE(a.ctime.nsec, at + 56);
  buf.writeUInt32LE(a.mode, at + 60);
  buf.writeUInt32LE(a.nlink, at + 64);
  buf.writeUInt32LE(a.uid, at + 68);
  buf.writeUInt32LE(a.gid, at + 72);
  buf.writeUInt32LE(a.rdev, at + 76);
  buf.writeUInt32LE(a.blksize, at + 80);
  buf.writeUInt32LE(0, at + 84); // flags (FUSE_ATTR_SUBMOUNT etc.): none
}

export function writeEntryOut(buf: Buffer, at: number, e: EntryOut): void {
  const [es, ens] = splitTimeout(e.entryTimeout);
  const [as, ans] = splitTimeout(e.attrTimeout);
  putU64(buf, at, e.nodeId);
  putU64(buf, at + 8, e.generation);
  putU64(buf, at + 16, es);
  putU64(buf, at + 24, as);
  buf.writeUInt32LE(ens, at + 32);
  buf.writeUInt32LE(ans, at + 36);
  writeAttr(buf, at + 40, e.attr);
}

export function writeOpenOut(buf: Buffer, at: number, o: OpenOut): void {
  putU64(buf, at, o.fh);
  buf.writeUInt32LE(o.openFlags, at + 8);
  buf.writeInt32LE(o.backingId ?? 0, at + 12);
}

export function encodeEntry(unique: bigint, e: EntryOut): Buffer {
  const buf = replyBuffer(unique, ENTRY_OUT_SIZE);
  writeEntryOut(buf, OUT_HEADER_SIZE, e);
  return buf;
}

export function encodeAttr(unique: bigint, a: AttrOut): Buffer {
  const buf = replyBuffer(unique, ATTR_OUT_SIZE);
  const [s, ns] = splitTimeout(a.attrTimeout);
  putU64(buf, 16, s);
  buf.writeUInt32LE(ns, 24);
  writeAttr(buf, 32, a.attr);
  return buf;
}

export function encodeOpen(unique: bigint, o: OpenOut): Buffer {
  const buf = replyBuffer(unique, OPEN_OUT_SIZE);
  writeOpenOut(buf, 16, o);
  return buf;
}

export function encodeCreate(unique: bigint, e: EntryOut, o: OpenOut): Buffer {
  const buf = replyBuffer(unique, ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
  writeEntryOut(buf, 16, e);
  writeOpenOut(buf, 16 + ENTRY_OUT_SIZE, o);
  return buf;
}

/** write_out / getxattr_out / lseek_out style: one number. */
export function encodeWrite(unique: bigint, size: number): Buffer {
  const buf = replyBuffer(unique, 8);
  buf.writeUInt32LE(size, 16);
  return buf;
}
export const encodeXattrSize = encodeWrite;

export function encodeLseek(unique: bigint, offset: number): Buffer {
  const buf = replyBuffer(unique, 8);
  putU64(buf, 16, offset);
  return buf;
}

export function encodeStatfs(unique: bigint, s: StatfsOut): Buffer {
  const buf = replyBuffer(unique, STATFS_OUT_SIZE);
  putU64(buf, 16, s.blocks);
  putU64(buf, 24, s.bfree);
  putU64(buf, 32, s.bavail);
  putU64(buf, 40, s.files);
  putU64(buf, 48, s.ffree);
  buf.writeUInt32LE(s.bsize, 56);
  buf.writeUInt32LE(s.namelen, 60);
  buf.writeUInt32LE(s.frsize, 64);
  return buf; // padding and spare[6] stay zero
}

export function encodeLock(unique: bigint, l: FileLock): Buffer {
  const buf = replyBuffer(unique, FILE_LOCK_SIZE);
  buf.writeBigUInt64LE(l.start, 16);
  buf.writeBigUInt64LE(l.end, 24);
  buf.writeUInt32LE(l.type, 32);
  buf.writeUInt32LE(l.pid, 36);
  return buf;
}

export function encodeInit(unique: bigint, i: InitOut): Buffer {
  const buf = replyBuffer(unique, INIT_OUT_SIZE);
  buf.writeUInt32LE(i.major, 16);
  buf.writeUInt32LE(i.minor, 20);
  buf.writeUInt32LE(i.maxReadahead, 24);
  buf.writeUInt32LE(Number(i.flags & 0xffff_ffffn), 28);
  buf.writeUInt16LE(i.maxBackground, 32);
  buf.writeUInt16LE(i.congestionThreshold, 34);
  buf.writeUInt32LE(i.maxWrite, 36);
  buf.writeUInt32LE(i.timeGran, 40);
  buf.writeUInt16LE(i.maxPages, 44);
  buf.writeUInt16LE(0, 46); // map_alignment
  buf.writeUInt32LE(Number(i.flags >> 32n), 48); // flags2
  buf.writeUInt32LE(i.maxStackDepth ?? 0, 52);
  return buf; // request_timeout, unused: zero
}

const NAME_BYTES_MAX = 1024;

/** d_type of a directory. */
const DT_DIR = 4;
const DT_REG = 8;

/** A zeroed buffer for replies under construction, with its DataView. */
interface Scratch { buf: Buffer; view: DataView }
/** Zeroed scratch buffers given back by finished replies (more than one only while replies are filled concurrently). */
const scratchPool: Scratch[] = [];
const SCRATCH_POOL_MAX = 4;
/** What a finished DirBuffer holds: writing to it is a bug, caught at once. */
const FINISHED = Buffer.alloc(0);
const FINISHED_VIEW = new DataView(FINISHED.buffer, FINISHED.byteOffset, 0);

function takeScratch(length: number): Scratch {
  const s = scratchPool.pop();
  if (s && s.buf.length >= length) return s;
  const buf = Buffer.alloc(Math.max(length, s?.buf.length ?? 0));
  return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length) };
}

function giveBackScratch(s: Scratch): void {
  if (scratchPool.length < SCRATCH_POOL_MAX) scratchPool.push(s);
}

/**
 * READDIR / READDIRPLUS reply body under construction: whole records only, never more than the
 * kernel's size. `add*` return false when the record does not fit, so the filesystem stops and
 * counts a lookup only for entries that were really sent.
 */
export class DirBuffer {
  private buf: Buffer;
  /** Over buf, made with it: a field that changed type later would throw away V8's code for addDirents64. */
  private view: DataView;
  /** Where the kernel's size ends in buf (a scratch buffer from the pool may be longer). */
  private readonly end: number;
  private used = OUT_HEADER_SIZE;
  /** Where the last record's fuse_dirent starts (-1: none yet). */
  private lastAt = -1;
  /** lastCookie, kept by finish() (null until then): the scratch buffer is gone. */
  private finishedCookie: bigint | undefined | null = null;
  constructor(readonly unique: bigint, size: number) {
    this.end = OUT_HEADER_SIZE + size;
    const scratch = takeScratch(this.end);
    this.buf = scratch.buf;
    this.view = scratch.view;
  }
  /** `off` is the cookie the kernel passes back to continue after this entry. */
  add(ino: number | bigint, off: number | bigint, type: number, nameOrText: Buffer | string): boolean {
    const name = bytesOf(nameOrText);
    const nameLen = name.length;
    const rec = (DIRENT_HEADER_SIZE + nameLen + 7) & ~7;
    if (this.used + rec > this.end || nameLen > NAME_BYTES_MAX) return false;
    this.writeDirent(this.used, ino, off, type, name, nameLen);
    this.lastAt = this.used;
    this.used += rec;
    return true;
  }
  addPlus(entry: EntryOut, off: number | bigint, type: number, nameOrText: Buffer | string): boolean {
    const name = bytesOf(nameOrText);
    const nameLen = name.length;
    const rec = (DIRENTPLUS_HEADER_SIZE + nameLen + 7) & ~7;
    if (this.used + rec > this.end || nameLen > NAME_BYTES_MAX) return false;
    writeEntryOut(this.buf, this.used, entry);
    this.writeDirent(this.used + ENTRY_OUT_SIZE, entry.attr.ino, off, type, name, nameLen);
    this.lastAt = this.used + ENTRY_OUT_SIZE;
    this.used += rec;
    return true;
  }
  /**
   * A record copied from `src` without allocating: its ino and off are the 16 little-endian bytes at
   * src[inoAt] (a Linux dirent64 record starts the same way), its name src[nameAt, nameAt+nameLen).
   * With `plus`, a READDIRPLUS record with node id 0: name and type only, as the kernel reads it.
   */
  addCopied(src: Buffer, inoAt: number, type: number, nameAt: number, nameLen: number, plus: boolean): boolean {
    const header = plus ? DIRENTPLUS_HEADER_SIZE : DIRENT_HEADER_SIZE;
    const rec = (header + nameLen + 7) & ~7;
    if (this.used + rec > this.end || nameLen > NAME_BYTES_MAX) return false;
    // A plus record's entry_out stays zero (the buffer is zeroed): node id 0 means "no entry".
    const at = this.used + header - DIRENT_HEADER_SIZE;
    src.copy(this.buf, at, inoAt, inoAt + 16);
    this.buf.writeUInt32LE(nameLen, at + 16);
    this.buf.writeUInt32LE(type, at + 20);
    src.copy(this.buf, at + 24, nameAt, nameAt + nameLen);
    this.lastAt = at;
    this.used += rec;
    return true;
  }
  /**
   * READDIR records for the Linux dirent64 records in src[from, n) (ino u64, off s64, reclen u16,
   * type u8, then the name, NUL-terminated, then padding to reclen that getdents does not write),
   * as many as fit; returns where in src it stopped (n when all fit). One loop with no call per
   * record, moving 4 bytes at a time: a record at a time through addCopied, a cold listing of 3000
   * names spent 2-8 ms converting until V8 had optimized the calls; byte at a time, a 32 KiB reply
   * took 60 us to fill, 4 bytes at a time 20.
   *
   * With `plus`, READDIRPLUS records with node id 0 (name and type only, as the kernel reads
   * them), and it stops before the first directory record: the caller decides whether that one
   * carries attributes.
   */
  addDirents64(src: Buffer, n: number, from = 0, plus = false): number {
    const out = this.buf;
    const dst = this.view;
    const srcView = new DataView(src.buffer, src.byteOffset, src.length);
    // A plus record is an entry_out (left zero: the buffer starts zeroed) and then the dirent.
    const skip = plus ? DIRENTPLUS_HEADER_SIZE - DIRENT_HEADER_SIZE : 0;
    let used = this.used;
    let at = from;
    while (at < n) {
      const reclen = src[at + 16]! | (src[at + 17]! << 8);
      if (reclen < 20 || at + reclen > n) break; // not a record: stop rather than loop or overrun
      if (plus && src[at + 18] === DT_DIR) break;
      // The name ends at its NUL, which is within the record's last 8 bytes (reclen is the name's
      // offset + its length + 1, rounded up to 8). getdents leaves the padding after it as the
      // caller's buffer held it: stale bytes from an earlier call are never part of a name.
      const end = at + reclen;
      let nameEnd = Math.max(at + 19, end - 8);
      while (nameEnd < end && src[nameEnd] !== 0) nameEnd++;
      const nameLen = nameEnd - at - 19;
      const rec = (skip + DIRENT_HEADER_SIZE + nameLen + 7) & ~7;
      if (used + rec > this.end) break;
      // Each byte is written once: padding and high bytes stay 0.
      const d = used + skip;
      for (let i = 0; i < 16; i += 4) dst.setUint32(d + i, srcView.getUint32(at + i, true), true); // ino, off
      out[d + 16] = nameLen & 0xff;
      out[d + 17] = nameLen >> 8;
      out[d + 20] = src[at + 18]!; // type
      let i = 0;
      for (; i + 4 <= nameLen; i += 4) dst.setUint32(d + 24 + i, srcView.getUint32(at + 19 + i, true), true);
      for (; i < nameLen; i++) out[d + 24 + i] = src[at + 19 + i]!;
      this.lastAt = d;
      used += rec;
      at += reclen;
    }
    this.used = used;
    return at;
  }
  /** The cookie of the last record added (the kernel's next READDIR starts there), if any. */
  get lastCookie(): bigint | undefined {
    if (this.finishedCookie !== null) return this.finishedCookie;
    return this.lastAt < 0 ? undefined : this.buf.readBigUInt64LE(this.lastAt + 8);
  }
  /** Bytes left for records. */
  get room(): number {
    return this.end - this.used;
  }
  /** Room for one more record with a name of this many bytes? */
  fits(nameLen: number, plus: boolean): boolean {
    const rec = ((plus ? DIRENTPLUS_HEADER_SIZE : DIRENT_HEADER_SIZE) + nameLen + 7) & ~7;
    return this.used + rec <= this.end;
  }
  get isEmpty(): boolean {
    return this.used === OUT_HEADER_SIZE;
  }
  /**
   * The reply, in a buffer of its own: the scratch buffer is zeroed where it was used and goes
   * back to the pool. A tree walk lists mostly small directories, each in a reply the kernel sized
   * 32 KiB: a zeroed 32 KiB allocation per reply cost about 10 ms of a cold find of 600 directories.
   */
  finish(): Buffer {
    const reply = Buffer.allocUnsafe(this.used);
    this.buf.copy(reply, 0, 0, this.used);
    encodeOutHeader(reply, this.used, 0, this.unique);
    this.finishedCookie = this.lastCookie;
    this.buf.fill(0, 0, this.used);
    giveBackScratch({ buf: this.buf, view: this.view });
    this.buf = FINISHED;
    this.view = FINISHED_VIEW;
    return reply;
  }
  private writeDirent(at: number, ino: number | bigint, off: number | bigint, type: number, name: Buffer, nameLen: number): void {
    putU64(this.buf, at, ino);
    if (typeof off === 'bigint') this.buf.writeBigUInt64LE(off, at + 8);
    else putU64(this.buf, at + 8, off);
    this.buf.writeUInt32LE(nameLen, at + 16);
    this.buf.writeUInt32LE(type, at + 20);
    name.copy(this.buf, at + 24);
    // padding bytes are already zero (Buffer.alloc)
  }
}

/**
 * Runs addDirents64 over made-up records until V8 has compiled its loop (a few ms, once): the
 * first listings of a new daemon then cost what later ones do (a cold listing of 3000 names took
 * 13-15 ms the first time, 7-9 ms after). The records vary as real ones do (every name length, so
 * every branch of the name loops runs; directories among files; plain and plus replies that fill
 * up): a branch the warm-up never took has no type feedback, and the optimized code is thrown away
 * the first time a real listing takes it. For a filesystem that lists with addDirents64.
 */
export function warmUpDirents(): void {
  const records = Buffer.alloc(32 * 1024);
  let at = 0;
  for (let i = 0; ; i++) {
    const nameLen = 1 + (i % 64);
    const reclen = (19 + nameLen + 1 + 7) & ~7;
    if (at + reclen > records.length) break;
    records.writeBigUInt64LE(BigInt(i + 1), at);
    records.writeBigUInt64LE(BigInt(at + reclen), at + 8);
    records.writeUInt16LE(reclen, at + 16);
    records[at + 18] = i % 16 === 15 ? DT_DIR : DT_REG;
    records.fill(0x61 + (i % 26), at + 19, at + 19 + nameLen);
    at += reclen;
  }
  for (let round = 0; round < 20; round++) {
    const plus = round % 2 === 1;
    for (let from = 0; from < at; ) {
      let stop = new DirBuffer(0n, 4096 + (round % 4) * 8192).addDirents64(records, at, from, plus);
      // plus stops before a directory (the caller gives that one attributes): step over it here.
      if (plus && stop < at && records[stop + 18] === DT_DIR) stop += records.readUInt16LE(stop + 16);
      if (stop === from) break; // no progress: never, but the loop must end
      from = stop;
    }
  }
}

// Notifications: unique 0, error = the notify code.
function notifyBuffer(code: number, bodySize: number): Buffer {
  const buf = Buffer.alloc(OUT_HEADER_SIZE + bodySize);
  encodeOutHeader(buf, buf.length, code, 0n);
  return buf;
}

/** off < 0: attributes only; off >= 0: also drop pages [off, off+len), len <= 0 meaning to EOF. */
export function encodeInvalInode(nodeId: number, off: number, len: number): Buffer {
  const buf = notifyBuffer(NotifyCode.INVAL_INODE, 24);
  putU64(buf, 16, nodeId);
  putI64(buf, 24, off);
  putI64(buf, 32, len);
  return buf;
}

export function encodeInvalEntry(parent: number, nameOrText: Buffer | string, flags = 0): Buffer {
  const name = bytesOf(nameOrText);
  const nameLen = name.length;
  const buf = notifyBuffer(NotifyCode.INVAL_ENTRY, 16 + nameLen + 1);
  putU64(buf, 16, parent);
  buf.writeUInt32LE(nameLen, 24);
  buf.writeUInt32LE(flags, 28);
  name.copy(buf, 32); // trailing NUL already zero
  return buf;
}

export function encodeDelete(parent: number, child: number, nameOrText: Buffer | string): Buffer {
  const name = bytesOf(nameOrText);
  const nameLen = name.length;
  const buf = notifyBuffer(NotifyCode.DELETE, 24 + nameLen + 1);
  putU64(buf, 16, parent);
  putU64(buf, 24, child);
  buf.writeUInt32LE(nameLen, 32);
  name.copy(buf, 40);
  return buf;
}
