// Decoder on golden frames (layouts from linux include/uapi/linux/fuse.h, 7.45) and malformed ones.
import { describe, expect, test } from 'vitest';
import { DecodeError, decodeRequest, Opcode } from '../../fuse/kernel/index.js';
import { bytes, cstr, inHeader, u32, u64, zeros } from './bytes.js';

describe('decodeRequest on golden frames', () => {
  test('INIT carries version, readahead and both flag words', () => {
    const frame = bytes(
      ...inHeader(Opcode.INIT, 2, 0, 64),
      u32(7), // major
      u32(45), // minor
      u32(131072), // max_readahead
      u32(0x73fffffb), // flags (bits 0-31)
      u32(0x000000ff), // flags2 (bits 32-63)
      zeros(44), // unused[11]
    );
    const r = decodeRequest(frame);
    expect(r).toMatchObject({ op: 'INIT', major: 7, minor: 45, maxReadahead: 131072 });
    if (r.op !== 'INIT') throw new Error('not INIT');
    expect(r.flags).toBe((0xffn << 32n) | 0x73fffffbn);
    expect(r.header).toEqual({ len: 104, opcode: 26, unique: 2n, nodeId: 0, uid: 1000, gid: 100, pid: 4242, extLen: 0 });
  });

  test('LOOKUP is a NUL-terminated name', () => {
    const r = decodeRequest(bytes(...inHeader(Opcode.LOOKUP, 4, 1, 6), cstr('hello')));
    expect(r).toMatchObject({ op: 'LOOKUP', name: Buffer.from('hello'), header: { nodeId: 1, unique: 4n } });
  });

  test('GETATTR with a file handle', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.GETATTR, 6, 7, 16),
      u32(1), // getattr_flags: FUSE_GETATTR_FH
      u32(0), // dummy
      u64(99), // fh
    ));
    expect(r).toMatchObject({ op: 'GETATTR', getattrFlags: 1, fh: 99 });
  });

  test('READ', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.READ, 8, 7, 40),
      u64(3), // fh
      u64(0x1_0000_1000), // offset (> 4 GiB)
      u32(131072), // size
      u32(0), // read_flags
      u64(0xdeadbeefcafen), // lock_owner
      u32(0o100002), // flags (O_RDWR|O_LARGEFILE)
      u32(0), // padding
    ));
    expect(r).toMatchObject({ op: 'READ', fh: 3, offset: 0x1_0000_1000, size: 131072, lockOwner: 0xdeadbeefcafen, flags: 0o100002 });
  });

  test('WRITE carries its payload', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.WRITE, 10, 7, 45),
      u64(3), // fh
      u64(4096), // offset
      u32(5), // size
      u32(4), // write_flags: FUSE_WRITE_KILL_SUIDGID
      u64(0), // lock_owner
      u32(1), // flags (O_WRONLY)
      u32(0), // padding
      [...Buffer.from('abcde')], // data
    ));
    expect(r).toMatchObject({ op: 'WRITE', fh: 3, offset: 4096, writeFlags: 4 });
    if (r.op !== 'WRITE') throw new Error('not WRITE');
    expect(r.data.toString()).toBe('abcde');
  });

  test('SETATTR', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.SETATTR, 12, 7, 88),
      u32(1 | 8 | 32), // valid: MODE|SIZE|MTIME
      u32(0), // padding
      u64(0), // fh
      u64(1234), // size
      u64(0), // lock_owner
      u64(0), // atime
      u64(1577880000), // mtime (s)
      u64(0), // ctime
      u32(0), // atimensec
      u32(500), // mtimensec
      u32(0), // ctimensec
      u32(0o100640), // mode
      u32(0), // unused4
      u32(1000), // uid
      u32(100), // gid
      u32(0), // unused5
    ));
    expect(r).toMatchObject({ op: 'SETATTR', valid: 41, size: 1234, mode: 0o100640, uid: 1000, gid: 100, mtime: { sec: 1577880000, nsec: 500 } });
  });

  test('CREATE', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.CREATE, 14, 1, 18),
      u32(0o101), // flags (O_WRONLY|O_CREAT)
      u32(0o100644), // mode
      u32(0o022), // umask
      u32(0), // open_flags
      cstr('f'), // name
    ));
    expect(r).toMatchObject({ op: 'CREATE', flags: 0o101, mode: 0o100644, umask: 0o22, name: Buffer.from('f') });
  });

  test('RENAME2 with flags; names follow the struct', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.RENAME2, 16, 1, 16 + 4 + 4),
      u64(9), // newdir
      u32(1), // flags: RENAME_NOREPLACE
      u32(0), // padding
      cstr('old'), // oldname
      cstr('new'), // newname
    ));
    expect(r).toMatchObject({ op: 'RENAME', newDir: 9, flags: 1, name: Buffer.from('old'), newName: Buffer.from('new') });
  });

  test('BATCH_FORGET', () => {
    const r = decodeRequest(bytes(
      ...inHeader(Opcode.BATCH_FORGET, 18, 0, 8 + 32),
      u32(2), // count
      u32(0), // dummy
      u64(5), u64(1), // forget_one: nodeid, nlookup
      u64(6), u64(3), // forget_one: nodeid, nlookup
    ));
    expect(r).toMatchObject({ op: 'BATCH_FORGET', forgets: [{ nodeId: 5, nlookup: 1 }, { nodeId: 6, nlookup: 3 }] });
  });

  test('INTERRUPT names the original unique', () => {
    const r = decodeRequest(bytes(...inHeader(Opcode.INTERRUPT, 21, 0, 8), u64(20)));
    expect(r).toMatchObject({ op: 'INTERRUPT', targetUnique: 20n });
  });

  test('trailing extensions are not part of the body', () => {
    const h = inHeader(Opcode.LOOKUP, 22, 1, 2 + 8);
    h[7] = [1, 0]; // total_extlen: one 8-byte unit
    const r = decodeRequest(bytes(...h, cstr('a'), zeros(8)));
    expect(r).toMatchObject({ op: 'LOOKUP', name: Buffer.from('a') });
  });
});

describe('decodeRequest on malformed frames', () => {
  const kindOf = (frame: Buffer): string => {
    try {
      decodeRequest(frame);
    } catch (err) {
      if (err instanceof DecodeError) return err.kind;
      throw err;
    }
    return 'decoded';
  };

  test('short header', () => {
    expect(kindOf(Buffer.alloc(39))).toBe('short-header');
  });

  test('length field disagrees with the frame', () => {
    const frame = bytes(...inHeader(Opcode.LOOKUP, 4, 1, 6), cstr('hello'));
    frame.writeUInt32LE(200, 0);
    expect(kindOf(frame)).toBe('length-mismatch');
  });

  test('name without NUL', () => {
    expect(kindOf(bytes(...inHeader(Opcode.LOOKUP, 4, 1, 5), [...Buffer.from('hello')]))).toBe('missing-nul');
  });

  test('body shorter than the struct', () => {
    expect(kindOf(bytes(...inHeader(Opcode.READ, 4, 1, 8), u64(1)))).toBe('short-body');
  });

  test('WRITE whose size disagrees with its payload', () => {
    const frame = bytes(...inHeader(Opcode.WRITE, 4, 1, 42), u64(1), u64(0), u32(9), u32(0), u64(0), u32(0), u32(0), [1, 2]);
    expect(kindOf(frame)).toBe('length-mismatch');
  });

  test('BATCH_FORGET count larger than the body', () => {
    expect(kindOf(bytes(...inHeader(Opcode.BATCH_FORGET, 4, 0, 24), u32(5), u32(0), u64(1), u64(1)))).toBe('bad-count');
  });

  test('a DecodeError keeps the unique so the request can still be answered', () => {
    try {
      decodeRequest(bytes(...inHeader(Opcode.LOOKUP, 77, 1, 1), [65]));
      throw new Error('decoded');
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).unique).toBe(77n);
    }
  });

  test('unknown opcode decodes as UNKNOWN (answered ENOSYS by the session)', () => {
    expect(decodeRequest(bytes(...inHeader(4000, 4, 1, 0)))).toMatchObject({ op: 'UNKNOWN', opcode: 4000 });
  });
});

describe('names are bytes', () => {
  test('a LOOKUP name that is not UTF-8 arrives byte for byte', () => {
    const name = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // Latin-1 "café"
    const frame = Buffer.alloc(40 + name.length + 1);
    frame.writeUInt32LE(frame.length, 0);
    frame.writeUInt32LE(1, 4); // LOOKUP
    frame.writeBigUInt64LE(6n, 8);
    frame.writeBigUInt64LE(1n, 16);
    name.copy(frame, 40);
    const r = decodeRequest(frame);
    expect(r.op).toBe('LOOKUP');
    expect(r.op === 'LOOKUP' && Buffer.compare(r.name, name)).toBe(0);
  });
});
