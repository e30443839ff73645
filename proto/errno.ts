// How a POSIX errno travels end to end. The server throws Errno; the gRPC layer turns it into a
// status with the errno in trailing metadata; the client turns that status back into the same
// Errno. Both sides import this one file, so the rule cannot drift.
import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { constants } from 'node:os';

// Linux errnos that Node's os.constants.errno leaves out (checked against
// /usr/include/asm-generic/errno-base.h and errno.h, the numbering of every Linux architecture
// Node runs on but mips/sparc/alpha). Without them `new Errno('EHOSTDOWN')` threw a TypeError
// inside a gRPC callback and killed the client process (issue 8).
const LINUX_ONLY_ERRNOS: Readonly<Record<string, number>> = {
  ENOTBLK: 15, EDEADLOCK: 35, ECHRNG: 44, EL2NSYNC: 45, EL3HLT: 46, EL3RST: 47, ELNRNG: 48, EUNATCH: 49,
  ENOCSI: 50, EL2HLT: 51, EBADE: 52, EBADR: 53, EXFULL: 54, ENOANO: 55, EBADRQC: 56, EBADSLT: 57,
  EBFONT: 59, ENONET: 64, ENOPKG: 65, EREMOTE: 66, EADV: 68, ESRMNT: 69, ECOMM: 70, EDOTDOT: 73,
  ENOTUNIQ: 76, EBADFD: 77, EREMCHG: 78, ELIBACC: 79, ELIBBAD: 80, ELIBSCN: 81, ELIBMAX: 82,
  ELIBEXEC: 83, ERESTART: 85, ESTRPIPE: 86, EUSERS: 87, ESOCKTNOSUPPORT: 94, EPFNOSUPPORT: 96,
  ESHUTDOWN: 108, ETOOMANYREFS: 109, EHOSTDOWN: 112, EUCLEAN: 117, ENOTNAM: 118, ENAVAIL: 119,
  EISNAM: 120, EREMOTEIO: 121, ENOMEDIUM: 123, EMEDIUMTYPE: 124, ENOKEY: 126, EKEYEXPIRED: 127,
  EKEYREVOKED: 128, EKEYREJECTED: 129, EOWNERDEAD: 130, ENOTRECOVERABLE: 131, ERFKILL: 132, EHWPOISON: 133,
};
const errnoByName: Readonly<Record<string, number>> = { ...LINUX_ONLY_ERRNOS, ...constants.errno };
// Some names share a number (EAGAIN = EWOULDBLOCK, ENOTSUP = EOPNOTSUPP, EDEADLK = EDEADLOCK); a
// number comes back as the name Linux's errno(1) prints, so a client sees the code the server threw.
const preferredAliases = new Set(['EAGAIN', 'EOPNOTSUPP', 'EDEADLK']);
const nameByErrno = new Map<number, string>();
for (const [name, n] of Object.entries(errnoByName)) {
  if (!nameByErrno.has(n) || preferredAliases.has(name)) nameByErrno.set(n, name);
}

/** Whether `name` is an errno name Errno knows (every Linux one). */
export const isErrnoName = (name: string): boolean => Object.hasOwn(errnoByName, name);

/** The metadata key that carries the errno number (Linux numbering) on an error status. */
export const ERRNO_METADATA_KEY = 'omfs-errno';

/**
 * A POSIX error. `errno` is the positive Linux number, `code` its name ("ENOENT"), the same
 * shape as Node's own SystemError so code that handles one handles both.
 */
export class Errno extends Error {
  readonly errno: number;
  readonly code: string;

  constructor(code: keyof typeof constants.errno | string, message?: string) {
    const errno = Object.hasOwn(errnoByName, code) ? errnoByName[code] : undefined;
    // A name no Linux errno has is a bug in the caller; toErrno and statusToErrno never pass one.
    if (errno === undefined) throw new TypeError(`unknown errno name ${code}`);
    // A message carried over from another error of the same code (a status's details, a SysError)
    // already starts with the code: prefixing it again gave "EACCES: EACCES: openat".
    super(!message ? code : message === code || message.startsWith(`${code}: `) ? message : `${code}: ${message}`);
    this.name = 'Errno';
    this.errno = errno;
    this.code = code;
  }

  static fromNumber(errno: number, message?: string): Errno {
    return new Errno(nameByErrno.get(errno) ?? 'EIO', message);
  }
}

/**
 * Any thrown value as an Errno: an Errno stays itself, a Node SystemError keeps its code, anything
 * else (a bug) becomes EIO so a caller always gets an errno and never a crash.
 */
export function toErrno(err: unknown): Errno {
  if (err instanceof Errno) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = messageOf(err);
  if (typeof code === 'string' && isErrnoName(code)) return new Errno(code, message);
  return new Errno('EIO', message);
}

function messageOf(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'unprintable error'; // String() of an object whose toString throws
  }
}

// gRPC status codes for the errnos a client may want to tell apart without the metadata
// (logs, other languages). The errno in the metadata is authoritative.
const statusByCode: Readonly<Record<string, status>> = {
  ENOENT: status.NOT_FOUND,
  EEXIST: status.ALREADY_EXISTS,
  EACCES: status.PERMISSION_DENIED,
  EPERM: status.PERMISSION_DENIED,
  EROFS: status.PERMISSION_DENIED,
  EINVAL: status.INVALID_ARGUMENT,
  ENAMETOOLONG: status.INVALID_ARGUMENT,
  ESTALE: status.FAILED_PRECONDITION,
  ENOTEMPTY: status.FAILED_PRECONDITION,
  ENOTDIR: status.FAILED_PRECONDITION,
  EISDIR: status.FAILED_PRECONDITION,
  EXDEV: status.FAILED_PRECONDITION,
  ELOOP: status.FAILED_PRECONDITION,
  EAGAIN: status.UNAVAILABLE,
  EINTR: status.CANCELLED,
  ENOSPC: status.RESOURCE_EXHAUSTED,
  EDQUOT: status.RESOURCE_EXHAUSTED,
  ENOSYS: status.UNIMPLEMENTED,
  EOPNOTSUPP: status.UNIMPLEMENTED,
};

/** The status a server handler passes to its callback (or emits on a stream) for an error. */
export function errnoToStatus(err: unknown): Partial<StatusObject> {
  const e = toErrno(err);
  const metadata = new Metadata();
  metadata.set(ERRNO_METADATA_KEY, String(e.errno));
  return { code: statusByCode[e.code] ?? status.UNKNOWN, details: e.message, metadata };
}

/**
 * The Errno a client sees for a failed call. A status without our metadata (deadline, transport
 * failure, a peer that is not mfsd) maps to the errno a local filesystem would give for the
 * same situation. UNAVAILABLE (nothing listens, the connection broke, TLS refused us or we refused
 * it) is EHOSTDOWN, 112 on Linux: the node cannot be talked to. Never throws, whatever it is given:
 * it runs inside gRPC callbacks, where a throw kills the process.
 */
export function statusToErrno(err: ServiceError): Errno {
  try {
    return fromStatus(err);
  } catch (e) {
    return new Errno('EIO', messageOf(e));
  }
}

function fromStatus(err: ServiceError): Errno {
  const carried = err.metadata?.get(ERRNO_METADATA_KEY)[0];
  if (carried !== undefined) return Errno.fromNumber(Number(carried), err.details);
  switch (err.code) {
    case status.DEADLINE_EXCEEDED:
      return new Errno('ETIMEDOUT', err.details);
    case status.UNAVAILABLE:
      return new Errno('EHOSTDOWN', err.details);
    case status.CANCELLED:
      return new Errno('EINTR', err.details);
    case status.UNIMPLEMENTED:
      return new Errno('ENOSYS', err.details);
    case status.UNAUTHENTICATED:
      return new Errno('EACCES', err.details);
    default:
      return new Errno('EIO', err.details);
  }
}
