// Name checks: every name a request carries is a single path component, so no request can
// address anything but a direct child of a directory it holds a handle for. Names are bytes, as
// Linux stores them (not necessarily UTF-8), and are checked as bytes.
import { Errno } from '../proto/errno.js';

export const NAME_MAX = 255;
const SLASH = 0x2f;
const DOT = 0x2e;

/** "." or "..", as bytes. */
export const isDotOrDotDot = (b: Buffer): boolean => (b.length === 1 && b[0] === DOT) || (b.length === 2 && b[0] === DOT && b[1] === DOT);

/** A name from the wire: non-empty bytes with no '/' or NUL, not "." or "..", at most NAME_MAX bytes. */
export function checkName(name: unknown): Buffer {
  if (!Buffer.isBuffer(name) || name.length === 0 || isDotOrDotDot(name) || name.includes(SLASH) || name.includes(0)) {
    throw new Errno('EINVAL', 'invalid name');
  }
  if (name.length > NAME_MAX) throw new Errno('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  return name;
}
