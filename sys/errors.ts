// How a failed syscall reaches callers: an Error with the same shape as Node's own SystemError
// (`code` = "ENOENT", `errno` = the positive Linux number), so code that handles one handles both.
import { constants } from 'node:os';

const errnoByName: Readonly<Record<string, number>> = constants.errno;
// EAGAIN = EWOULDBLOCK and EOPNOTSUPP = ENOTSUP share numbers: name them as errno(1) does.
const preferred = new Set(['EAGAIN', 'EOPNOTSUPP']);
const nameByErrno = new Map<number, string>();
for (const [name, n] of Object.entries(errnoByName)) {
  if (!nameByErrno.has(n) || preferred.has(name)) nameByErrno.set(n, name);
}

export function errnoName(errno: number): string {
  return nameByErrno.get(errno) ?? `E${errno}`;
}

export class SysError extends Error {
  readonly code: string;
  constructor(readonly errno: number, readonly syscall: string) {
    const code = errnoName(errno);
    super(`${code}: ${syscall}`);
    this.name = 'SysError';
    this.code = code;
  }
}
