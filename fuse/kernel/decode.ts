// Bytes from /dev/fuse -> a typed Request. Every bounds check lives here, so the session and the
// filesystem only ever see well-formed requests; a malformed frame becomes a DecodeError that
// still carries the unique (when the header was readable) so the session can answer it.
import { IN_HEADER_SIZE, Opcode, type OpcodeName } from './abi.js';

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeId: number;
  uid: number;
  gid: number;
  pid: number;
  /** Length of trailing extensions in bytes (total_extlen x 8). */
  extLen: number;
}

export interface FileLock { start: bigint; end: bigint; type: number; pid: number }

interface Base { header: InHeader }
export type Request = Base & (
  | { op: 'INIT'; major: number; minor: number; maxReadahead: number; flags: bigint }
  | { op: 'LOOKUP'; name: Buffer }
  | { op: 'FORGET'; nlookup: number }
  | { op: 'BATCH_FORGET'; forgets: Array<{ nodeId: number; nlookup: number }> }
  | { op: 'GETATTR'; getattrFlags: number; fh: number }
  | { op: 'SETATTR'; valid: number; fh: number; size: number; lockOwner: bigint; atime: Timespec; mtime: Timespec; ctime: Timespec; mode: number; uid: number; gid: number }
  | { op: 'READLINK' }
  | { op: 'SYMLINK'; name: Buffer; target: Buffer }
  | { op: 'MKNOD'; name: Buffer; mode: number; rdev: number; umask: number }
  | { op: 'MKDIR'; name: Buffer; mode: number; umask: number }
  | { op: 'UNLINK' | 'RMDIR'; name: Buffer }
  | { op: 'RENAME'; newDir: number; name: Buffer; newName: Buffer; flags: number }
  | { op: 'LINK'; oldNodeId: number; name: Buffer }
  | { op: 'OPEN' | 'OPENDIR'; flags: number; openFlags: number }
  | { op: 'READ'; fh: number; offset: number; size: number; readFlags: number; lockOwner: bigint; flags: number }
  /** cookie: the whole u64 the filesystem gave as a dirent's `off` (a backing fs's d_off may use all 63 bits). */
  | { op: 'READDIR' | 'READDIRPLUS'; fh: number; offset: number; cookie: bigint; size: number; readFlags: number; lockOwner: bigint; flags: number }
  | { op: 'WRITE'; fh: number; offset: number; writeFlags: number; lockOwner: bigint; flags: number; data: Buffer }
  | { op: 'STATFS' | 'DESTROY' }
  | { op: 'RELEASE' | 'RELEASEDIR'; fh: number; flags: number; releaseFlags: number; lockOwner: bigint }
  | { op: 'FSYNC' | 'FSYNCDIR'; fh: number; fsyncFlags: number }
  | { op: 'SETXATTR'; name: string; value: Buffer; flags: number }
  | { op: 'GETXATTR'; name: string; size: number }
  | { op: 'LISTXATTR'; size: number }
  | { op: 'REMOVEXATTR'; name: string }
  | { op: 'FLUSH'; fh: number; lockOwner: bigint }
  | { op: 'GETLK' | 'SETLK' | 'SETLKW'; fh: number; owner: bigint; lock: FileLock; lkFlags: number }
  | { op: 'ACCESS'; mask: number }
  | { op: 'CREATE'; name: Buffer; flags: number; mode: number; umask: number; openFlags: number }
  | { op: 'INTERRUPT'; targetUnique: bigint }
  | { op: 'FALLOCATE'; fh: number; offset: number; length: number; mode: number }
  | { op: 'LSEEK'; fh: number; offset: number; whence: number }
  | { op: 'COPY_FILE_RANGE'; fhIn: number; offIn: number; nodeIdOut: number; fhOut: number; offOut: number; len: number; flags: number }
  | { op: 'UNKNOWN'; opcode: number }
);
type Narrow<R, Op> = R extends { op: infer O } ? ([Extract<O, Op>] extends [never] ? never : R & { op: Extract<O, Op> }) : never;
/** The request variant(s) for these op names (variants shared by two ops are narrowed too). */
export type RequestOf<Op extends Request['op']> = Narrow<Request, Op>;

export interface Timespec { sec: number; nsec: number }

export type DecodeErrorKind = 'short-header' | 'length-mismatch' | 'short-body' | 'missing-nul' | 'bad-count';

/** A frame that cannot be decoded. `unique` is set when the header was readable. */
export class DecodeError extends Error {
  constructor(readonly kind: DecodeErrorKind, readonly unique: bigint | undefined, detail: string) {
    super(`FUSE decode: ${kind}: ${detail}`);
    this.name = 'DecodeError';
  }
}

const opNameByCode = new Map<number, OpcodeName>(Object.entries(Opcode).map(([k, v]) => [v, k as OpcodeName]));
export function opcodeName(code: number): string {
  return opNameByCode.get(code) ?? `OP${code}`;
}

/** u64 as a JS number: node ids, handles, offsets and sizes all stay far below 2^53. */
function u64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}
function i64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readInt32LE(at + 4) * 0x1_0000_0000;
}

export function decodeHeader(frame: Buffer): InHeader {
  if (frame.length < IN_HEADER_SIZE) throw new DecodeError('short-header', undefined, `${frame.length} < ${IN_HEADER_SIZE} bytes`);
  const header: InHeader = {
    len: frame.readUInt32LE(0),
    opcode: frame.readUInt32LE(4),
    unique: frame.readBigUInt64LE(8),
    nodeId: u64(frame, 16),
    uid: frame.readUInt32LE(24),
    gid: frame.readUInt32LE(28),
    pid: frame.readUInt32LE(32),
    extLen: frame.readUInt16LE(36) * 8,
  };
  if (header.len !== frame.length) {
    throw new DecodeError('length-mismatch', header.unique, `header says ${header.len}, frame has ${frame.length}`);
  }
  if (header.extLen > header.len - IN_HEADER_SIZE) {
    throw new DecodeError('length-mismatch', header.unique, `extensions ${header.extLen} exceed body`);
  }
  return header;
}

/** A cursor over the body that throws typed errors instead of reading past the end. */
class Body {
  private at = 0;
  constructor(readonly buf: Buffer, private readonly unique: bigint, private readonly op: string) {}
  need(size: number): number {
    if (this.at + size > this.buf.length) {
      throw new DecodeError('short-body', this.unique, `${this.op} needs ${this.at + size} body bytes, has ${this.buf.length}`);
    }
    const start = this.at;
    this.at += size;
    return start;
  }
  /**
   * A NUL-terminated file name, as the bytes the caller gave: Linux names are bytes, not text. A
   * view into the frame, which is this request's own buffer (device.ts copies each frame out).
   */
  bytes(): Buffer {
    const end = this.buf.indexOf(0, this.at);
    if (end < 0) throw new DecodeError('missing-nul', this.unique, `${this.op}: name without NUL`);
    const b = this.buf.subarray(this.at, end);
    this.at = end + 1;
    return b;
  }
  /** A NUL-terminated xattr name: text by convention (namespace prefix + name). */
  cstring(): string {
    return this.bytes().toString('utf8');
  }
  rest(): Buffer {
    const r = this.buf.subarray(this.at);
    this.at = this.buf.length;
    return r;
  }
}

export function decodeRequest(frame: Buffer): Request {
  const header = decodeHeader(frame);
  const name = opNameByCode.get(header.opcode);
  const b = new Body(frame.subarray(IN_HEADER_SIZE, header.len - header.extLen), header.unique, name ?? String(header.opcode));
  const d = b.buf;
  switch (name) {
    case 'INIT': {
      const o = b.need(16); // major, minor, max_readahead, flags; then flags2 (7.36+)
      let flags = BigInt(d.readUInt32LE(o + 12));
      if (d.length >= 20) flags |= BigInt(d.readUInt32LE(16)) << 32n;
      return { header, op: 'INIT', major: d.readUInt32LE(o), minor: d.readUInt32LE(o + 4), maxReadahead: d.readUInt32LE(o + 8), flags };
    }
    case 'LOOKUP': case 'UNLINK': case 'RMDIR': return { header, op: name, name: b.bytes() };
    case 'REMOVEXATTR': return { header, op: name, name: b.cstring() };
    case 'FORGET': return { header, op: 'FORGET', nlookup: u64(d, b.need(8)) };
    case 'BATCH_FORGET': {
      const count = d.readUInt32LE(b.need(8));
      if (count * 16 > d.length - 8) throw new DecodeError('bad-count', header.unique, `BATCH_FORGET count ${count} exceeds body`);
      const forgets = [];
      for (let i = 0; i < count; i++) {
        const o = b.need(16);
        forgets.push({ nodeId: u64(d, o), nlookup: u64(d, o + 8) });
      }
      return { header, op: 'BATCH_FORGET', forgets };
    }
    case 'GETATTR': {
      const o = b.need(16);
      return { header, op: 'GETATTR', getattrFlags: d.readUInt32LE(o), fh: u64(d, o + 8) };
    }
    case 'SETATTR': {
      const o = b.need(88);
      return {
        header, op: 'SETATTR', valid: d.readUInt32LE(o), fh: u64(d, o + 8), size: u64(d, o + 16),
        lockOwner: d.readBigUInt64LE(o + 24),
        atime: { sec: i64(d, o + 32), nsec: d.readUInt32LE(o + 56) },
        mtime: { sec: i64(d, o + 40), nsec: d.readUInt32LE(o + 60) },
        ctime: { sec: i64(d, o + 48), nsec: d.readUInt32LE(o + 64) },
        mode: d.readUInt32LE(o + 68), uid: d.readUInt32LE(o + 76), gid: d.readUInt32LE(o + 80),
      };
    }
    case 'READLINK': case 'STATFS': case 'DESTROY': return { header, op: name };
    case 'SYMLINK': { const n = b.bytes(); return { header, op: 'SYMLINK', name: n, target: b.bytes() }; }
    case 'MKNOD': {
      const o = b.need(16);
      return { header, op: 'MKNOD', mode: d.readUInt32LE(o), rdev: d.readUInt32LE(o + 4), umask: d.readUInt32LE(o + 8), name: b.bytes() };
    }
    case 'MKDIR': {
      const o = b.need(8);
      return { header, op: 'MKDIR', mode: d.readUInt32LE(o), umask: d.readUInt32LE(o + 4), name: b.bytes() };
    }
    case 'RENAME': case 'RENAME2': {
      const o = b.need(name === 'RENAME' ? 8 : 16);
      const flags = name === 'RENAME2' ? d.readUInt32LE(o + 8) : 0;
      const oldName = b.bytes();
      return { header, op: 'RENAME', newDir: u64(d, o), name: oldName, newName: b.bytes(), flags };
    }
    case 'LINK': { const o = b.need(8); return { header, op: 'LINK', oldNodeId: u64(d, o), name: b.bytes() }; }
    case 'OPEN': case 'OPENDIR': {
      const o = b.need(8);
      return { header, op: name, flags: d.readUInt32LE(o), openFlags: d.readUInt32LE(o + 4) };
    }
    case 'READ': {
      const o = b.need(40);
      return {
        header, op: name, fh: u64(d, o), offset: u64(d, o + 8), size: d.readUInt32LE(o + 16),
        readFlags: d.readUInt32LE(o + 20), lockOwner: d.readBigUInt64LE(o + 24), flags: d.readUInt32LE(o + 32),
      };
    }
    case 'READDIR': case 'READDIRPLUS': {
      const o = b.need(40);
      return {
        header, op: name, fh: u64(d, o), offset: u64(d, o + 8), cookie: d.readBigUInt64LE(o + 8), size: d.readUInt32LE(o + 16),
        readFlags: d.readUInt32LE(o + 20), lockOwner: d.readBigUInt64LE(o + 24), flags: d.readUInt32LE(o + 32),
      };
    }
    case 'WRITE': {
      const o = b.need(40);
      const size = d.readUInt32LE(o + 16);
      const data = b.rest();
      if (data.length !== size) throw new DecodeError('length-mismatch', header.unique, `WRITE size ${size}, payload ${data.length}`);
      return {
        header, op: 'WRITE', fh: u64(d, o), offset: u64(d, o + 8), writeFlags: d.readUInt32LE(o + 20),
        lockOwner: d.readBigUInt64LE(o + 24), flags: d.readUInt32LE(o + 32), data,
      };
    }
    case 'RELEASE': case 'RELEASEDIR': {
      const o = b.need(24);
      return { header, op: name, fh: u64(d, o), flags: d.readUInt32LE(o + 8), releaseFlags: d.readUInt32LE(o + 12), lockOwner: d.readBigUInt64LE(o + 16) };
    }
    case 'FSYNC': case 'FSYNCDIR': {
      const o = b.need(16);
      return { header, op: name, fh: u64(d, o), fsyncFlags: d.readUInt32LE(o + 8) };
    }
    case 'SETXATTR': {
      // Without SETXATTR_EXT the struct is {size, flags}; value follows the name.
      const o = b.need(8);
      const size = d.readUInt32LE(o);
      const n = b.cstring();
      const value = b.rest();
      if (value.length < size) throw new DecodeError('short-body', header.unique, `SETXATTR value ${value.length} < ${size}`);
      return { header, op: 'SETXATTR', name: n, value: value.subarray(0, size), flags: d.readUInt32LE(o + 4) };
    }
    case 'GETXATTR': { const o = b.need(8); return { header, op: 'GETXATTR', size: d.readUInt32LE(o), name: b.cstring() }; }
    case 'LISTXATTR': { const o = b.need(8); return { header, op: 'LISTXATTR', size: d.readUInt32LE(o) }; }
    case 'FLUSH': { const o = b.need(24); return { header, op: 'FLUSH', fh: u64(d, o), lockOwner: d.readBigUInt64LE(o + 16) }; }
    case 'GETLK': case 'SETLK': case 'SETLKW': {
      const o = b.need(48);
      return {
        header, op: name, fh: u64(d, o), owner: d.readBigUInt64LE(o + 8),
        lock: { start: d.readBigUInt64LE(o + 16), end: d.readBigUInt64LE(o + 24), type: d.readUInt32LE(o + 32), pid: d.readUInt32LE(o + 36) },
        lkFlags: d.readUInt32LE(o + 40),
      };
    }
    case 'ACCESS': return { header, op: 'ACCESS', mask: d.readUInt32LE(b.need(8)) };
    case 'CREATE': {
      const o = b.need(16);
      return {
        header, op: 'CREATE', flags: d.readUInt32LE(o), mode: d.readUInt32LE(o + 4), umask: d.readUInt32LE(o + 8),
        openFlags: d.readUInt32LE(o + 12), name: b.bytes(),
      };
    }
    case 'INTERRUPT': return { header, op: 'INTERRUPT', targetUnique: d.readBigUInt64LE(b.need(8)) };
    case 'FALLOCATE': {
      const o = b.need(32);
      return { header, op: 'FALLOCATE', fh: u64(d, o), offset: u64(d, o + 8), length: u64(d, o + 16), mode: d.readUInt32LE(o + 24) };
    }
    case 'LSEEK': {
      const o = b.need(24);
      return { header, op: 'LSEEK', fh: u64(d, o), offset: i64(d, o + 8), whence: d.readUInt32LE(o + 16) };
    }
    case 'COPY_FILE_RANGE': {
      const o = b.need(56);
      return {
        header, op: 'COPY_FILE_RANGE', fhIn: u64(d, o), offIn: u64(d, o + 8), nodeIdOut: u64(d, o + 16),
        fhOut: u64(d, o + 24), offOut: u64(d, o + 32), len: u64(d, o + 40), flags: u64(d, o + 48),
      };
    }
    default: return { header, op: 'UNKNOWN', opcode: header.opcode };
  }
}
