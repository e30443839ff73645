// Operations Node has no API for, done with the standard tools (util-linux, coreutils).
import { execFile } from 'node:child_process';
import { constants } from 'node:os';

function run(cmd: string, args: string[]): Promise<void> {
  return runOut(cmd, args).then(() => undefined);
}

function runOut(cmd: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 }, (err, out, stderr) => {
      if (!err) return resolve(out);
      reject(errnoFromMessage(stderr.toString()));
    });
  });
}

/** Map a tool's strerror text back to an errno-carrying error. */
function errnoFromMessage(text: string): Error & { code: string } {
  const table: Array<[RegExp, string]> = [
    [/File exists/i, 'EEXIST'], [/No such file/i, 'ENOENT'], [/Permission denied/i, 'EACCES'],
    [/Operation not permitted/i, 'EPERM'], [/not supported/i, 'EOPNOTSUPP'], [/No space/i, 'ENOSPC'],
    [/Invalid argument/i, 'EINVAL'], [/File too large/i, 'EFBIG'], [/No such attribute|No data available/i, 'ENODATA'],
    [/out of range/i, 'ERANGE'], [/Argument list too long/i, 'E2BIG'],
  ];
  const code = table.find(([re]) => re.test(text))?.[1] ?? 'EIO';
  return Object.assign(new Error(`${code}: ${text.trim()}`), { code });
}

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** mknod(2) for fifos and devices (regular files are created with open). */
export async function mknod(path: string, mode: number, rdev: number): Promise<void> {
  const perms = (mode & 0o7777).toString(8);
  const type = mode & S_IFMT;
  if (type === S_IFIFO) return run('mkfifo', ['-m', perms, '--', path]);
  if (type === S_IFCHR || type === S_IFBLK) {
    const major = (rdev >> 8) & 0xfff;
    const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    return run('mknod', ['-m', perms, '--', path, type === S_IFCHR ? 'c' : 'b', String(major), String(minor)]);
  }
  throw Object.assign(new Error('EPERM: mknod of this type'), { code: 'EPERM' });
}

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;

/** fallocate(2) through util-linux fallocate(1) for the modes it names; others EOPNOTSUPP. */
export async function fallocate(path: string, offset: number, length: number, mode: number): Promise<void> {
  const args = ['-o', String(offset), '-l', String(length)];
  if (mode === 0) return run('fallocate', [...args, path]);
  if (mode === FALLOC_FL_KEEP_SIZE) return run('fallocate', ['-n', ...args, path]);
  if (mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) return run('fallocate', ['-p', ...args, path]);
  if ((mode & ~FALLOC_FL_KEEP_SIZE) === FALLOC_FL_ZERO_RANGE) {
    return run('fallocate', ['-z', ...(mode & FALLOC_FL_KEEP_SIZE ? ['-n'] : []), ...args, path]);
  }
  throw Object.assign(new Error('EOPNOTSUPP: fallocate mode'), { code: 'EOPNOTSUPP', errno: constants.errno.EOPNOTSUPP });
}

// Extended attributes: Node has no API, so the attr package's getfattr/setfattr do it. -h acts on
// a symlink itself, as the kernel asks for the node's own attributes.

export function getxattr(path: string, name: string): Promise<Buffer> {
  return runOut('getfattr', ['-h', '--absolute-names', '--only-values', '-n', name, '--', path]);
}

/** NUL-separated names, as listxattr(2) returns them. */
export async function listxattr(path: string): Promise<Buffer> {
  const out = (await runOut('getfattr', ['-h', '--absolute-names', '-m', '-', '--', path])).toString('utf8');
  const names = out.split('\n').filter((l) => l !== '' && !l.startsWith('# file:'));
  return Buffer.from(names.map((n) => n.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) + '\0').join(''));
}

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

export async function setxattr(path: string, name: string, value: Buffer, flags: number): Promise<void> {
  if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
    const exists = await getxattr(path, name).then(() => true, () => false);
    if (flags & XATTR_CREATE && exists) throw Object.assign(new Error('EEXIST'), { code: 'EEXIST' });
    if (flags & XATTR_REPLACE && !exists) throw Object.assign(new Error('ENODATA'), { code: 'ENODATA' });
  }
  // setfattr rejects an empty "0s" value; leaving out -v sets an empty one.
  const valueArgs = value.length === 0 ? [] : ['-v', `0s${value.toString('base64')}`];
  return run('setfattr', ['-h', '-n', name, ...valueArgs, '--', path]);
}

export function removexattr(path: string, name: string): Promise<void> {
  return run('setfattr', ['-h', '-x', name, '--', path]);
}
