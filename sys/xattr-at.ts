// Extended attributes of a name in a directory fd (O_PATH allowed), never following a final
// symlink: the *xattrat calls of Linux 6.13 with AT_SYMLINK_NOFOLLOW. This is the only way to reach
// a symlink's own xattrs without a path (an O_PATH fd with AT_EMPTY_PATH is refused with EBADF, and
// /proc/self/fd/N would be followed). The value travels through a struct xattr_args {u64 value
// pointer; u32 size; u32 flags}, so values go through one buffer of native memory whose address
// never moves. Each call returns undefined when the kernel lacks the syscall (ENOSYS).
import koffi from 'koffi';
import * as c from './libc.js';
import { cstr, type PathArg } from './libc.js';
import { SysError } from './errors.js';

const AT = 0x100; // AT_SYMLINK_NOFOLLOW
const ENOSYS = 38;
const ENODATA = 61;
const SIZE_MAX = 65536;

const native = koffi.alloc('uint8_t', SIZE_MAX);
const nativeAddress = koffi.address(native);
const nativeBytes = Buffer.from(koffi.view(native, SIZE_MAX));
const args = Buffer.alloc(16);
let listBuf = Buffer.alloc(SIZE_MAX);

function setArgs(size: number, flags: number): Buffer {
  args.writeBigUInt64LE(nativeAddress, 0);
  args.writeUInt32LE(size, 8);
  args.writeUInt32LE(flags, 12);
  return args;
}

/** undefined: no such syscall; null: no such attribute. */
export function getxattrAt(dirfd: number, path: PathArg, name: string): Buffer | null | undefined {
  const n = c.getxattrat(dirfd, cstr(path), AT, name, setArgs(SIZE_MAX, 0));
  if (n >= 0) return Buffer.from(nativeBytes.subarray(0, n));
  const e = c.errno();
  if (e === ENOSYS) return undefined;
  if (e === ENODATA) return null;
  throw new SysError(e, 'getxattrat');
}

export function listxattrAt(dirfd: number, path: PathArg): Buffer | undefined {
  const p = cstr(path);
  for (;;) {
    const n = c.listxattrat(dirfd, p, AT, listBuf);
    if (n >= 0) return Buffer.from(listBuf.subarray(0, n));
    const e = c.errno();
    if (e === ENOSYS) return undefined;
    if (e !== 34 /* ERANGE */ || listBuf.length >= 16 * SIZE_MAX) throw new SysError(e, 'listxattrat');
    listBuf = Buffer.alloc(listBuf.length * 4);
  }
}

/** true when done; undefined: no such syscall. XATTR_CREATE / XATTR_REPLACE are atomic. */
export function setxattrAt(dirfd: number, path: PathArg, name: string, value: Buffer, flags: number): true | undefined {
  if (value.length > SIZE_MAX) throw new SysError(7 /* E2BIG */, 'setxattrat');
  value.copy(nativeBytes, 0);
  if (c.setxattrat(dirfd, cstr(path), AT, name, setArgs(value.length, flags)) === 0) return true;
  const e = c.errno();
  if (e === ENOSYS) return undefined;
  throw new SysError(e, 'setxattrat');
}

export function removexattrAt(dirfd: number, path: PathArg, name: string): true | undefined {
  if (c.removexattrat(dirfd, cstr(path), AT, name) === 0) return true;
  const e = c.errno();
  if (e === ENOSYS) return undefined;
  throw new SysError(e, 'removexattrat');
}
