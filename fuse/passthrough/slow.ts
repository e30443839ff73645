// A deliberately slow file system for tests and measurements: every operation of a wrapped one is
// answered `delayMs` late, the way a distant NFS server or a failing disk answers. Requests still
// run concurrently (each waits on its own timer), so N callers see N overlapping delays, not N
// times one. Housekeeping that no caller waits on (forget, release) is not delayed.
import type { FileSystem } from '../kernel/index.js';

const DELAYED = new Set<string>([
  'lookup', 'getattr', 'setattr', 'readlink', 'symlink', 'mknod', 'mkdir', 'unlink', 'rmdir', 'rename', 'link',
  'open', 'read', 'write', 'statfs', 'fsync', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'flush',
  'opendir', 'readdir', 'readdirplus', 'fsyncdir', 'access', 'create', 'fallocate', 'lseek', 'copyFileRange',
]);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `fs` with every caller-visible operation answered `delayMs` later. */
export function slowed<T extends FileSystem>(fs: T, delayMs: number): T {
  return new Proxy(fs, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || !DELAYED.has(prop) || typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      return async (...args: unknown[]): Promise<unknown> => {
        await sleep(delayMs);
        return method.apply(target, args);
      };
    },
  });
}
