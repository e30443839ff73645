// Name checks: every name a request carries is a single path component, so no request can
// address anything but a direct child of a directory it holds a handle for.
import { Errno } from '../proto/errno.js';

export const NAME_MAX = 255;

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Errno('EINVAL', `invalid name ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(name) > NAME_MAX) throw new Errno('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  return name;
}
