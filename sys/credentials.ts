// Acting as another user for the length of one synchronous call, on this thread only: the kernel
// then applies that user's rules itself (owner and group of new files, setgid-directory
// inheritance, the setgid bit dropped for a creator outside the group, default ACLs), exactly as
// on the bare directory. A daemon running as root would otherwise have to imitate each rule.
import { readFileSync } from 'node:fs';
import * as c from './libc.js';
import { SysError } from './errors.js';

export interface Credentials { uid: number; gid: number; groups: readonly number[] }

const NO_GROUPS = new Uint32Array(0);

/** Runs fn with the filesystem uid, gid and groups of `cred` (we must be root), then restores root. */
export function asCaller<T>(cred: Credentials, fn: () => T): T {
  if (cred.uid === 0 && cred.gid === 0) return fn();
  if (c.setgroupsThread(cred.groups.length ? Uint32Array.from(cred.groups) : NO_GROUPS) === -1) {
    throw new SysError(c.errno(), 'setgroups');
  }
  c.setfsgid(cred.gid);
  c.setfsuid(cred.uid);
  try {
    return fn();
  } finally {
    c.setfsuid(0);
    c.setfsgid(0);
    c.setgroupsThread(NO_GROUPS);
  }
}

const RLIMIT_NOFILE = 7;

/**
 * Raises this process's open-file limit toward the kernel's ceiling (fs.nr_open): a passthrough
 * holds one O_PATH descriptor per inode the kernel remembers. Best effort: without
 * CAP_SYS_RESOURCE the hard limit stays (Node has already raised the soft limit to it). Returns
 * whether the limit was raised.
 */
export function raiseFdLimit(): boolean {
  let max = 1_048_576;
  try {
    max = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || max;
  } catch {
    // keep the default ceiling
  }
  const lim = Buffer.alloc(16);
  lim.writeBigUInt64LE(BigInt(max), 0);
  lim.writeBigUInt64LE(BigInt(max), 8);
  return c.setrlimit(RLIMIT_NOFILE, lim) === 0;
}
