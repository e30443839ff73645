// struct statx -> Stat. statx is the one stat call with the same layout on every architecture, and
// it gives nanoseconds and the birth time (mfsd uses it to tell a reused inode number apart).
export interface Timespec { sec: number; nsec: number }

export interface Stat {
  dev: number;
  /** bigint: inode numbers use all 64 bits on some filesystems. */
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  blksize: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /** Birth time; undefined when the filesystem does not record it. */
  btime: Timespec | undefined;
}

export const STATX_BASIC_STATS = 0x7ff;
export const STATX_BTIME = 0x800;
export const STATX_BUFFER_SIZE = 256;

/** glibc's makedev: the dev_t that Node's fs.Stats reports too. */
export function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 256 + (minor & 0xff) + (minor & 0xffffff00) * 4096 + (major & 0xfffff000) * 2 ** 32;
}

function ts(b: Buffer, at: number): Timespec {
  return { sec: Number(b.readBigInt64LE(at)), nsec: b.readUInt32LE(at + 8) };
}

export function decodeStatx(b: Buffer): Stat {
  const mask = b.readUInt32LE(0);
  return {
    dev: makedev(b.readUInt32LE(0x88), b.readUInt32LE(0x8c)),
    ino: b.readBigUInt64LE(0x20),
    mode: b.readUInt16LE(0x1c),
    nlink: b.readUInt32LE(0x10),
    uid: b.readUInt32LE(0x14),
    gid: b.readUInt32LE(0x18),
    rdev: makedev(b.readUInt32LE(0x80), b.readUInt32LE(0x84)),
    size: Number(b.readBigUInt64LE(0x28)),
    blocks: Number(b.readBigUInt64LE(0x30)),
    blksize: b.readUInt32LE(4),
    atime: ts(b, 0x40),
    mtime: ts(b, 0x70),
    ctime: ts(b, 0x60),
    btime: mask & STATX_BTIME ? ts(b, 0x50) : undefined,
  };
}

const S_IFMT = 0o170000;
export const isDir = (mode: number): boolean => (mode & S_IFMT) === 0o040000;
export const isReg = (mode: number): boolean => (mode & S_IFMT) === 0o100000;
export const isLnk = (mode: number): boolean => (mode & S_IFMT) === 0o120000;
