// The openMosix map file (/etc/openmosix.map, /etc/mosix.map): which node numbers exist and where
// each one's daemon is. Format, as setpe(1) read it:
//   first-ID  host-or-IP  count    count consecutive nodes from first-ID; with an IPv4 address,
//                                  node first-ID+k is at that address + k
//   ID  alt-IP  ALIAS              another address of node ID (a gateway, a second interface)
//   # comment                      also after the fields; blank lines are ignored
// At most 256 lines that define something. Node numbers are 1..65535.
// omfs extension: an address may carry the port its mfsd listens on, `host:port` or `[v6]:port`
// (default 7117); a local cluster of several daemons on one host needs it. With a count above 1 the
// port stays and the address counts up.
// Every problem is a MapError naming the file, the line and what is wrong: a bad map must never be
// half-applied.
import { isIP } from 'node:net';

export const DEFAULT_MFSD_PORT = 7117;
export const MAX_MAP_LINES = 256;
export const MAX_NODE = 65535;

export interface NodeAddress { host: string; port: number }
export interface MapNode {
  id: number;
  /** Where its mfsd is, first the address of its range line, then its ALIAS lines in order. */
  addresses: NodeAddress[];
}
export interface ClusterMap { nodes: ReadonlyMap<number, MapNode> }

export class MapError extends Error {
  constructor(readonly file: string, readonly line: number, what: string) {
    super(`${file}:${line}: ${what}`);
    this.name = 'MapError';
  }
}

/** Parses the text of a map file (`file` names it in errors). */
export function parseMap(text: string, file = 'map'): ClusterMap {
  const nodes = new Map<number, MapNode>();
  const aliases: Array<{ line: number; id: number; address: NodeAddress }> = [];
  let defining = 0;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    if (++defining > MAX_MAP_LINES) throw new MapError(file, line, `more than ${MAX_MAP_LINES} lines define nodes`);
    const fail = (what: string): never => {
      throw new MapError(file, line, what);
    };
    if (fields.length !== 3) fail(`expected "first-ID host-or-IP count" or "ID alt-IP ALIAS", got ${fields.length} field(s)`);
    const [idText, addrText, third] = fields as [string, string, string];
    const id = nodeNumber(idText) ?? fail(`"${idText}" is not a node number (1..${MAX_NODE})`);
    const address = parseAddress(addrText) ?? fail(`"${addrText}" is not a host, an IP address, host:port or [IPv6]:port`);
    if (third.toUpperCase() === 'ALIAS') {
      aliases.push({ line, id, address });
      return;
    }
    if (!/^\d+$/.test(third) || Number(third) < 1) fail(`count "${third}" must be a positive integer (or the word ALIAS)`);
    const count = Number(third);
    if (id + count - 1 > MAX_NODE) fail(`nodes ${id}..${id + count - 1} go past ${MAX_NODE}`);
    if (count > 1 && isIP(address.host) !== 4) fail(`a count above 1 needs an IPv4 address to count up from, not "${address.host}"`);
    for (let k = 0; k < count; k++) {
      const n = id + k;
      if (nodes.has(n)) fail(`node ${n} is defined twice`);
      const host = k === 0 ? address.host : addIpv4(address.host, k) ?? fail(`${address.host} + ${k} is past 255.255.255.255`);
      nodes.set(n, { id: n, addresses: [{ host, port: address.port }] });
    }
  });
  // Aliases may come before or after the range that defines their node.
  for (const a of aliases) {
    const node = nodes.get(a.id);
    if (!node) throw new MapError(file, a.line, `ALIAS for node ${a.id}, which no line defines`);
    node.addresses.push(a.address);
  }
  return { nodes };
}

function nodeNumber(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= MAX_NODE ? n : undefined;
}

/** host, host:port, an IPv4 address with or without :port, a bare IPv6 address, or [IPv6]:port. */
export function parseAddress(text: string): NodeAddress | undefined {
  const port = (p: string | undefined): number | undefined => {
    if (p === undefined) return DEFAULT_MFSD_PORT;
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    return n >= 1 && n <= 65535 ? n : undefined;
  };
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    const p = port(bracketed[2]);
    return isIP(bracketed[1]!) === 6 && p !== undefined ? { host: bracketed[1]!, port: p } : undefined;
  }
  if (isIP(text) === 6) return { host: text, port: DEFAULT_MFSD_PORT };
  const [host, p, ...rest] = text.split(':');
  const n = port(p);
  if (rest.length > 0 || n === undefined || !host || !isHostName(host)) return undefined;
  return { host, port: n };
}

/** A DNS name or an IPv4 address (letters, digits, hyphens and dots; no empty label). */
const isHostName = (h: string): boolean => isIP(h) === 4 || (/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(h) && !/^\d+$/.test(h));

function addIpv4(ip: string, k: number): string | undefined {
  const n = ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0) + k;
  if (n > 0xffffffff) return undefined;
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/**
 * This node's number: the node one of whose map addresses is one of `ownAddresses` (this host's
 * interface addresses) or its `hostname`. Undefined when none matches; an error when several do
 * (several daemons on one host, a local cluster: say which with an explicit node number).
 */
export function findOwnNode(map: ClusterMap, ownAddresses: readonly string[], hostname: string): number | undefined {
  const mine = new Set(ownAddresses.map((a) => a.toLowerCase()));
  const host = hostname.toLowerCase();
  const matches = [...map.nodes.values()].filter((n) => n.addresses.some((a) => mine.has(a.host.toLowerCase()) || a.host.toLowerCase() === host));
  if (matches.length > 1) {
    throw new Error(`nodes ${matches.map((n) => n.id).join(', ')} all have an address of this host: give this node's number explicitly`);
  }
  return matches[0]?.id;
}
