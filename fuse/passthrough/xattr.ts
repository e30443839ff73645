// Extended attributes of the backing files, by direct syscalls (@napi-rs/xattr: l*xattr, so a
// symlink's own attributes, as the kernel asks for the node itself). They used to go through
// getfattr/setfattr: a process spawn per call, and the kernel asks for security.capability
// before every write and truncate, which made `open(O_TRUNC)` cost milliseconds.
import * as native from '@napi-rs/xattr';
import { errnoName, KernelErrno } from '../kernel/index.js';
import { sys } from './fd-io.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

type ErrnoError = Error & { code: string };

function errnoError(code: string, detail: string): ErrnoError {
  return Object.assign(new Error(`${code}: ${detail}`), { code });
}

/** The library reports "<strerror> (os error N)"; turn that back into the errno it was. */
function withErrno<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const n = /\(os error (\d+)\)/.exec(message)?.[1];
    throw errnoError((n !== undefined && errnoName(Number(n))) || 'EIO', `${what}: ${message}`);
  }
}

/** Shared: the kernel asks for security.capability before every write, and it is never there. */
const NO_DATA = new KernelErrno('ENODATA');

/** The value, or ENODATA; ENOENT when the file itself is gone (the library folds both into null). */
export function getxattr(path: string, name: string): Buffer {
  const value = withErrno(`getxattr ${name}`, () => native.getAttributeSync(path, name));
  if (value !== null) return value;
  if (sys.lstatIfExists(path) === undefined) throw errnoError('ENOENT', path);
  throw NO_DATA;
}

/** NUL-terminated names, as listxattr(2) returns them. */
export function listxattr(path: string): Buffer {
  const names = withErrno('listxattr', () => native.listAttributesSync(path));
  return Buffer.from(names.map((n) => n + '\0').join(''));
}

/** XATTR_CREATE/XATTR_REPLACE are checked before the set: not atomic against a concurrent setter. */
export function setxattr(path: string, name: string, value: Buffer, flags: number): void {
  if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
    const exists = withErrno(`getxattr ${name}`, () => native.getAttributeSync(path, name)) !== null;
    if (flags & XATTR_CREATE && exists) throw errnoError('EEXIST', name);
    if (flags & XATTR_REPLACE && !exists) throw errnoError('ENODATA', name);
  }
  withErrno(`setxattr ${name}`, () => native.setAttributeSync(path, name, value));
}

export function removexattr(path: string, name: string): void {
  withErrno(`removexattr ${name}`, () => native.removeAttributeSync(path, name));
}
