// The mfs-mount command line and its -o options. Every mistake is a MountArgsError naming what is
// wrong (an unknown option by its name), so nothing is mounted on a half-understood command line.
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseGroup } from '../../cluster/discovery.js';

export const USAGE =
  'usage: mfs-mount --map FILE --node N --tls-ca FILE --tls-cert FILE --tls-key FILE ' +
  '[-o ro,hard|soft,timeo=MS,idle=MS,cache=SECONDS,dfsa=0|1,discovery=GROUP:PORT,discovery_if=IPv4] [--debug] MOUNTPOINT';

export interface MountArgs {
  map: string;
  node: number;
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  mountPoint: string;
  readOnly: boolean;
  /** soft: calls to an unanswering node fail with EIO after timeoMs; hard: they wait. */
  soft: boolean;
  timeoMs: number;
  /** A node's session closes after this long unused (no calls, no open files); 0 = never. */
  idleMs: number;
  /** Entry/attribute timeout of cacheable replies, in seconds. */
  cacheSeconds: number;
  /**
   * dfsa=1 (openMosix's default): a mount hosted by mfsd reaches its own node in process; dfsa=0, or a separate mfs-mount: through a session.
   */
  dfsa: boolean;
  debug: boolean;
  /** discovery=GROUP:PORT: also mount the nodes the mfsd daemons announce there (cluster/discovery.ts); null: the map alone. */
  discovery: { group: string; port: number; interface?: string } | null;
}

export class MountArgsError extends Error {}

const DEFAULTS = {
  readOnly: false, soft: false, timeoMs: 10_000, idleMs: 300_000, cacheSeconds: 3600, dfsa: true, debug: false,
  discovery: null as MountArgs['discovery'],
  discoveryIf: undefined as string | undefined,
};

function number(name: string, text: string | undefined, min: number): number {
  const n = text !== undefined && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min)) throw new MountArgsError(`${name} needs a whole number >= ${min}, got ${JSON.stringify(text ?? '')}`);
  return n;
}

/** -o's comma-separated list, applied to `into`. */
function applyOptions(list: string, into: typeof DEFAULTS): void {
  for (const opt of list.split(',').filter(Boolean)) {
    const [key, value] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : [opt, undefined];
    if (key === 'ro' && value === undefined) into.readOnly = true;
    else if (key === 'rw' && value === undefined) into.readOnly = false;
    else if (key === 'hard' && value === undefined) into.soft = false;
    else if (key === 'soft' && value === undefined) into.soft = true;
    else if (key === 'timeo') into.timeoMs = number('timeo', value, 1);
    else if (key === 'idle') into.idleMs = number('idle', value, 0);
    else if (key === 'cache') into.cacheSeconds = number('cache', value, 0);
    else if (key === 'dfsa' && (value === '0' || value === '1')) into.dfsa = value === '1';
    else if (key === 'dfsa') throw new MountArgsError(`dfsa needs 0 or 1, got ${JSON.stringify(value ?? '')}`);
    else if (key === 'discovery') {
      const g = parseGroup(value ?? '');
      if (!g) throw new MountArgsError(`discovery needs a multicast GROUP:PORT (224.0.0.0 to 239.255.255.255), got ${JSON.stringify(value ?? '')}`);
      into.discovery = g;
    } else if (key === 'discovery_if') {
      if (isIP(value ?? '') !== 4) throw new MountArgsError(`discovery_if needs this host's IPv4 address on the LAN, got ${JSON.stringify(value ?? '')}`);
      into.discoveryIf = value;
    }
    else throw new MountArgsError(`unknown mount option "${opt}"`);
  }
}

export function parseMountArgs(argv: string[]): MountArgs {
  const o = { ...DEFAULTS };
  const named: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const valueOf = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || v === '') throw new MountArgsError(`${a} needs a value`);
      return v;
    };
    const flag = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (['--map', '--node', '--tls-ca', '--tls-cert', '--tls-key'].includes(flag)) named[flag] = valueOf();
    else if (a === '-o') applyOptions(valueOf(), o);
    else if (a.startsWith('-o') && a.length > 2) applyOptions(a.slice(2), o);
    else if (a === '--debug') o.debug = true;
    else if (a.startsWith('-')) throw new MountArgsError(`unknown option ${a}`);
    else positional.push(a);
  }
  for (const need of ['--map', '--node', '--tls-ca', '--tls-cert', '--tls-key']) {
    if (named[need] === undefined) throw new MountArgsError(`${need} is required`);
  }
  if (positional.length !== 1) throw new MountArgsError(`need exactly one MOUNTPOINT, got ${positional.length}`);
  if (o.discoveryIf !== undefined && !o.discovery) throw new MountArgsError('discovery_if needs discovery=GROUP:PORT');
  const { discoveryIf, ...rest } = o;
  return {
    ...rest,
    discovery: o.discovery && discoveryIf ? { ...o.discovery, interface: discoveryIf } : o.discovery,
    map: resolve(named['--map']!),
    node: number('--node', named['--node'], 1),
    tlsCa: resolve(named['--tls-ca']!),
    tlsCert: resolve(named['--tls-cert']!),
    tlsKey: resolve(named['--tls-key']!),
    mountPoint: resolve(positional[0]!),
  };
}
