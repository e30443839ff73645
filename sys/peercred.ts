// Who is at the other end of a connected unix socket, as the kernel recorded it at connect()
// (SO_PEERCRED): the uid, gid and pid of the connecting process. The peer cannot lie about these,
// which is what lets a root daemon run a command as the user who asked. Supplementary groups are
// not in SO_PEERCRED; groupsOf() reads them from /proc/PID/status of that pid.
import koffi from 'koffi';
import { readFileSync } from 'node:fs';
import { SysError } from './errors.js';

const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)');

const SOL_SOCKET = 1;
const SO_PEERCRED = 17; // x86_64 and arm64 (asm-generic)

export interface PeerCred { pid: number; uid: number; gid: number }

/** SO_PEERCRED of a connected unix socket's descriptor. */
export function peerCred(fd: number): PeerCred {
  const buf = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = [12];
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0) throw new SysError(koffi.errno(), 'getsockopt(SO_PEERCRED)');
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/**
 * The supplementary groups of process `pid`, read only if it still has the effective uid and gid
 * SO_PEERCRED gave: a pid that exited and was reused by another user's process (root's) must not
 * lend its groups. Empty when it is gone, differs or has none.
 */
export function groupsOf(pid: number, uid: number, gid: number): number[] {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const ids = (name: string) => (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').split(/\s+/).filter((g) => /^\d+$/.test(g)).map(Number);
    // Uid:/Gid: list real, effective, saved, filesystem; SO_PEERCRED holds the effective ones.
    if (ids('Uid')[1] !== uid || ids('Gid')[1] !== gid) return [];
    return ids('Groups');
  } catch {
    return [];
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks): with the pid, a key that survives pid reuse. */
export function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? '';
  } catch {
    return '';
  }
}
