// How a node with several map addresses (its range line, then its `ID alt-IP ALIAS` lines) is
// dialled: one gRPC target naming them all, so that the channel itself tries the next address when
// one does not answer. grpc-js's `ipv4:` / `ipv6:` targets take a comma-separated list, and its
// pick_first policy connects to the first address that answers, in order, starting the next
// attempt while an earlier one still hangs (a black-holed address costs a fraction of a second,
// not a connect timeout), and does so again whenever the connection breaks (the first address
// coming back is preferred again at the next reconnect). Every client of a node (the daemon's
// NodeService clients, the mount's sessions) thus gets the failover without knowing of it.
// The channel's authority (and so the TLS server name) is the first address: a node's certificate
// should name every address of the node (`mfsctl ca issue --host IP` for each).
// A list that mixes DNS names or both IP families cannot be one such target: then the addresses
// of the first one's kind are used and the rest are only shown (addresses()); say so in the map.
import { isIP } from 'node:net';
import type { NodeAddress } from './map-file.js';

/** HOST:PORT, [v6]:PORT. */
export function formatNodeAddress(a: NodeAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * The addresses one channel can try, in map order: all of them when they are IP addresses of the
 * first one's family, else the first alone (a DNS name is resolved by the channel itself).
 */
export function dialable(addresses: readonly NodeAddress[]): NodeAddress[] {
  const first = addresses[0];
  if (!first) return [];
  const family = isIP(first.host);
  if (family === 0) return [first];
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const key = formatNodeAddress(a);
    if (isIP(a.host) !== family || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The gRPC target for a node: its one address as HOST:PORT (as before aliases were dialled), or
 * `ipv4:A:P,B:P` / `ipv6:[A]:P,[B]:P` for several, tried in order by the channel.
 */
export function dialTarget(addresses: readonly NodeAddress[]): string {
  const usable = dialable(addresses);
  if (usable.length === 0) throw new Error('a node without an address cannot be dialled');
  if (usable.length === 1) return formatNodeAddress(usable[0]!);
  const scheme = isIP(usable[0]!.host) === 6 ? 'ipv6' : 'ipv4';
  return `${scheme}:${usable.map(formatNodeAddress).join(',')}`;
}
