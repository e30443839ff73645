// Encoder output against golden bytes (fuse.h 7.45 layouts, little-endian).
import { describe, expect, test } from 'vitest';
import {
  type Attr, DirBuffer, encodeAttr, encodeDelete, encodeEntry, encodeError, encodeInit, encodeInvalEntry,
  encodeInvalInode, encodeOpen, InitFlag,
} from '../../fuse/kernel/index.js';
import { bytes, cstr, u16, u32, u64, zeros } from './bytes.js';

const attr: Attr = {
  ino: 77, size: 5000, blocks: 16,
  atime: { sec: 1700000000, nsec: 1 }, mtime: { sec: 1700000001, nsec: 2 }, ctime: { sec: 1700000002, nsec: 3 },
  mode: 0o100644, nlink: 1, uid: 1000, gid: 100, rdev: 0, blksize: 4096,
};
const attrBytes = [
  u64(77), // ino
  u64(5000), // size
  u64(16), // blocks
  u64(1700000000), // atime
  u64(1700000001), // mtime
  u64(1700000002), // ctime
  u32(1), // atimensec
  u32(2), // mtimensec
  u32(3), // ctimensec
  u32(0o100644), // mode
  u32(1), // nlink
  u32(1000), // uid
  u32(100), // gid
  u32(0), // rdev
  u32(4096), // blksize
  u32(0), // flags
];
const outHeader = (len: number, error: number, unique: number): number[][] => [
  u32(len), // len
  u32(error >>> 0), // error (negative errno, or notify code)
  u64(unique), // unique
];

describe('replies', () => {
  test('error reply is the header alone', () => {
    expect(encodeError(8n, 2)).toEqual(bytes(...outHeader(16, -2, 8)));
  });

  test('entry_out (128 bytes after the header)', () => {
    const got = encodeEntry(4n, { nodeId: 5, generation: 0, entryTimeout: 1.5, attrTimeout: 3600, attr });
    expect(got).toEqual(bytes(
      ...outHeader(144, 0, 4),
      u64(5), // nodeid
      u64(0), // generation
      u64(1), // entry_valid (s)
      u64(3600), // attr_valid (s)
      u32(500_000_000), // entry_valid_nsec
      u32(0), // attr_valid_nsec
      ...attrBytes, // attr
    ));
  });

  test('a 64-bit inode number (a bigint, past 2^53) keeps every bit, in attrs and dirents', () => {
    const big = (1n << 63n) | (40000n << 48n) | 12345n;
    expect(encodeAttr(6n, { attr: { ...attr, ino: big }, attrTimeout: 1 }).subarray(32, 40)).toEqual(bytes(u64(big)));
    const dir = new DirBuffer(7n, 64);
    expect(dir.add(big, 1, 8, 'x')).toBe(true);
    expect(dir.finish().subarray(16, 24)).toEqual(bytes(u64(big)));
  });

  test('attr_out (104 bytes after the header)', () => {
    expect(encodeAttr(6n, { attr, attrTimeout: 1 })).toEqual(bytes(
      ...outHeader(120, 0, 6),
      u64(1), // attr_valid
      u32(0), // attr_valid_nsec
      u32(0), // dummy
      ...attrBytes, // attr
    ));
  });

  test('open_out', () => {
    expect(encodeOpen(10n, { fh: 3, openFlags: 2 })).toEqual(bytes(
      ...outHeader(32, 0, 10),
      u64(3), // fh
      u32(2), // open_flags: FOPEN_KEEP_CACHE
      u32(0), // backing_id
    ));
  });

  test('init_out with flags2 in its own word', () => {
    const flags = InitFlag.ASYNC_READ | InitFlag.MAX_PAGES | InitFlag.INIT_EXT | InitFlag.DIRECT_IO_ALLOW_MMAP;
    const got = encodeInit(2n, {
      major: 7, minor: 45, maxReadahead: 131072, flags, maxBackground: 64, congestionThreshold: 48,
      maxWrite: 1048576, timeGran: 1, maxPages: 256,
    });
    expect(got).toEqual(bytes(
      ...outHeader(80, 0, 2),
      u32(7), // major
      u32(45), // minor
      u32(131072), // max_readahead
      u32(1 | (1 << 22) | (1 << 30)), // flags
      u16(64), // max_background
      u16(48), // congestion_threshold
      u32(1048576), // max_write
      u32(1), // time_gran
      u16(256), // max_pages
      u16(0), // map_alignment
      u32(1 << 4), // flags2: DIRECT_IO_ALLOW_MMAP (bit 36)
      u32(0), // max_stack_depth
      u16(0), // request_timeout
      zeros(22), // unused
    ));
  });
});

describe('directory records', () => {
  test('dirent is padded to 8 bytes; records that do not fit are refused', () => {
    const dir = new DirBuffer(12n, 64);
    expect(dir.add(77, 1, 8, 'abc')).toBe(true); // 24 + 3 -> 32 bytes
    expect(dir.add(78, 2, 4, 'sub-dir')).toBe(true); // 24 + 7 -> 32 bytes: exactly full
    expect(dir.add(79, 3, 8, 'x')).toBe(false);
    expect(dir.finish()).toEqual(bytes(
      ...outHeader(80, 0, 12),
      u64(77), // ino
      u64(1), // off (next cookie)
      u32(3), // namelen
      u32(8), // type: DT_REG
      [...Buffer.from('abc')], zeros(5), // name + padding
      u64(78), // ino
      u64(2), // off
      u32(7), // namelen
      u32(4), // type: DT_DIR
      [...Buffer.from('sub-dir')], zeros(1), // name + padding
    ));
  });

  test('a reply filled after a larger one has none of its bytes (scratch buffers are reused)', () => {
    const big = new DirBuffer(1n, 4096);
    while (big.add(0xffff_ffff, 0xffff_ffff, 0xff, 'y'.repeat(250))) { /* fill it */ }
    big.finish();
    const dir = new DirBuffer(12n, 256);
    expect(dir.add(77, 1, 8, 'abc')).toBe(true);
    expect(dir.addCopied(Buffer.from([...u64(5), ...u64(6), 0, 0, 0, ...Buffer.from('z')]), 0, 8, 19, 1, true)).toBe(true);
    expect(dir.finish()).toEqual(bytes(
      ...outHeader(16 + 32 + 160, 0, 12),
      u64(77), u64(1), u32(3), u32(8), [...Buffer.from('abc')], zeros(5),
      zeros(128), // a plus record's entry_out: node id 0, all zero
      u64(5), u64(6), u32(1), u32(8), [...Buffer.from('z')], zeros(7),
    ));
  });

  test('direntplus is entry_out + dirent, name at 152, padded', () => {
    const dir = new DirBuffer(14n, 4096);
    expect(dir.addPlus({ nodeId: 9, generation: 0, entryTimeout: 1, attrTimeout: 1, attr }, 1, 8, 'f')).toBe(true);
    expect(dir.finish()).toEqual(bytes(
      ...outHeader(16 + 160, 0, 14),
      u64(9), u64(0), u64(1), u64(1), u32(0), u32(0), ...attrBytes, // entry_out
      u64(77), // dirent.ino (= attr.ino)
      u64(1), // off
      u32(1), // namelen
      u32(8), // type
      [...Buffer.from('f')], zeros(7), // name + padding to 160
    ));
  });
});

describe('notifications (unique 0, error = code)', () => {
  test('INVAL_INODE', () => {
    expect(encodeInvalInode(5, -1, 0)).toEqual(bytes(
      ...outHeader(40, 2, 0),
      u64(5), // ino
      u64(-1n), // off: attributes only
      u64(0), // len
    ));
  });

  test('INVAL_ENTRY has exact length with a trailing NUL', () => {
    expect(encodeInvalEntry(1, 'name')).toEqual(bytes(
      ...outHeader(37, 3, 0),
      u64(1), // parent
      u32(4), // namelen
      u32(0), // flags
      cstr('name'), // name + NUL
    ));
  });

  test('DELETE', () => {
    expect(encodeDelete(1, 7, 'x')).toEqual(bytes(
      ...outHeader(42, 6, 0),
      u64(1), // parent
      u64(7), // child
      u32(1), // namelen
      u32(0), // padding
      cstr('x'), // name + NUL
    ));
  });
});

describe('names are bytes', () => {
  const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not UTF-8

  test('a dirent carries the name byte for byte, with a 64-bit cookie', () => {
    const dir = new DirBuffer(20n, 64);
    expect(dir.add(5, 0x7fff_ffff_ffff_fff0n, 8, latin1)).toBe(true);
    const out = dir.finish();
    expect(out.readBigUInt64LE(16 + 8)).toBe(0x7fff_ffff_ffff_fff0n);
    expect(out.readUInt32LE(16 + 16)).toBe(4);
    expect(out.subarray(16 + 24, 16 + 28)).toEqual(latin1);
  });

  test('INVAL_ENTRY and DELETE carry the name byte for byte', () => {
    const inval = encodeInvalEntry(1, latin1);
    expect(inval.readUInt32LE(24)).toBe(4);
    expect(inval.subarray(32, 37)).toEqual(Buffer.concat([latin1, Buffer.from([0])]));
    const del = encodeDelete(1, 2, latin1);
    expect(del.readUInt32LE(32)).toBe(4);
    expect(del.subarray(40, 45)).toEqual(Buffer.concat([latin1, Buffer.from([0])]));
  });
});

describe('DirBuffer.addDirents64', () => {
  /**
   * Linux dirent64 records (ino, off, reclen, type, name, NUL, padding to 8) for these names. The
   * kernel does not write the padding: it keeps what the buffer held before, here `stale`.
   */
  function dirents64(names: Buffer[], stale = 0): Buffer {
    const records = names.map((name, i) => {
      const rec = Buffer.alloc((19 + name.length + 1 + 7) & ~7, stale);
      rec[19 + name.length] = 0;
      rec.writeBigUInt64LE(BigInt(1000 + i) << 20n, 0); // large inode numbers: all 8 bytes matter
      rec.writeBigInt64LE(BigInt(i + 1) * 0x0102030405n, 8);
      rec.writeUInt16LE(rec.length, 16);
      rec[18] = i % 2 === 0 ? 8 : 4; // DT_REG, DT_DIR
      name.copy(rec, 19);
      return rec;
    });
    return Buffer.concat(records);
  }
  // Names of every length from 1 to 255 bytes, of any byte but NUL and '/', not valid UTF-8 either.
  const names = Array.from({ length: 255 }, (_, i) => Buffer.from(Array.from({ length: i + 1 }, (_, k) => 1 + ((i * 7 + k * 13) % 254)).map((b) => (b === 0x2f ? 0x30 : b))));
  const src = dirents64(names);

  /** The same records added one at a time with addCopied: the reference. */
  function oneByOne(size: number): { bytes: Buffer; used: number } {
    const dir = new DirBuffer(9n, size);
    let at = 0;
    while (at < src.length) {
      const reclen = src.readUInt16LE(at + 16);
      const nameLen = src.indexOf(0, at + 19) - (at + 19);
      if (!dir.addCopied(src, at, src[at + 18]!, at + 19, nameLen, false)) break;
      at += reclen;
    }
    return { bytes: dir.finish(), used: at };
  }

  test.each([64, 1000, 4096, 32_768, 200_000])('a reply of %i bytes: the same records as one at a time, and the bytes of src it used', (size) => {
    const dir = new DirBuffer(9n, size);
    const used = dir.addDirents64(src, src.length);
    const reference = oneByOne(size);
    expect(used).toBe(reference.used);
    expect(dir.finish().equals(reference.bytes)).toBe(true);
  });

  test('stale bytes after a name\'s NUL (a reused getdents buffer) are not part of the name', () => {
    // '/' among them: a name the kernel would refuse with EIO, cutting the listing short.
    for (const stale of [0x2f, 0x41, 0xff]) {
      const dir = new DirBuffer(9n, 200_000);
      const withStale = dirents64(names, stale);
      expect(dir.addDirents64(withStale, withStale.length)).toBe(withStale.length);
      expect(dir.finish().equals(oneByOne(200_000).bytes)).toBe(true);
    }
  });

  test('from a later record on, and the cookie of the last record added', () => {
    const reference = new DirBuffer(9n, 4096);
    expect(reference.lastCookie).toBeUndefined();
    let from = 0;
    for (let i = 0; i < 7; i++) from += src.readUInt16LE(from + 16);
    let at = from;
    let lastOff = 0n;
    while (at < src.length) {
      const nameLen = src.indexOf(0, at + 19) - (at + 19);
      if (!reference.addCopied(src, at, src[at + 18]!, at + 19, nameLen, false)) break;
      lastOff = src.readBigUInt64LE(at + 8);
      at += src.readUInt16LE(at + 16);
    }
    const dir = new DirBuffer(9n, 4096);
    expect(dir.addDirents64(src, src.length, from)).toBe(at);
    expect(dir.finish().equals(reference.finish())).toBe(true);
    expect(dir.lastCookie).toBe(lastOff);
    expect(reference.lastCookie).toBe(lastOff);
  });

  test('plus: READDIRPLUS records with node id 0, stopping before each directory', () => {
    const records = dirents64(names.slice(0, 40));
    for (let at = 0, i = 0; at < records.length; at += records.readUInt16LE(at + 16), i++) records[at + 18] = i === 9 || i === 30 ? 4 : 8;
    const reference = new DirBuffer(9n, 8192);
    const dir = new DirBuffer(9n, 8192);
    let at = 0;
    const stops: number[] = [];
    for (let i = 0; at < records.length; i++) {
      const type = records[at + 18]!;
      const nameLen = records.indexOf(0, at + 19) - (at + 19);
      if (!reference.fits(nameLen, true)) break;
      if (type === 4) {
        // Where the fast path must stop: the caller adds a directory its own way.
        expect(dir.addDirents64(records, records.length, stops.length ? stops[stops.length - 1]! : 0, true)).toBe(at);
        stops.push(at);
        dir.addCopied(records, at, type, at + 19, nameLen, true);
        stops[stops.length - 1] = at + records.readUInt16LE(at + 16);
      }
      reference.addCopied(records, at, type, at + 19, nameLen, true);
      at += records.readUInt16LE(at + 16);
    }
    expect(dir.addDirents64(records, records.length, stops[stops.length - 1]!, true)).toBe(at);
    expect(dir.finish().equals(reference.finish())).toBe(true);
  });

  test('a record that is not one (reclen 0) stops it instead of looping', () => {
    const bad = Buffer.concat([dirents64(names.slice(0, 3)), Buffer.alloc(64)]);
    const dir = new DirBuffer(9n, 4096);
    expect(dir.addDirents64(bad, bad.length)).toBe(bad.length - 64);
  });
});
