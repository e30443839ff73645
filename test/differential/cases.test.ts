// Explicit regression cases for the differential test: each runs its steps on a fresh mount and on a
// fresh bare directory and compares them with the same machinery as the random sequences (driver.ts):
// every answer and errno, then the whole tree (names as bytes, modes, owners, sizes, contents, xattrs,
// hard links, explicitly set times to the nanosecond) and every open fd, after every step.
import { describe, test } from 'vitest';
import { runSteps, withSides } from './driver.js';
import {
  DEEP, DEEP_COMPONENTS, FALLOC_FL_KEEP_SIZE, O_APPEND, O_TRUNC, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, hex, O_CREAT, O_DIRECTORY, O_EXCL,
  O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, RENAME_EXCHANGE, RENAME_NOREPLACE, S_IFIFO, SEEK_DATA, SEEK_END, SEEK_HOLE,
  XATTR_CREATE, XATTR_REPLACE, type Op, type Step, type Time,
} from './ops.js';

/** A version-2 file capability (cap_net_bind_service=ep), as hex: magic, permitted, inheritable x2. */
const FILE_CAP = '01000002' + '00040000' + '00000000' + '00000000' + '00000000';
const MOUNT_ARGS = (process.env.DIFF_MOUNT_ARGS ?? '').split(/\s+/).filter(Boolean);
const TIMEOUT_MS = 60_000;

const ROOT = 0;
const U1000 = 1;
const U1001 = 2;

/** Bytes of a path from parts (strings as UTF-8, or raw bytes), as the hex the ops carry. */
const p = (...parts: (string | Buffer | number[])[]): string =>
  hex(Buffer.concat(parts.map((x) => (typeof x === 'string' ? Buffer.from(x) : Buffer.from(x)))));
const as = (user: number, op: Op, extra: Partial<Step> = {}): Step => ({ user, op, ...extra });
const root = (op: Op, extra: Partial<Step> = {}): Step => as(ROOT, op, extra);
const data = (n: number, seed: number): string => hex(Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff)));
const ts = (sec: number, nsec: number): Time => ({ sec, nsec });

/** A file made by `user` in one go: create, write, close. */
function file(user: number, path: string, id: number, content: string, mode = 0o644, extra: Partial<Step> = {}): Step[] {
  return [
    as(user, { op: 'open', id, path, flags: O_CREAT | O_EXCL | O_WRONLY, mode, umask: 0o022 }, extra),
    as(user, { op: 'write', id, data: content }, extra),
    as(user, { op: 'close', id }, extra),
  ];
}

/** A world-writable dir 'd' for the unprivileged users. */
const SHARED_DIR: Step[] = [
  root({ op: 'mkdir', path: p('d'), mode: 0o777, umask: 0 }),
];

/** A file, a dir, a symlink and a fifo, for the xattr cases. */
const XATTR_TREE: Step[] = [
  ...file(ROOT, p('f'), 100, data(10, 1)),
  root({ op: 'mkdir', path: p('dir'), mode: 0o755, umask: 0o022 }),
  root({ op: 'symlink', target: p('f'), path: p('ln') }),
  root({ op: 'mknod', path: p('fifo'), mode: S_IFIFO | 0o666, major: 0, minor: 0, umask: 0 }),
];

const NON_UTF8 = [0xe9, 0xff, 0x2d, 0x80];
const NON_UTF8_2 = [0xfe, 0xc3, 0x28, 0x0a];

const CASES: Record<string, Step[]> = {
  'a name that is not UTF-8: created, listed (getdents and readdir as buffers), renamed, removed': [
    ...file(ROOT, p(NON_UTF8), 1, data(10, 1)),
    root({ op: 'readdir', path: p('.') }),
    root({ op: 'readdirNode', path: p('.') }),
    root({ op: 'stat', path: p(NON_UTF8), follow: false }),
    root({ op: 'rename', from: p(NON_UTF8), to: p(NON_UTF8_2), flags: 0 }),
    root({ op: 'readdirNode', path: p('.') }),
    root({ op: 'stat', path: p(NON_UTF8), follow: false }),
    root({ op: 'mkdir', path: p(NON_UTF8), mode: 0o755, umask: 0o022 }),
    root({ op: 'rename', from: p(NON_UTF8_2), to: p(NON_UTF8, '/', NON_UTF8_2), flags: RENAME_NOREPLACE }),
    root({ op: 'readdirNode', path: p(NON_UTF8) }),
    root({ op: 'symlink', target: p(NON_UTF8, '/', NON_UTF8_2), path: p([0xff]) }),
    root({ op: 'readlink', path: p([0xff]) }),
    root({ op: 'stat', path: p([0xff]), follow: true }),
    root({ op: 'rmdir', path: p(NON_UTF8) }),
    root({ op: 'unlink', path: p(NON_UTF8, '/', NON_UTF8_2) }),
    root({ op: 'rmdir', path: p(NON_UTF8) }),
    root({ op: 'unlink', path: p([0xff]) }),
    root({ op: 'readdirNode', path: p('.') }),
  ],

  'open, unlink, then fstat, write, fallocate and read through the descriptor': [
    ...SHARED_DIR,
    root({ op: 'open', id: 1, path: p('f'), flags: O_CREAT | O_RDWR, mode: 0o640, umask: 0o022 }),
    root({ op: 'write', id: 1, data: data(5, 1) }),
    root({ op: 'unlink', path: p('f') }),
    root({ op: 'fstat', id: 1 }),
    root({ op: 'write', id: 1, data: data(5000, 2) }),
    root({ op: 'write', id: 1, data: data(100, 3), off: 20_000 }),
    root({ op: 'fallocate', id: 1, mode: 0, off: 0, len: 65_536 }),
    root({ op: 'fallocate', id: 1, mode: FALLOC_FL_KEEP_SIZE, off: 65_536, len: 8192 }),
    root({ op: 'fallocate', id: 1, mode: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off: 4096, len: 8192 }),
    root({ op: 'fallocate', id: 1, mode: FALLOC_FL_ZERO_RANGE, off: 100, len: 50 }),
    root({ op: 'lseek', id: 1, off: 4096, whence: SEEK_DATA }),
    root({ op: 'lseek', id: 1, off: 0, whence: SEEK_HOLE }),
    root({ op: 'lseek', id: 1, off: 0, whence: SEEK_END }),
    root({ op: 'fstat', id: 1 }),
    root({ op: 'read', id: 1, len: 70_000, off: 0 }),
    root({ op: 'ftruncate', id: 1, len: 100 }),
    root({ op: 'read', id: 1, len: 200, off: 0 }),
    root({ op: 'fchmod', id: 1, mode: 0o600 }),
    root({ op: 'utimens', target: { id: 1 }, atime: ts(1_000_000_000, 1), mtime: ts(1_500_000_000, 999_999_999) }),
    root({ op: 'fstat', id: 1 }),
    root({ op: 'setxattr', target: { id: 1 }, name: 'user.gone', value: data(10, 4), flags: XATTR_CREATE }),
    root({ op: 'getxattr', target: { id: 1 }, name: 'user.gone' }),
    root({ op: 'listxattr', target: { id: 1 } }),
    // The same by an unprivileged user, in a shared dir; another user's descriptor lives on too.
    as(U1000, { op: 'open', id: 2, path: p('d/g'), flags: O_CREAT | O_RDWR, mode: 0o644, umask: 0o022 }),
    as(U1001, { op: 'open', id: 3, path: p('d/g'), flags: O_RDONLY, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'unlink', path: p('d/g') }),
    as(U1000, { op: 'write', id: 2, data: data(3000, 5) }),
    as(U1000, { op: 'fallocate', id: 2, mode: FALLOC_FL_KEEP_SIZE, off: 0, len: 16_384 }),
    as(U1001, { op: 'read', id: 3, len: 4096 }),
    as(U1001, { op: 'fstat', id: 3 }),
    as(U1000, { op: 'close', id: 2 }),
    as(U1001, { op: 'fstat', id: 3 }),
    as(U1001, { op: 'close', id: 3 }),
    root({ op: 'close', id: 1 }),
  ],

  'link, then unlink the first name, then stat the second': [
    ...file(ROOT, p('a'), 1, data(1234, 1)),
    root({ op: 'link', from: p('a'), to: p('b'), follow: false }),
    root({ op: 'stat', path: p('b'), follow: false }),
    root({ op: 'unlink', path: p('a') }),
    root({ op: 'stat', path: p('b'), follow: false }),
    root({ op: 'stat', path: p('a'), follow: false }),
    root({ op: 'open', id: 2, path: p('b'), flags: O_RDONLY, mode: 0, umask: 0o022 }),
    root({ op: 'read', id: 2, len: 2000 }),
    root({ op: 'close', id: 2 }),
    // A hard link to a symlink (linkat without AT_SYMLINK_FOLLOW links the symlink itself).
    root({ op: 'symlink', target: p('b'), path: p('s') }),
    root({ op: 'link', from: p('s'), to: p('s2'), follow: false }),
    root({ op: 'link', from: p('s'), to: p('b2'), follow: true }),
    root({ op: 'unlink', path: p('s') }),
    root({ op: 'stat', path: p('s2'), follow: false }),
    root({ op: 'stat', path: p('b2'), follow: false }),
  ],

  'rename over a hard link': [
    ...file(ROOT, p('a'), 1, data(10, 1)),
    root({ op: 'link', from: p('a'), to: p('b'), follow: false }),
    // Two names of one inode: rename does nothing and succeeds.
    root({ op: 'rename', from: p('a'), to: p('b'), flags: 0 }),
    root({ op: 'stat', path: p('a'), follow: false }),
    root({ op: 'rename', from: p('a'), to: p('b'), flags: RENAME_NOREPLACE }),
    ...file(ROOT, p('c'), 2, data(20, 2)),
    root({ op: 'rename', from: p('c'), to: p('b'), flags: 0 }),
    root({ op: 'stat', path: p('a'), follow: false }),
    root({ op: 'stat', path: p('b'), follow: false }),
    root({ op: 'link', from: p('a'), to: p('c'), follow: false }),
    root({ op: 'rename', from: p('b'), to: p('c'), flags: RENAME_EXCHANGE }),
    root({ op: 'stat', path: p('c'), follow: false }),
    root({ op: 'rename', from: p('c'), to: p('a'), flags: RENAME_EXCHANGE }),
    root({ op: 'readdirNode', path: p('.') }),
  ],

  'a unix socket bound in the mount with node:net, connected to, and removed': [
    root({ op: 'listen', path: p('sock') }),
    root({ op: 'stat', path: p('sock'), follow: false }),
    root({ op: 'connect', path: p('sock'), data: data(5000, 1) }),
    root({ op: 'access', path: p('sock'), mode: 2 }),
    root({ op: 'open', id: 1, path: p('sock'), flags: O_RDWR | O_NONBLOCK, mode: 0, umask: 0o022 }),
    root({ op: 'link', from: p('sock'), to: p('sock2'), follow: false }),
    root({ op: 'connect', path: p('sock2'), data: data(10, 2) }),
    root({ op: 'unlink', path: p('sock') }),
    root({ op: 'connect', path: p('sock'), data: data(10, 3) }),
    root({ op: 'unlink', path: p('sock2') }),
    root({ op: 'unlisten', path: p('sock') }),
    root({ op: 'mknod', path: p('fifo'), mode: S_IFIFO | 0o644, major: 0, minor: 0, umask: 0o022 }),
    root({ op: 'open', id: 2, path: p('fifo'), flags: O_RDWR | O_NONBLOCK, mode: 0, umask: 0o022 }),
    root({ op: 'write', id: 2, data: data(100, 4) }),
    root({ op: 'read', id: 2, len: 1000 }),
    root({ op: 'read', id: 2, len: 1000 }),
    root({ op: 'close', id: 2 }),
  ],

  'a path of PATH_MAX-1 bytes': [
    ...DEEP_COMPONENTS.map((_, i) => root({ op: 'mkdir', path: hex(Buffer.concat(DEEP_COMPONENTS.slice(0, i + 1).flatMap((c, j) => (j ? [Buffer.from('/'), c] : [c])))), mode: 0o777, umask: 0 })),
    ...file(U1000, p(DEEP, '/', Buffer.alloc(255, 0xe9)), 1, data(100, 1)), // 3839 + 1 + 255 = 4095 bytes
    root({ op: 'stat', path: p(DEEP, '/', Buffer.alloc(255, 0xe9)), follow: false }),
    root({ op: 'readdirNode', path: p(DEEP) }),
    root({ op: 'setxattr', target: { path: p(DEEP, '/', Buffer.alloc(255, 0xe9)), follow: false }, name: 'user.deep', value: data(5, 1), flags: 0 }),
    root({ op: 'utimens', target: { path: p(DEEP, '/', Buffer.alloc(255, 0xe9)), follow: false }, atime: ts(123, 456), mtime: ts(789, 1) }),
    root({ op: 'link', from: p(DEEP, '/', Buffer.alloc(255, 0xe9)), to: p(DEEP, '/', Buffer.alloc(255, 0xea)), follow: false }),
    root({ op: 'rename', from: p(DEEP, '/', Buffer.alloc(255, 0xea)), to: p('short'), flags: 0 }),
    root({ op: 'rename', from: p('short'), to: p(DEEP, '/', Buffer.alloc(255, 0xeb)), flags: 0 }),
    root({ op: 'symlink', target: hex(Buffer.alloc(4095, 0x61)), path: p(DEEP, '/', Buffer.alloc(255, 0xec)) }),
    root({ op: 'readlink', path: p(DEEP, '/', Buffer.alloc(255, 0xec)) }),
    root({ op: 'unlink', path: p(DEEP, '/', Buffer.alloc(255, 0xec)) }),
    // One byte more is ENAMETOOLONG, as is a 256-byte name or a 4096-byte symlink target.
    root({ op: 'open', id: 2, path: p(DEEP, '/', Buffer.alloc(254, 0xe9), '/x'), flags: O_CREAT | O_WRONLY, mode: 0o644, umask: 0o022 }),
    root({ op: 'mkdir', path: p(DEEP, '/', Buffer.alloc(256, 0xe9)), mode: 0o755, umask: 0o022 }),
    root({ op: 'mkdir', path: p(Buffer.alloc(256, 0x62)), mode: 0o755, umask: 0o022 }),
    root({ op: 'symlink', target: hex(Buffer.alloc(4096, 0x61)), path: p('toolong') }),
    root({ op: 'stat', path: p(DEEP, '/', Buffer.alloc(255, 0xe9), '/'), follow: false }),
    // Moved under the chain, names end up beyond PATH_MAX: still there, reachable step by step.
    root({ op: 'mkdir', path: p('m'), mode: 0o755, umask: 0o022 }),
    ...file(ROOT, p('m/', Buffer.alloc(200, 0x6d)), 3, data(10, 2)),
    root({ op: 'rename', from: p('m'), to: p(DEEP, '/m'), flags: 0 }),
    root({ op: 'unlink', path: p(DEEP, '/', Buffer.alloc(255, 0xe9)) }),
    root({ op: 'unlink', path: p(DEEP, '/', Buffer.alloc(255, 0xeb)) }),
  ],

  'nanosecond timestamps set on the mount are read back exactly on the source, and vice versa': [
    // Set on the source (behind the mount), then looked up through the mount for the first time.
    ...file(ROOT, p('from-src'), 1, data(10, 1), 0o644, { via: 'backing', check: false }),
    root({ op: 'utimens', target: { path: p('from-src'), follow: false }, atime: ts(1_234_567_890, 123_456_789), mtime: ts(-1, 999_999_999) }, { via: 'backing', check: false }),
    root({ op: 'mkdir', path: p('dir-src'), mode: 0o755, umask: 0o022 }, { via: 'backing', check: false }),
    root({ op: 'utimens', target: { path: p('dir-src'), follow: false }, atime: ts(4_102_444_800, 1), mtime: ts(2_147_483_648, 500_000_000) }, { via: 'backing', check: false }),
    root({ op: 'symlink', target: p('from-src'), path: p('ln-src') }, { via: 'backing', check: false }),
    root({ op: 'utimens', target: { path: p('ln-src'), follow: false }, atime: 'omit', mtime: ts(86_400, 86_400) }, { via: 'backing', check: false }),
    // The mount may serve what it looked up before (the root, when the executors started there) from
    // its attribute cache until the timeout (1 s by default): changes behind its back show after it.
    root({ op: 'sleep', ms: 1_100 }),
    root({ op: 'stat', path: p('from-src'), follow: false }),
    root({ op: 'stat', path: p('dir-src'), follow: false }),
    root({ op: 'stat', path: p('ln-src'), follow: false }),
    // Set through the mount, read on the source.
    ...file(ROOT, p('from-mnt'), 2, data(10, 2)),
    root({ op: 'utimens', target: { path: p('from-mnt'), follow: true }, atime: ts(-315_619_200, 1), mtime: ts(4_102_444_800, 999_999_999) }),
    root({ op: 'stat', path: p('from-mnt'), follow: false }, { via: 'backing' }),
    root({ op: 'utimens', target: { path: p('from-mnt'), follow: true }, atime: 'omit', mtime: ts(0, 0) }),
    root({ op: 'stat', path: p('from-mnt'), follow: false }, { via: 'backing' }),
    root({ op: 'utimens', target: { path: p('from-mnt'), follow: true }, atime: ts(1, 2), mtime: 'omit' }),
    root({ op: 'stat', path: p('from-mnt'), follow: false }, { via: 'backing' }),
    root({ op: 'open', id: 3, path: p('from-mnt'), flags: O_RDWR, mode: 0, umask: 0o022 }),
    root({ op: 'utimens', target: { id: 3 }, atime: ts(1_600_000_000, 999_999_999), mtime: ts(1_600_000_001, 1) }),
    root({ op: 'fstat', id: 3 }),
    root({ op: 'stat', path: p('from-mnt'), follow: false }, { via: 'backing' }),
    root({ op: 'close', id: 3 }),
    // By the owner, not root; and 'now' for one field while the other stays exact.
    ...SHARED_DIR,
    ...file(U1000, p('d/own'), 4, data(1, 3)),
    as(U1000, { op: 'utimens', target: { path: p('d/own'), follow: true }, atime: ts(999, 999), mtime: ts(1_111_111_111, 111_111_111) }),
    as(U1001, { op: 'utimens', target: { path: p('d/own'), follow: true }, atime: ts(5, 5), mtime: ts(5, 5) }),
    as(U1000, { op: 'utimens', target: { path: p('d/own'), follow: true }, atime: 'now', mtime: 'omit' }),
    root({ op: 'stat', path: p('d/own'), follow: false }, { via: 'backing' }),
  ],

  'changes made in the source behind the mount show through it after the attribute timeout': [
    // Before anything was looked up through the mount but its root.
    root({ op: 'mkdir', path: p('first'), mode: 0o755, umask: 0o022 }, { via: 'backing', check: false }),
    root({ op: 'sleep', ms: 1_100 }),
    root({ op: 'stat', path: p('.'), follow: false }),
    root({ op: 'mkdir', path: p('seen'), mode: 0o755, umask: 0o022 }),
    ...file(ROOT, p('seen/f'), 1, data(10, 1)),
    root({ op: 'mkdir', path: p('behind'), mode: 0o755, umask: 0o022 }, { via: 'backing', check: false }),
    root({ op: 'mkdir', path: p('seen/sub'), mode: 0o755, umask: 0o022 }, { via: 'backing', check: false }),
    root({ op: 'chmod', path: p('seen/f'), mode: 0o600, follow: false }, { via: 'backing', check: false }),
    root({ op: 'open', id: 2, path: p('seen/f'), flags: O_WRONLY | O_APPEND, mode: 0, umask: 0o022 }, { via: 'backing', check: false }),
    root({ op: 'write', id: 2, data: data(5000, 2) }, { via: 'backing', check: false }),
    root({ op: 'close', id: 2 }, { via: 'backing', check: false }),
    root({ op: 'sleep', ms: 1_100 }),
    root({ op: 'stat', path: p('.'), follow: false }),
    root({ op: 'readdirNode', path: p('.') }),
    root({ op: 'stat', path: p('seen/f'), follow: false }),
  ],

  'reads with O_NOATIME (the walk) leave a set atime alone': [
    root({ op: 'mkdir', path: p('dir'), mode: 0o755, umask: 0o022 }),
    ...file(ROOT, p('dir/f'), 1, data(100, 1)),
    root({ op: 'utimens', target: { path: p('dir'), follow: false }, atime: ts(1_000_000_000, 1), mtime: ts(1_000_000_000, 2) }),
    root({ op: 'utimens', target: { path: p('dir/f'), follow: false }, atime: ts(1_000_000_000, 3), mtime: ts(1_000_000_000, 4) }),
    // The walk after each step read both with O_NOATIME: the atimes must still be the ones set.
    root({ op: 'stat', path: p('dir'), follow: false }),
    root({ op: 'stat', path: p('dir/f'), follow: false }),
  ],

  'user.* xattrs: CREATE and REPLACE, empty values, on files and dirs but not on symlinks or fifos': [
    ...XATTR_TREE,
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'user.a', value: data(3, 1), flags: XATTR_REPLACE }),
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'user.a', value: data(3, 1), flags: XATTR_CREATE }),
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'user.a', value: data(3, 2), flags: XATTR_CREATE }),
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'user.a', value: '', flags: XATTR_REPLACE }),
    root({ op: 'getxattr', target: { path: p('f'), follow: false }, name: 'user.a' }),
    root({ op: 'setxattr', target: { path: p('dir'), follow: false }, name: 'user.d', value: data(3000, 3), flags: 0 }),
    root({ op: 'setxattr', target: { path: p('ln'), follow: false }, name: 'user.l', value: data(3, 4), flags: 0 }),
    root({ op: 'setxattr', target: { path: p('ln'), follow: true }, name: 'user.l', value: data(3, 4), flags: 0 }),
    root({ op: 'setxattr', target: { path: p('fifo'), follow: false }, name: 'user.p', value: data(3, 5), flags: 0 }),
    root({ op: 'listxattr', target: { path: p('f'), follow: false } }),
    as(U1000, { op: 'setxattr', target: { path: p('f'), follow: false }, name: 'user.a', value: data(3, 1), flags: 0 }),
    as(U1000, { op: 'getxattr', target: { path: p('f'), follow: false }, name: 'user.a' }),
    as(U1000, { op: 'listxattr', target: { path: p('f'), follow: false } }),
    root({ op: 'removexattr', target: { path: p('f'), follow: false }, name: 'user.a' }),
    root({ op: 'removexattr', target: { path: p('f'), follow: false }, name: 'user.a' }),
    root({ op: 'getxattr', target: { path: p('f'), follow: false }, name: 'user.a' }),
  ],

  'an xattr name outside the known namespaces: EOPNOTSUPP for root and for users': [
    ...XATTR_TREE,
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'bogus.x', value: data(3, 6), flags: 0 }),
    root({ op: 'getxattr', target: { path: p('f'), follow: false }, name: 'bogus.x' }),
    root({ op: 'removexattr', target: { path: p('f'), follow: false }, name: 'bogus.x' }),
    as(U1000, { op: 'setxattr', target: { path: p('dir'), follow: false }, name: 'bogus.x', value: data(3, 6), flags: 0 }),
    as(U1000, { op: 'getxattr', target: { path: p('dir'), follow: false }, name: 'bogus.x' }),
    as(U1001, { op: 'getxattr', target: { path: p('ln'), follow: false }, name: 'bogus.x' }),
    as(U1001, { op: 'removexattr', target: { path: p('ln'), follow: false }, name: 'bogus.x' }),
  ],

  'trusted.* and security.* xattrs: root sets them (on a symlink too), users do not see trusted.*': [
    ...XATTR_TREE,
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'trusted.t', value: data(3, 7), flags: 0 }),
    root({ op: 'getxattr', target: { path: p('f'), follow: false }, name: 'trusted.t' }),
    root({ op: 'setxattr', target: { path: p('f'), follow: false }, name: 'security.s', value: data(3, 8), flags: 0 }),
    root({ op: 'setxattr', target: { path: p('ln'), follow: false }, name: 'trusted.t', value: data(3, 9), flags: 0 }),
    root({ op: 'setxattr', target: { path: p('ln'), follow: false }, name: 'security.s', value: data(3, 9), flags: 0 }),
    root({ op: 'listxattr', target: { path: p('f'), follow: false } }),
    as(U1000, { op: 'listxattr', target: { path: p('f'), follow: false } }),
    as(U1000, { op: 'getxattr', target: { path: p('f'), follow: false }, name: 'trusted.t' }),
    as(U1000, { op: 'setxattr', target: { path: p('f'), follow: false }, name: 'trusted.t', value: data(3, 1), flags: 0 }),
    as(U1000, { op: 'getxattr', target: { path: p('f'), follow: false }, name: 'security.s' }),
    root({ op: 'removexattr', target: { path: p('ln'), follow: false }, name: 'trusted.t' }),
  ],

  'chown keeps the setgid bit of a file that is not group-executable': [
    ...SHARED_DIR,
    ...file(ROOT, p('d/g'), 1, data(10, 1)),
    root({ op: 'chmod', path: p('d/g'), mode: 0o2664, follow: true }),
    root({ op: 'chown', path: p('d/g'), uid: 1000, gid: 1000, follow: true }),
    root({ op: 'stat', path: p('d/g'), follow: true }),
    as(U1000, { op: 'chown', path: p('d/g'), uid: -1, gid: 1000, follow: true }),
    root({ op: 'stat', path: p('d/g'), follow: true }),
  ],

  'chown by an owner outside the file\'s group drops a setgid that is no group-exec': [
    ...SHARED_DIR,
    ...file(U1000, p('d/g'), 1, data(10, 1)),
    root({ op: 'chown', path: p('d/g'), uid: -1, gid: 1001, follow: true }),
    root({ op: 'chmod', path: p('d/g'), mode: 0o2664, follow: true }),
    as(U1000, { op: 'chown', path: p('d/g'), uid: -1, gid: 1001, follow: true }),
    root({ op: 'stat', path: p('d/g'), follow: true }),
    root({ op: 'chmod', path: p('d/g'), mode: 0o2664, follow: true }),
    as(U1000, { op: 'open', id: 2, path: p('d/g'), flags: O_RDONLY, mode: 0, umask: 0o022 }),
    // Through the descriptor, naming the group it already has. Not fchown(-1, -1): for that the
    // FUSE kernel module applies its own rule (setgid goes only with group-exec), finds nothing to
    // change and sends no request at all, so no FUSE server can drop the bit there.
    as(U1000, { op: 'fchown', id: 2, uid: -1, gid: 1001 }),
    as(U1000, { op: 'fstat', id: 2 }),
  ],

  'chown clears setuid, and setgid with group-exec, even when it changes nothing': [
    ...SHARED_DIR,
    ...file(ROOT, p('d/s'), 1, data(10, 1)),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6775, follow: true }),
    root({ op: 'chown', path: p('d/s'), uid: -1, gid: -1, follow: true }),
    root({ op: 'stat', path: p('d/s'), follow: true }),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6775, follow: true }),
    root({ op: 'chown', path: p('d/s'), uid: 0, gid: 0, follow: true }),
    root({ op: 'stat', path: p('d/s'), follow: true }),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6775, follow: true }),
    root({ op: 'chown', path: p('d/s'), uid: 1000, gid: 1001, follow: true }),
    as(U1000, { op: 'chmod', path: p('d/s'), mode: 0o4755, follow: true }),
    as(U1000, { op: 'open', id: 2, path: p('d/s'), flags: O_RDONLY, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'fchown', id: 2, uid: -1, gid: -1 }),
    as(U1000, { op: 'fstat', id: 2 }),
    // A directory keeps its set-id bits through chown.
    root({ op: 'mkdir', path: p('d/dir'), mode: 0o755, umask: 0 }),
    root({ op: 'chmod', path: p('d/dir'), mode: 0o6775, follow: true }),
    root({ op: 'chown', path: p('d/dir'), uid: 1000, gid: 1000, follow: true }),
  ],

  'fallocate by a user without CAP_FSETID clears setuid and setgid': [
    ...SHARED_DIR,
    ...file(ROOT, p('d/s'), 2, data(10, 2)),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'open', id: 3, path: p('d/s'), flags: O_RDWR, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'fallocate', id: 3, mode: FALLOC_FL_KEEP_SIZE, off: 0, len: 8192 }),
    as(U1000, { op: 'fstat', id: 3 }),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'fallocate', id: 3, mode: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off: 0, len: 4096 }),
    as(U1000, { op: 'fstat', id: 3 }),
  ],

  'writes and truncates by a user without CAP_FSETID clear setuid and setgid': [
    ...SHARED_DIR,
    ...file(ROOT, p('d/s'), 2, data(10, 2)),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'open', id: 3, path: p('d/s'), flags: O_RDWR, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'write', id: 3, data: data(10, 3) }),
    as(U1000, { op: 'fstat', id: 3 }),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'ftruncate', id: 3, len: 1 }),
    as(U1000, { op: 'close', id: 3 }),
    root({ op: 'chmod', path: p('d/s'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'truncate', path: p('d/s'), len: 0 }),
    // The owner's own write clears them too (setgid only with group-exec), and root's does not.
    ...file(U1000, p('d/own'), 4, data(10, 4)),
    as(U1000, { op: 'chmod', path: p('d/own'), mode: 0o6775, follow: true }),
    as(U1000, { op: 'open', id: 5, path: p('d/own'), flags: O_WRONLY | O_APPEND, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'write', id: 5, data: data(5000, 5) }),
    as(U1000, { op: 'chmod', path: p('d/own'), mode: 0o6765, follow: true }),
    as(U1000, { op: 'write', id: 5, data: data(5, 6) }),
    as(U1000, { op: 'close', id: 5 }),
    root({ op: 'chmod', path: p('d/own'), mode: 0o6775, follow: true }),
    root({ op: 'open', id: 6, path: p('d/own'), flags: O_WRONLY, mode: 0, umask: 0o022 }),
    root({ op: 'write', id: 6, data: data(5, 7) }),
    root({ op: 'fallocate', id: 6, mode: FALLOC_FL_ZERO_RANGE, off: 0, len: 4096 }),
    root({ op: 'close', id: 6 }),
  ],

  // HANDLE_KILLPRIV_V2 leaves all of this to the filesystem (the kernel asks nothing before a write).
  'a write, truncate or chown removes security.capability; a user\'s fchown(-1, -1) clears setuid': [
    ...SHARED_DIR,
    ...file(ROOT, p('d/c'), 1, data(100, 1)),
    root({ op: 'chmod', path: p('d/c'), mode: 0o4777, follow: true }),
    root({ op: 'setxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability', value: FILE_CAP, flags: 0 }),
    root({ op: 'write', id: 1, data: data(4, 2) }),
    root({ op: 'getxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability' }),
    root({ op: 'fstat', id: 1 }),
    root({ op: 'setxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability', value: FILE_CAP, flags: 0 }),
    as(U1000, { op: 'open', id: 2, path: p('d/c'), flags: O_RDWR, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'write', id: 2, data: data(4, 3) }),
    as(U1000, { op: 'fstat', id: 2 }),
    root({ op: 'getxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability' }),
    root({ op: 'setxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability', value: FILE_CAP, flags: 0 }),
    root({ op: 'ftruncate', id: 1, len: 10 }),
    root({ op: 'getxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability' }),
    root({ op: 'setxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability', value: FILE_CAP, flags: 0 }),
    root({ op: 'chown', path: p('d/c'), uid: -1, gid: -1, follow: true }),
    root({ op: 'getxattr', target: { path: p('d/c'), follow: true }, name: 'security.capability' }),
    root({ op: 'chown', path: p('d/c'), uid: 1000, gid: 1000, follow: true }),
    root({ op: 'chmod', path: p('d/c'), mode: 0o4755, follow: true }),
    as(U1000, { op: 'fchown', id: 2, uid: -1, gid: -1 }),
    as(U1000, { op: 'fstat', id: 2 }),
  ],

  'open with O_TRUNC by a user without CAP_FSETID clears setuid and setgid': [
    ...SHARED_DIR,
    ...file(U1001, p('d/t'), 1, data(100, 1)),
    as(U1001, { op: 'chmod', path: p('d/t'), mode: 0o6775, follow: true }),
    as(U1001, { op: 'open', id: 2, path: p('d/t'), flags: O_RDONLY | O_TRUNC, mode: 0, umask: 0o022 }),
    as(U1001, { op: 'fstat', id: 2 }),
    // Already empty: truncated all the same.
    as(U1001, { op: 'chmod', path: p('d/t'), mode: 0o3777, follow: true }),
    as(U1001, { op: 'open', id: 6, path: p('d/t'), flags: O_RDONLY | O_TRUNC | O_APPEND, mode: 0, umask: 0o022 }),
    as(U1001, { op: 'fstat', id: 6 }),
    ...file(ROOT, p('d/r'), 3, data(100, 2)),
    root({ op: 'chmod', path: p('d/r'), mode: 0o6777, follow: true }),
    as(U1000, { op: 'open', id: 4, path: p('d/r'), flags: O_WRONLY | O_TRUNC, mode: 0, umask: 0o022 }),
    as(U1000, { op: 'fstat', id: 4 }),
    // Root's O_TRUNC keeps them.
    root({ op: 'chmod', path: p('d/r'), mode: 0o6777, follow: true }),
    root({ op: 'write', id: 3, data: data(1, 3) }),
    root({ op: 'open', id: 5, path: p('d/r'), flags: O_WRONLY | O_TRUNC, mode: 0, umask: 0o022 }),
    root({ op: 'fstat', id: 5 }),
  ],

  'set-id bits on creation: dropped by a chmod outside the group, inherited from a setgid dir': [
    ...SHARED_DIR,
    ...file(U1000, p('d/mine'), 4, data(10, 4)),
    as(U1000, { op: 'chmod', path: p('d/mine'), mode: 0o2755, follow: true }),
    root({ op: 'chown', path: p('d/mine'), uid: -1, gid: 1001, follow: true }),
    // An owner outside the file's group sets setgid: the kernel drops it silently.
    as(U1000, { op: 'chmod', path: p('d/mine'), mode: 0o2755, follow: true }),
    as(U1001, { op: 'chown', path: p('d/mine'), uid: -1, gid: 1000, follow: true }),
    as(U1000, { op: 'chown', path: p('d/mine'), uid: -1, gid: 1001, follow: true }),
    // A setgid directory hands its group (and setgid, for dirs) to what is made in it.
    root({ op: 'mkdir', path: p('sg'), mode: 0o777, umask: 0 }),
    root({ op: 'chown', path: p('sg'), uid: 0, gid: 1000, follow: true }),
    root({ op: 'chmod', path: p('sg'), mode: 0o2777, follow: true }),
    as(U1001, { op: 'mkdir', path: p('sg/sub'), mode: 0o755, umask: 0o022 }),
    as(U1001, { op: 'open', id: 5, path: p('sg/f'), flags: O_CREAT | O_WRONLY, mode: 0o2755, umask: 0o022 }),
    as(U1000, { op: 'open', id: 6, path: p('sg/f2'), flags: O_CREAT | O_WRONLY | O_DIRECTORY, mode: 0o2755, umask: 0o022 }),
    as(U1000, { op: 'open', id: 7, path: p('sg/f3'), flags: O_CREAT | O_WRONLY, mode: 0o2755, umask: 0o022 }),
    as(U1001, { op: 'mknod', path: p('sg/fifo'), mode: S_IFIFO | 0o2777, major: 0, minor: 0, umask: 0 }),
    as(U1001, { op: 'symlink', target: p('f'), path: p('sg/ln') }),
  ],
};

describe('regression cases: mount vs bare directory', () => {
  for (const [name, steps] of Object.entries(CASES)) {
    test(name, async () => {
      await withSides({ mount: true, mountArgs: MOUNT_ARGS, backing: true }, (a, b) => runSteps(name, steps, a, b));
    }, TIMEOUT_MS);
  }
});

describe('regression cases: bare vs bare (the harness checks itself: must always pass)', () => {
  for (const [name, steps] of Object.entries(CASES)) {
    test(name, async () => {
      await withSides({ mount: false, backing: true }, (a, b) => runSteps(name, steps, a, b));
    }, TIMEOUT_MS);
  }
});
