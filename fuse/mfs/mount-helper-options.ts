// mount.mfs's command line, as mount(8) calls a helper: `mount.mfs SPEC DIR [-sfnv] [-o OPTS]`.
// The options are split three ways: ours (passed on to mfs-mount's -o), where to find the map, the
// node number and the certificates (map=, node=, tls=), and mount(8)'s own options from fstab
// (defaults, noauto, _netdev...), which mean nothing to the mount itself and are dropped. Anything
// else is an error naming the option, unless -s (sloppy) asked to ignore it.
import { resolve } from 'node:path';
import { MountArgsError } from './mount-options.js';

export const HELPER_USAGE =
  'usage: mount.mfs SPEC DIR [-sfnv] [-o dfsa=0|1,ro|rw,hard|soft,timeo=MS,map=PATH,node=N,tls=DIR,...]';

export const DEFAULT_MAPS = ['/etc/openmosix.map', '/etc/mosix.map'];
export const DEFAULT_TLS_DIR = '/etc/omfs/tls';

export interface HelperArgs {
  spec: string;
  mountPoint: string;
  /** -f: do everything but the mount itself (mount(8)'s "fake"). */
  fake: boolean;
  verbose: boolean;
  /** map=PATH, when given. */
  map: string | undefined;
  /** node=N, when given. */
  node: number | undefined;
  tlsDir: string;
  /** What goes to mfs-mount's -o (its own syntax: ro, soft, timeo=...). */
  mountOptions: string[];
  /** Options -s let through without knowing them (said on stderr). */
  ignored: string[];
}

/** Options of mfs-mount itself, passed on (with or without a value as it expects). */
const PASSED_FLAGS = new Set(['ro', 'rw', 'hard', 'soft']);
const PASSED_VALUES = new Set(['timeo', 'idle', 'cache', 'dfsa']);
/**
 * mount(8)'s options: for mount(8), fstab, or the kernel's generic mount flags, which FUSE mounts
 * set on their own (nosuid, nodev). Accepted and dropped.
 */
const MOUNT8_OPTIONS = new Set([
  'defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'group', '_netdev', 'nofail',
  'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev', 'sync', 'async', 'atime', 'noatime',
  'relatime', 'norelatime', 'strictatime', 'diratime', 'nodiratime', 'lazytime', 'nolazytime',
  'loud', 'silent', 'comment', 'x-systemd.automount', 'x-systemd.requires', 'x-systemd.device-timeout',
  'x-systemd.mount-timeout', 'x-systemd.idle-timeout', 'x-systemd.after', 'x-systemd.before',
]);

export function parseHelperArgs(argv: string[]): HelperArgs {
  const positional: string[] = [];
  const lists: string[] = [];
  let sloppy = false;
  let fake = false;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o') {
      const v = argv[++i];
      if (v === undefined) throw new MountArgsError('-o needs a value');
      lists.push(v);
    } else if (a.startsWith('-o')) lists.push(a.slice(2));
    else if (/^-[sfnvi]+$/.test(a)) {
      // -n (no mtab) and -i (no helper) mean nothing here; mount(8) may pass them.
      sloppy ||= a.includes('s');
      fake ||= a.includes('f');
      verbose ||= a.includes('v');
    } else if (a.startsWith('-') && a !== '-') throw new MountArgsError(`unknown option ${a}`);
    else positional.push(a);
  }
  if (positional.length !== 2) throw new MountArgsError(`need SPEC and DIR, got ${positional.length} argument(s)`);
  const out: HelperArgs = {
    spec: positional[0]!, mountPoint: resolve(positional[1]!), fake, verbose,
    map: undefined, node: undefined, tlsDir: DEFAULT_TLS_DIR, mountOptions: [], ignored: [],
  };
  for (const opt of lists.flatMap((l) => l.split(',')).filter(Boolean)) {
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? undefined : opt.slice(eq + 1);
    const needValue = (): string => {
      if (!value) throw new MountArgsError(`mount option "${key}" needs a value`);
      return value;
    };
    if (key === 'map') out.map = resolve(needValue());
    else if (key === 'tls') out.tlsDir = resolve(needValue());
    else if (key === 'node') {
      const v = needValue();
      if (!/^[1-9]\d*$/.test(v) || Number(v) > 65535) throw new MountArgsError(`mount option node needs a node number (1..65535), got "${v}"`);
      out.node = Number(v);
    } else if (PASSED_FLAGS.has(key) && value === undefined) out.mountOptions.push(key);
    else if (PASSED_VALUES.has(key)) out.mountOptions.push(`${key}=${needValue()}`);
    else if (MOUNT8_OPTIONS.has(key)) continue;
    else if (sloppy) out.ignored.push(opt);
    else throw new MountArgsError(`unknown mount option "${opt}"`);
  }
  return out;
}
