// Operations Node has no API for, done with the standard tools (util-linux, coreutils).
import { execFile } from 'node:child_process';
import { constants } from 'node:os';

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _out, stderr) => (err ? reject(errnoFromMessage(stderr)) : resolve()));
  });
}

/** Map a tool's strerror text back to an errno-carrying error. */
function errnoFromMessage(text: string): Error & { code: string } {
  const table: Array<[RegExp, string]> = [
    [/File exists/i, 'EEXIST'], [/No such file/i, 'ENOENT'], [/Permission denied/i, 'EACCES'],
    [/Operation not permitted/i, 'EPERM'], [/not supported/i, 'EOPNOTSUPP'], [/No space/i, 'ENOSPC'],
    [/Invalid argument/i, 'EINVAL'], [/File too large/i, 'EFBIG'],
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
