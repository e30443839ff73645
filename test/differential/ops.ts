// The operations of the differential test (test/differential/): their wire form (JSON lines between
// the driver and executor.ts), a seeded PRNG, the initial tree, and a generator of long random
// sequences over a small pool of names, so that operations collide and errnos happen often.
//
// Bytes (names, paths, symlink targets, data) travel as hex strings: names are arbitrary bytes,
// never UTF-8 text. Paths are relative to the executor's root (its cwd), never absolute, and no
// symlink target contains '..' or starts with '/': whatever the sequence does stays inside the root.
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, O_DIRECTORY, O_NOFOLLOW, O_PATH, RENAME_EXCHANGE,
  RENAME_NOREPLACE, SEEK_DATA, SEEK_HOLE, XATTR_CREATE, XATTR_REPLACE,
} from '../../sys/index.js';

/** A time for utimensat: exact seconds and nanoseconds, or UTIME_NOW, or UTIME_OMIT. */
export type Time = { sec: number; nsec: number } | 'now' | 'omit';

/** Where an xattr call applies: a path (follow = getxattr, else lgetxattr) or an open fd. */
export type XTarget = { path: string; follow: boolean } | { id: number };

export type Op =
  | { op: 'open'; id: number; path: string; flags: number; mode: number; umask: number }
  | { op: 'close'; id: number }
  /** read(2), or pread(2) when off is given; the value is the bytes read (hex). */
  | { op: 'read'; id: number; len: number; off?: number }
  /** write(2), or pwrite(2) when off is given; the value is the count written. */
  | { op: 'write'; id: number; data: string; off?: number }
  | { op: 'ftruncate'; id: number; len: number }
  | { op: 'truncate'; path: string; len: number }
  | { op: 'fstat'; id: number }
  /** stat (follow) or lstat. */
  | { op: 'stat'; path: string; follow: boolean }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string }
  | { op: 'link'; from: string; to: string; follow: boolean }
  | { op: 'rename'; from: string; to: string; flags: number }
  | { op: 'mkdir'; path: string; mode: number; umask: number }
  /** mode carries the file type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFREG). */
  | { op: 'mknod'; path: string; mode: number; major: number; minor: number; umask: number }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'readlink'; path: string }
  | { op: 'chmod'; path: string; mode: number; follow: boolean }
  | { op: 'fchmod'; id: number; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number; follow: boolean }
  | { op: 'fchown'; id: number; uid: number; gid: number }
  | { op: 'utimens'; target: { path: string; follow: boolean } | { id: number }; atime: Time; mtime: Time }
  | { op: 'setxattr'; target: XTarget; name: string; value: string; flags: number }
  | { op: 'getxattr'; target: XTarget; name: string }
  | { op: 'listxattr'; target: XTarget }
  | { op: 'removexattr'; target: XTarget; name: string }
  | { op: 'fallocate'; id: number; mode: number; off: number; len: number }
  | { op: 'lseek'; id: number; off: number; whence: number }
  /** getdents64 of the directory: every name, '.' and '..' included, sorted. */
  | { op: 'readdir'; path: string }
  /** node:fs readdirSync(path, { encoding: 'buffer' }), sorted. */
  | { op: 'readdirNode'; path: string }
  | { op: 'access'; path: string; mode: number }
  /** node:net: a server listening on a unix socket at path, an echo through it, its close. */
  | { op: 'listen'; path: string }
  | { op: 'connect'; path: string; data: string }
  | { op: 'unlisten'; path: string }
  // Harness steps and queries, not part of a sequence:
  /** The driver waits (e.g. for the mount's attribute timeout after a change behind its back). */
  | { op: 'sleep'; ms: number }
  /** Every name under the root, recursively, lstat'ed as in WalkEntry. */
  | { op: 'walk' }
  /** fstat of every fd this executor holds. */
  | { op: 'fstatAll' }
  /** lstat, stat and parent-dir stat of paths (which inode an operation is about to touch). */
  | { op: 'probe'; paths: string[] };

/** What an executor answers: `meta` is for the driver only and never compared. */
export type Reply =
  | { ok: true; value?: unknown; meta?: unknown }
  | { ok: false; code: string };

/** A stat as the executor reports it (everything; the driver chooses what to compare). */
export interface StatJson {
  type: string;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  rdev: number;
  ino: string;
  atime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
}

export interface WalkEntry extends StatJson {
  /** The path from the root, hex; '' is the root itself. */
  path: string;
  /** Symlink target, hex. */
  target?: string;
  /** sha256 of a regular file's content. */
  hash?: string;
  /** Every extended attribute name listed, sorted, with its value (hex). */
  xattrs?: [string, string][];
  /** An errno met while describing this entry (then compared too). */
  err?: string;
}

export interface ProbeJson {
  /** lstat of the path: ino and type, or null when it does not resolve. */
  l: { ino: string; type: string } | null;
  /** stat (following a final symlink). */
  s: { ino: string; type: string } | null;
  /** stat of the parent directory (following symlinks). */
  p: { ino: string; type: string } | null;
}

// The ABI numbers sys/ already names come from there; the rest are the usual Linux values.
export {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, O_DIRECTORY, O_NOFOLLOW, O_PATH, RENAME_EXCHANGE,
  RENAME_NOREPLACE, SEEK_DATA, SEEK_HOLE, XATTR_CREATE, XATTR_REPLACE,
};
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_NOATIME = 0o1000000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFSOCK = 0o140000;
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

export function typeName(mode: number): string {
  switch (mode & 0o170000) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFIFO: return 'fifo';
    case S_IFSOCK: return 'socket';
    case S_IFCHR: return 'chr';
    case S_IFBLK: return 'blk';
    default: return `type${(mode >> 12).toString(8)}`;
  }
}

// ---- the users ----------------------------------------------------------------------------------

export interface User { name: string; uid: number; gid: number; groups: number[] }
export const ROOT: User = { name: 'root', uid: 0, gid: 0, groups: [] };
export const U1000: User = { name: 'u1000', uid: 1000, gid: 1000, groups: [] };
/** A second user who is also in group 1000, so group permissions and chgrp to 1000 apply. */
export const U1001: User = { name: 'u1001', uid: 1001, gid: 1001, groups: [1000] };
export const USERS: readonly User[] = [ROOT, U1000, U1001];

/**
 * One operation of a sequence, by one of USERS (an index). `via: 'backing'` runs it as root on the
 * directory behind the side instead (the mount's SOURCE; for a bare side, the same directory), and
 * `check: false` skips the comparison of the trees after it (the answer is still compared).
 */
export interface Step { user: number; op: Op; via?: 'backing'; check?: boolean }

// ---- bytes ----------------------------------------------------------------------------------------

export const hex = (b: Buffer | string): string => (typeof b === 'string' ? Buffer.from(b) : b).toString('hex');
export const unhex = (h: string): Buffer => Buffer.from(h, 'hex');
const cat = (...parts: (Buffer | string)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

/** A readable rendering of bytes: printable ASCII as is, others \xNN, long runs shortened. */
export function showBytes(b: Buffer, max = 48): string {
  let s = '';
  for (const c of b.subarray(0, max)) {
    if (c === 0x5c) s += '\\\\';
    else if (c === 0x27) s += "\\'";
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return `'${s}${b.length > max ? `'...(${b.length} bytes)` : "'"}`;
}

/** A path as shown in messages: components shortened to keep deep paths readable. */
export function showPath(h: string): string {
  const b = unhex(h);
  if (b.length <= 64) return showBytes(b);
  const parts: Buffer[] = [];
  let at = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0x2f) {
      parts.push(b.subarray(at, i));
      at = i + 1;
    }
  }
  return `${parts.map((p) => (p.length > 12 ? `${showBytes(p, 8).slice(0, -1)}..[${p.length}]'` : showBytes(p))).join('/')} (${b.length} bytes)`;
}

const showTime = (t: Time): string => (typeof t === 'string' ? t : `${t.sec}.${String(t.nsec).padStart(9, '0')}`);
const oct = (n: number): string => `0${n.toString(8)}`;

export function showFlags(flags: number): string {
  const acc = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'][flags & 3]!;
  const names: [number, string][] = [[O_CREAT, 'O_CREAT'], [O_EXCL, 'O_EXCL'], [O_TRUNC, 'O_TRUNC'], [O_APPEND, 'O_APPEND'],
    [O_NONBLOCK, 'O_NONBLOCK'], [O_DIRECTORY, 'O_DIRECTORY'], [O_NOFOLLOW, 'O_NOFOLLOW'], [O_PATH, 'O_PATH']];
  return [acc, ...names.filter(([f]) => flags & f).map(([, n]) => n)].join('|');
}

function showTarget(t: XTarget | { path: string; follow: boolean }): string {
  return 'id' in t ? `fd#${t.id}` : `${showPath(t.path)}${t.follow ? '' : ' (nofollow)'}`;
}

/** The operation in words, for failure messages. */
export function showOp(op: Op): string {
  switch (op.op) {
    case 'open': return `open(${showPath(op.path)}, ${showFlags(op.flags)}, ${oct(op.mode)}) umask ${oct(op.umask)} -> fd#${op.id}`;
    case 'close': case 'fstat': return `${op.op}(fd#${op.id})`;
    case 'read': return op.off === undefined ? `read(fd#${op.id}, ${op.len})` : `pread(fd#${op.id}, ${op.len}, off ${op.off})`;
    case 'write': {
      const n = op.data.length / 2;
      return op.off === undefined ? `write(fd#${op.id}, ${n} bytes)` : `pwrite(fd#${op.id}, ${n} bytes, off ${op.off})`;
    }
    case 'ftruncate': return `ftruncate(fd#${op.id}, ${op.len})`;
    case 'truncate': return `truncate(${showPath(op.path)}, ${op.len})`;
    case 'stat': return `${op.follow ? 'stat' : 'lstat'}(${showPath(op.path)})`;
    case 'unlink': case 'rmdir': case 'readlink': case 'readdir': case 'readdirNode': case 'listen': case 'unlisten':
      return `${op.op}(${showPath(op.path)})`;
    case 'link': return `link(${showPath(op.from)}, ${showPath(op.to)}${op.follow ? ', AT_SYMLINK_FOLLOW' : ''})`;
    case 'rename': return `rename(${showPath(op.from)}, ${showPath(op.to)}, ${['0', 'RENAME_NOREPLACE', 'RENAME_EXCHANGE'][op.flags] ?? op.flags})`;
    case 'mkdir': return `mkdir(${showPath(op.path)}, ${oct(op.mode)}) umask ${oct(op.umask)}`;
    case 'mknod': return `mknod(${showPath(op.path)}, ${typeName(op.mode)} ${oct(op.mode & 0o7777)}, ${op.major}:${op.minor}) umask ${oct(op.umask)}`;
    case 'symlink': return `symlink(${showPath(op.target)}, ${showPath(op.path)})`;
    case 'chmod': return `chmod(${showTarget(op)}, ${oct(op.mode)})`;
    case 'fchmod': return `fchmod(fd#${op.id}, ${oct(op.mode)})`;
    case 'chown': return `chown(${showTarget(op)}, ${op.uid}, ${op.gid})`;
    case 'fchown': return `fchown(fd#${op.id}, ${op.uid}, ${op.gid})`;
    case 'utimens': return `utimensat(${showTarget(op.target)}, atime ${showTime(op.atime)}, mtime ${showTime(op.mtime)})`;
    case 'setxattr': return `setxattr(${showTarget(op.target)}, ${op.name}, ${op.value.length / 2} bytes, ${['0', 'XATTR_CREATE', 'XATTR_REPLACE'][op.flags]})`;
    case 'getxattr': case 'removexattr': return `${op.op}(${showTarget(op.target)}, ${op.name})`;
    case 'listxattr': return `listxattr(${showTarget(op.target)})`;
    case 'fallocate': {
      const m = [[FALLOC_FL_KEEP_SIZE, 'KEEP_SIZE'], [FALLOC_FL_PUNCH_HOLE, 'PUNCH_HOLE'], [FALLOC_FL_ZERO_RANGE, 'ZERO_RANGE']]
        .filter(([f]) => op.mode & (f as number)).map(([, n]) => n).join('|') || '0';
      return `fallocate(fd#${op.id}, ${m}, off ${op.off}, len ${op.len})`;
    }
    case 'lseek': return `lseek(fd#${op.id}, ${op.off}, ${['SEEK_SET', 'SEEK_CUR', 'SEEK_END', 'SEEK_DATA', 'SEEK_HOLE'][op.whence]})`;
    case 'access': return `access(${showPath(op.path)}, ${op.mode})`;
    case 'connect': return `connect(${showPath(op.path)}, ${op.data.length / 2} bytes)`;
    default: return JSON.stringify(op);
  }
}

// ---- PRNG -----------------------------------------------------------------------------------------

/** mulberry32: a seed (one number) gives the same stream on every run and machine. */
export class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of items) total += w;
    let r = this.next() * total;
    for (const [w, v] of items) {
      if ((r -= w) < 0) return v;
    }
    return items[items.length - 1]![1];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const x = (this.next() * 4294967296) >>> 0;
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = (x >>> (8 * j)) & 0xff;
    }
    return b;
  }
  /** A name of n bytes, any byte but '/' and NUL. */
  nameBytes(n: number): Buffer {
    const b = this.bytes(n);
    for (let i = 0; i < n; i++) if (b[i] === 0 || b[i] === 0x2f) b[i] = 0x80 + i % 64;
    if (b.equals(Buffer.from('.')) || b.equals(Buffer.from('..'))) b[0] = 0xe9;
    return b;
  }
}

// ---- names and the initial tree --------------------------------------------------------------------

/** Bytes 1..255 except '/', cycled: a 255-byte name that is no valid UTF-8. */
function spread(n: number, start: number): Buffer {
  const b = Buffer.alloc(n);
  let c = start;
  for (let i = 0; i < n; i++) {
    if (c === 0x2f || c === 0) c++;
    if (c > 255) c = 1;
    if (c === 0x2f) c++;
    b[i] = c++;
  }
  return b;
}

/** The pool of names ops collide on: short and long, ASCII, UTF-8 and bytes that are no UTF-8. */
export const NAMES: readonly Buffer[] = [
  Buffer.from('a'),
  Buffer.from('b'),
  Buffer.from('c.txt'),
  Buffer.from([0xe9]), // latin-1 e-acute: not UTF-8
  Buffer.from('\u00e9'), // the same letter in UTF-8 (0xc3 0xa9): a different name
  Buffer.from([0xff, 0xfe, 0x41, 0x80]),
  Buffer.from('new\nline\t'),
  Buffer.from('...'),
  spread(255, 1),
  spread(200, 0x80),
];

/** A directory chain whose path is 3839 bytes: with a 255-byte name, a path of PATH_MAX-1 = 4095. */
export const DEEP_COMPONENTS: readonly Buffer[] = [
  Buffer.from('deep'),
  ...Array.from({ length: 15 }, (_, i) => spread(250, 0x20 + i * 13)),
  spread(69, 0xa0),
];
export const DEEP: Buffer = Buffer.concat(DEEP_COMPONENTS.flatMap((c, i) => (i === 0 ? [c] : [Buffer.from('/'), c])));
if (DEEP.length !== 3839) throw new Error(`DEEP is ${DEEP.length} bytes`);

const p = (...parts: (Buffer | string)[]): string => hex(Buffer.concat(parts.map((x) => (typeof x === 'string' ? Buffer.from(x) : x))));

/** Root builds the same starting tree on each side: owners, modes, set-id and sticky dirs, a deep chain. */
export function initialTree(): Step[] {
  const steps: Step[] = [];
  const r = (op: Op): void => void steps.push({ user: 0, op });
  let id = 1_000_000;
  const file = (path: string, mode: number, uid: number, gid: number, data: string): void => {
    const fd = id++;
    r({ op: 'open', id: fd, path: p(path), flags: O_CREAT | O_EXCL | O_WRONLY, mode: 0o600, umask: 0 });
    r({ op: 'write', id: fd, data: hex(data) });
    r({ op: 'close', id: fd });
    if (uid !== 0 || gid !== 0) r({ op: 'chown', path: p(path), uid, gid, follow: false });
    r({ op: 'chmod', path: p(path), mode, follow: false }); // after chown, which clears set-id bits
  };
  const dir = (path: string | Buffer, mode: number, uid = 0, gid = 0): void => {
    r({ op: 'mkdir', path: typeof path === 'string' ? p(path) : hex(path), mode: 0o700, umask: 0 });
    if (uid !== 0 || gid !== 0) r({ op: 'chown', path: typeof path === 'string' ? p(path) : hex(path), uid, gid, follow: false });
    r({ op: 'chmod', path: typeof path === 'string' ? p(path) : hex(path), mode, follow: false });
  };
  dir('d', 0o777);
  dir('sticky', 0o1777);
  dir('sgid', 0o2775, 0, 1000);
  dir('u1000', 0o755, 1000, 1000);
  file('f-root', 0o644, 0, 0, 'root data\n');
  file('f-1000', 0o600, 1000, 1000, 'private to 1000\n');
  file('f-1001', 0o664, 1001, 1001, 'group-writable, 1001\n');
  file('setuid', 0o4755, 1000, 1000, '#!/bin/sh\n');
  file('sticky/f-1000', 0o644, 1000, 1000, 'in sticky, of 1000\n');
  file('sticky/f-1001', 0o666, 1001, 1001, 'in sticky, of 1001, world-writable\n');
  file('sgid/g', 0o2664, 0, 1000, 'setgid file\n');
  file('u1000/own', 0o644, 1000, 1000, 'home file\n');
  r({ op: 'setxattr', target: { path: p('f-root'), follow: false }, name: 'user.origin', value: hex('root'), flags: 0 });
  r({ op: 'symlink', target: p('d'), path: p('ln-d') });
  r({ op: 'symlink', target: p('f-root'), path: p('ln-f') });
  r({ op: 'symlink', target: p(Buffer.from([0xe9]), '/', Buffer.from([0xff])), path: p('ln-dangling') });
  for (let i = 1; i <= DEEP_COMPONENTS.length; i++) {
    const path = Buffer.concat(DEEP_COMPONENTS.slice(0, i).flatMap((c, j) => (j === 0 ? [c] : [Buffer.from('/'), c])));
    r({ op: 'mkdir', path: hex(path), mode: 0o777, umask: 0 });
  }
  return steps;
}

// ---- the generator ----------------------------------------------------------------------------------

/** Parent directories ops pick from (hex of 'dir/' or '' for the root), weighted. */
const PARENTS: readonly (readonly [number, Buffer])[] = [
  [10, Buffer.alloc(0)],
  [6, Buffer.from('d/')],
  [4, Buffer.from('sticky/')],
  [3, Buffer.from('sgid/')],
  [3, Buffer.from('u1000/')],
  [3, cat(DEEP, '/')],
  [2, cat('d/', NAMES[0]!, '/')],
  [2, cat(NAMES[1]!, '/')],
  [1, cat(NAMES[3]!, '/')],
  [1, Buffer.from('ln-d/')],
  [1, Buffer.from('f-root/')], // ENOTDIR
  [1, cat(DEEP, '/', NAMES[0]!, '/')], // some names there are over PATH_MAX: ENAMETOOLONG
];

const MODES_FILE = [0o644, 0o600, 0o666, 0o755, 0o700, 0o4755, 0o2755, 0o6777, 0o1777, 0o000, 0o444, 0o2644, 0o777];
const MODES_DIR = [0o755, 0o777, 0o700, 0o1777, 0o2775, 0o3777, 0o555, 0o000];
const UMASKS = [0o022, 0o022, 0o000, 0o077, 0o027, 0o002];
const IDS = [-1, 0, 1000, 1001];
const XATTR_NAMES: readonly (readonly [number, string])[] = [
  [5, 'user.a'], [3, 'user.b'], [1, `user.${'n'.repeat(200)}`], [1, 'trusted.t'], [1, 'security.x'], [0.5, 'bogus.x'],
];
const LENGTHS = [0, 1, 100, 4095, 4096, 4097, 10_000, 65_536, 70_000];
const OFFSETS = [0, 1, 100, 4095, 4096, 8192, 12_000, 65_536, 100_000];

interface OpenFd { id: number; user: number; path: string; flags: number; type: string }

/** What the generator believes a name is (from the oracle's answers; a bias toward hits, not a model). */
type Kind = 'file' | 'dir' | 'symlink' | 'special';

const FD_KINDS = new Set(['close', 'read', 'write', 'ftruncate', 'fstat', 'fchmod', 'fchown', 'fallocate', 'lseek']);

/**
 * Random steps over NAMES and PARENTS. The stream depends only on the seed and on the oracle's
 * answers (which fds opened, which names exist), so a seed replays the same prefix whatever the
 * number of ops, and whatever the tested side answers.
 */
export class Generator {
  readonly rng: Rng;
  private nextId = 1;
  private readonly open = new Map<number, OpenFd>();
  /** Names the oracle said exist, with what they are. */
  private readonly existing = new Map<string, Kind>();
  /** Paths that got an xattr, with its name. */
  private readonly xattrs: [string, string][] = [];
  /** The user of the step being made, when an fd chosen on the way forces it (its opener). */
  private fdUser: number | undefined;

  constructor(readonly seed: number) {
    this.rng = new Rng(seed);
    for (const step of initialTree()) {
      // Of the deep chain only its end: the dirs on the way would make most picks directories.
      if (step.op.op === 'mkdir' && unhex(step.op.path).subarray(0, 4).equals(DEEP_COMPONENTS[0]!) && step.op.path !== hex(DEEP)) continue;
      this.observe(step, { ok: true });
    }
  }

  /** Tells the generator what the oracle answered: fds that opened, names that now exist or not. */
  observe(step: Step, reply: Reply): void {
    const op = step.op;
    if (op.op === 'close') this.open.delete(op.id);
    if (!reply.ok) return;
    switch (op.op) {
      case 'open': {
        const type = (reply.meta as { type?: string } | undefined)?.type ?? '';
        this.open.set(op.id, { id: op.id, user: step.user, path: op.path, flags: op.flags, type });
        if (op.flags & O_CREAT && !this.existing.has(op.path)) this.existing.set(op.path, 'file');
        break;
      }
      case 'mkdir': this.existing.set(op.path, 'dir'); break;
      case 'mknod': this.existing.set(op.path, (op.mode & 0o170000) === S_IFREG ? 'file' : 'special'); break;
      case 'symlink': this.existing.set(op.path, 'symlink'); break;
      case 'link': this.existing.set(op.to, this.existing.get(op.from) ?? 'file'); break;
      case 'unlink': case 'rmdir': this.existing.delete(op.path); break;
      case 'setxattr':
        if ('path' in op.target) this.xattrs.push([op.target.path, op.name]);
        if (this.xattrs.length > 16) this.xattrs.shift();
        break;
      case 'rename': {
        const from = this.existing.get(op.from) ?? 'file';
        const to = this.existing.get(op.to);
        if (op.flags === RENAME_EXCHANGE) {
          if (to) this.existing.set(op.from, to);
        } else this.existing.delete(op.from);
        this.existing.set(op.to, from);
        break;
      }
      default: break;
    }
  }

  name(): Buffer {
    const r = this.rng;
    return r.weighted<Buffer>([
      [5, NAMES[0]!], [4, NAMES[1]!], [3, NAMES[2]!], [3, NAMES[3]!], [2, NAMES[4]!], [2, NAMES[5]!],
      [1, NAMES[6]!], [1, NAMES[7]!], [2, NAMES[8]!], [1, NAMES[9]!],
      [1, Buffer.from('f-root')], [1, Buffer.from('f-1000')], [1, Buffer.from('f-1001')], [1, Buffer.from('setuid')],
      [1, Buffer.from('ln-f')], [1, Buffer.from('ln-d')], [1, Buffer.from('d')],
    ]);
  }

  /**
   * A path: with probability `hit` one that exists (of `kind` when given and there is one), else a
   * pool name under a parent (often new), now and then something odd ('.', a trailing slash).
   */
  path(hit = 0.65, kind?: Kind): string {
    const r = this.rng;
    if (r.chance(hit) && this.existing.size) {
      const all = [...this.existing.keys()];
      const ofKind = kind ? all.filter((p) => this.existing.get(p) === kind) : all;
      return r.pick(ofKind.length ? ofKind : all);
    }
    if (r.chance(0.02)) return hex(r.pick([Buffer.from('.'), Buffer.from('d/.'), Buffer.from('sticky'), Buffer.from('d/..')]));
    if (r.chance(0.02)) return hex(r.pick([Buffer.from('f-root/'), Buffer.from('d/'), cat(NAMES[0]!, '/'), cat(NAMES[1]!, '//')]));
    const dirs = [...this.existing.entries()].filter(([p, k]) => k === 'dir' && p.length < 2 * 3900).map(([p]) => p);
    const parent = dirs.length && r.chance(0.3) ? cat(unhex(r.pick(dirs)), '/') : r.weighted(PARENTS);
    return hex(cat(parent, this.name()));
  }

  /** A path for a creation: mostly new names, sometimes an existing one (EEXIST). */
  newPath(): string {
    return this.path(0.15);
  }

  /** A symlink target: a pool name, a path into the tree, or arbitrary bytes; never '..' nor absolute. */
  target(): string {
    const r = this.rng;
    return hex(r.weighted<() => Buffer>([
      [4, () => this.name()],
      [2, () => cat(r.weighted(PARENTS.slice(0, 8)), this.name())],
      [2, () => r.nameBytes(1 + r.int(255))],
      [1, () => Buffer.concat(Array.from({ length: 2 + r.int(6) }, (_, i) => (i ? cat('/', r.nameBytes(1 + r.int(200))) : r.nameBytes(1 + r.int(200)))))],
      [1, () => Buffer.from('.')],
    ])());
  }

  private time(): Time {
    const r = this.rng;
    return r.weighted<() => Time>([
      [6, () => ({
        sec: r.pick([0, 1, 1_234_567_890, 1_700_000_000, 2_147_483_647, 2_147_483_648, 4_102_444_800, -1, -315_619_200]) + r.int(1000),
        nsec: r.pick([0, 1, 999_999_999, 500_000_000, r.int(1_000_000_000)]),
      })],
      [1, () => 'now'],
      [1, () => 'omit'],
      [0.1, () => ({ sec: 1, nsec: 1_000_000_000 })], // EINVAL
    ])();
  }

  /** An open fd, sometimes (probability p); the step is then done by the fd's opener. */
  private fd(p = 1): OpenFd | undefined {
    if (!this.rng.chance(p)) return undefined;
    const fds = [...this.open.values()];
    if (!fds.length) return undefined;
    const fd = this.rng.pick(fds);
    this.fdUser = fd.user;
    return fd;
  }

  /** Where an xattr call goes, and the name: often one that was set before. */
  private xtarget(): [XTarget, string] {
    const r = this.rng;
    if (this.xattrs.length && r.chance(0.5)) {
      const [path, name] = r.pick(this.xattrs);
      return [{ path, follow: r.chance(0.5) }, r.chance(0.8) ? name : r.weighted(XATTR_NAMES)];
    }
    const fd = this.fd(0.25);
    return [fd ? { id: fd.id } : { path: this.path(0.8), follow: r.chance(0.5) }, r.weighted(XATTR_NAMES)];
  }

  /** The next step; an operation on an fd is done by the user that opened it. */
  next(): Step {
    const r = this.rng;
    this.fdUser = undefined;
    const user = r.weighted([[5, 0], [3, 1], [3, 2]] as const);
    const kind = r.weighted<string>([
      [14, 'open'], [5, 'close'], [5, 'read'], [7, 'write'], [2, 'ftruncate'], [2, 'truncate'], [3, 'fstat'], [3, 'stat'],
      [5, 'unlink'], [3, 'rmdir'], [4, 'link'], [7, 'rename'], [5, 'mkdir'], [3, 'mknod'], [4, 'symlink'], [2, 'readlink'],
      [4, 'chmod'], [1, 'fchmod'], [3, 'chown'], [1, 'fchown'], [6, 'utimens'], [4, 'setxattr'], [2, 'getxattr'],
      [2, 'listxattr'], [2, 'removexattr'], [4, 'fallocate'], [3, 'lseek'], [2, 'readdir'], [2, 'access'],
    ]);
    let op: Op;
    if (FD_KINDS.has(kind)) {
      const fd = this.fd();
      op = fd ? this.fdOp(kind, fd) : this.pathOp(kind === 'fchmod' ? 'chmod' : kind === 'fchown' ? 'chown' : 'open');
    } else op = this.pathOp(kind);
    return { user: this.fdUser ?? user, op };
  }

  private fdOp(kind: string, fd: OpenFd): Op {
    const r = this.rng;
    const id = fd.id;
    switch (kind) {
      case 'close': return { op: 'close', id };
      case 'read': return r.chance(0.5) ? { op: 'read', id, len: r.pick(LENGTHS) } : { op: 'read', id, len: r.pick(LENGTHS), off: r.pick(OFFSETS) };
      case 'write': {
        const data = hex(r.bytes(r.pick([1, 10, 1000, 4096, 5000, 20_000, 70_000])));
        return r.chance(0.5) ? { op: 'write', id, data } : { op: 'write', id, data, off: r.pick(OFFSETS) };
      }
      case 'ftruncate': return { op: 'ftruncate', id, len: r.pick(OFFSETS) };
      case 'fstat': return { op: 'fstat', id };
      case 'fchmod': return { op: 'fchmod', id, mode: r.pick(MODES_FILE) };
      case 'fchown': return { op: 'fchown', id, uid: r.pick(IDS), gid: r.pick(IDS) };
      case 'fallocate': return {
        op: 'fallocate', id,
        mode: r.pick([0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE,
          FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE]),
        off: r.pick([0, 100, 4096, 8192, 65_536]),
        len: r.pick([1, 4096, 12_288, 65_536, 0]),
      };
      default:
        // A directory fd on FUSE is seeked by the kernel alone (generic_file_llseek over the
        // directory's st_size), never by the filesystem: ext4's own answers (SEEK_END = LLONG_MAX on
        // an htree dir) cannot be matched by any FUSE server, so only rewinds are tried there.
        if (fd.type === 'dir') return { op: 'lseek', id, off: 0, whence: r.pick([SEEK_SET, SEEK_CUR]) };
        return { op: 'lseek', id, off: r.pick(OFFSETS), whence: r.pick([SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_DATA, SEEK_HOLE, SEEK_HOLE]) };
    }
  }

  private pathOp(kind: string): Op {
    const r = this.rng;
    switch (kind) {
      case 'open': {
        let flags = r.pick([O_RDONLY, O_WRONLY, O_RDWR, O_RDWR]) | O_NONBLOCK;
        if (r.chance(0.5)) flags |= O_CREAT;
        if (r.chance(0.2)) flags |= O_EXCL;
        if (r.chance(0.2)) flags |= O_TRUNC;
        if (r.chance(0.2)) flags |= O_APPEND;
        if (r.chance(0.1)) flags |= O_DIRECTORY;
        if (r.chance(0.15)) flags |= O_NOFOLLOW;
        if (r.chance(0.05)) flags = (flags & (O_DIRECTORY | O_NOFOLLOW)) | O_PATH;
        const path = flags & O_CREAT ? this.path(0.4) : this.path(0.8, r.chance(0.7) ? 'file' : undefined);
        return { op: 'open', id: this.nextId++, path, flags, mode: r.pick(MODES_FILE), umask: r.pick(UMASKS) };
      }
      case 'truncate': return { op: 'truncate', path: this.path(0.8, 'file'), len: r.pick(OFFSETS) };
      case 'stat': return { op: 'stat', path: this.path(), follow: r.chance(0.5) };
      case 'unlink': {
        const fd = [...this.open.values()];
        return { op: 'unlink', path: fd.length && r.chance(0.4) ? r.pick(fd).path : this.path(0.8) };
      }
      case 'rmdir': return { op: 'rmdir', path: this.path(0.7, 'dir') };
      case 'link': return { op: 'link', from: this.path(0.8), to: this.newPath(), follow: r.chance(0.1) };
      case 'rename': {
        const flags = r.pick([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]);
        if (r.chance(0.05)) {
          // A directory into itself (EINVAL), or over its own parent (ENOTEMPTY or EINVAL).
          const dir = this.path(1, 'dir');
          const inside = hex(cat(unhex(dir), '/', this.name()));
          return r.chance(0.5) ? { op: 'rename', from: dir, to: inside, flags } : { op: 'rename', from: inside, to: dir, flags };
        }
        return { op: 'rename', from: this.path(0.85), to: this.path(0.4), flags };
      }
      case 'mkdir': return { op: 'mkdir', path: this.newPath(), mode: r.pick(MODES_DIR), umask: r.pick(UMASKS) };
      case 'mknod': {
        const [type, major, minor] = r.pick([[S_IFIFO, 0, 0], [S_IFIFO, 0, 0], [S_IFSOCK, 0, 0], [S_IFREG, 0, 0],
          [S_IFCHR, 1, 3], [S_IFCHR, 1, 5], [S_IFCHR, 240, 1], [S_IFBLK, 240, 2]] as const);
        return { op: 'mknod', path: this.newPath(), mode: type | r.pick([0o644, 0o666, 0o600, 0o4755, 0o1777]), major, minor, umask: r.pick(UMASKS) };
      }
      case 'symlink': return { op: 'symlink', target: this.target(), path: this.newPath() };
      case 'readlink': return { op: 'readlink', path: this.path(0.8, 'symlink') };
      case 'chmod': {
        const fd = this.fd(0.2);
        if (fd) return { op: 'fchmod', id: fd.id, mode: r.pick(MODES_FILE) };
        return { op: 'chmod', path: this.path(0.8), mode: r.chance(0.3) ? r.pick(MODES_DIR) : r.pick(MODES_FILE), follow: r.chance(0.85) };
      }
      case 'chown': {
        const fd = this.fd(0.2);
        if (fd) return { op: 'fchown', id: fd.id, uid: r.pick(IDS), gid: r.pick(IDS) };
        // Unprivileged users mostly try chgrp (-1 uid), which the owner may do to a group of theirs.
        return { op: 'chown', path: this.path(0.8), uid: r.chance(0.5) ? -1 : r.pick(IDS), gid: r.pick(IDS), follow: r.chance(0.7) };
      }
      case 'utimens': {
        const fd = this.fd(0.2);
        return { op: 'utimens', target: fd ? { id: fd.id } : { path: this.path(0.8), follow: r.chance(0.7) }, atime: this.time(), mtime: this.time() };
      }
      case 'setxattr': {
        const [target, name] = this.xtarget();
        return { op: 'setxattr', target, name, value: hex(r.bytes(r.pick([0, 1, 17, 100, 3000]))), flags: r.pick([0, 0, XATTR_CREATE, XATTR_REPLACE]) };
      }
      case 'getxattr': {
        const [target, name] = this.xtarget();
        return { op: 'getxattr', target, name };
      }
      case 'listxattr': return { op: 'listxattr', target: this.xtarget()[0] };
      case 'removexattr': {
        const [target, name] = this.xtarget();
        return { op: 'removexattr', target, name };
      }
      case 'readdir': return { op: r.chance(0.5) ? 'readdir' : 'readdirNode', path: this.path(0.8, 'dir') };
      case 'access': return { op: 'access', path: this.path(), mode: r.pick([0, 1, 2, 4, 6, 7]) };
      default: throw new Error(`no generator for ${kind}`);
    }
  }
}
