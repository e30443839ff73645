// The cluster as this daemon knows it: the openMosix map (cluster/map-file.ts), read at start and
// again on SIGHUP (a bad new map is refused and the old one kept), and a NodeService client per
// peer, dialled at all the node's map addresses in order (cluster/addresses.ts: the channel moves
// to an ALIAS address when the first does not answer) with the daemon's own certificate as client
// credentials (mutual TLS, server/tls.ts), so peers accept it as a cluster node. Nodes found by
// discovery (cluster/discovery.ts) are added to the map's (cluster/membership.ts).
import * as grpc from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { dialable, dialTarget } from '../cluster/addresses.js';
import { parseMap, type ClusterMap, type MapNode, type NodeAddress } from '../cluster/map-file.js';
import { mergeMembership } from '../cluster/membership.js';
import { loadNodeServiceConstructor } from '../proto/node.js';
import type { TlsMaterial } from './tls.js';

const EMPTY: ClusterMap = { nodes: new Map() };

export function formatAddress(a: NodeAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * The map at `path`; null path: none (a node alone). A file that is missing is "alone" unless the
 * admin named it (`explicit`); any other problem throws, a MapError naming file:line.
 */
export async function readClusterMap(path: string | null, explicit: boolean): Promise<ClusterMap> {
  if (path === null) return EMPTY;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return EMPTY;
    throw new Error(`map ${path}: cannot read (${code ?? String(err)})`);
  }
  return parseMap(text, path);
}

export class ClusterView {
  private map: ClusterMap;
  /** The map file's nodes alone; `map` is these plus the discovered ones. */
  private fileMap: ClusterMap;
  private discovered: MapNode[] = [];
  private readonly clients = new Map<string, grpc.Client>();
  private readonly NodeClient = loadNodeServiceConstructor();

  constructor(
    readonly self: number,
    readonly path: string | null,
    private readonly explicit: boolean,
    initial: ClusterMap,
    /** This daemon's certificate and the cluster CA; null: --insecure. */
    private readonly tls: TlsMaterial | null,
  ) {
    this.map = initial;
    this.fileMap = initial;
  }

  /** Nodes heard by discovery: added to the map's (the map stays authoritative for its own). */
  setDiscovered(nodes: MapNode[]): void {
    this.discovered = nodes;
    this.map = mergeMembership(this.fileMap, nodes);
    this.dropUnused();
  }

  /** Re-reads the map; on any problem the old map stays and the error says why. */
  async reload(): Promise<{ nodes: number }> {
    this.fileMap = await readClusterMap(this.path, this.explicit);
    this.map = mergeMembership(this.fileMap, this.discovered);
    this.dropUnused();
    return { nodes: this.map.nodes.size };
  }

  /** Clients of addresses no longer in the membership would only hold connections open. */
  private dropUnused(): void {
    const wanted = new Set([...this.map.nodes.values()].map((n) => dialTarget(n.addresses)));
    for (const [address, client] of this.clients) {
      if (!wanted.has(address)) {
        client.close();
        this.clients.delete(address);
      }
    }
  }

  /** Node numbers of the map, ascending. */
  nodes(): number[] {
    return [...this.map.nodes.keys()].sort((a, b) => a - b);
  }

  /** The other nodes of the map. */
  peers(): number[] {
    return this.nodes().filter((n) => n !== this.self);
  }

  has(node: number): boolean {
    return this.map.nodes.has(node);
  }

  addresses(node: number): string[] {
    return (this.map.nodes.get(node)?.addresses ?? []).map(formatAddress);
  }

  /** A NodeService client for `node` (one per address list, kept), undefined when the map lacks it. */
  client(node: number): grpc.Client | undefined {
    const all = this.map.nodes.get(node)?.addresses ?? [];
    const first = all[0];
    if (!first) return undefined;
    const address = dialTarget(all);
    // Whichever of the node's addresses the channel reached, its certificate must name that one
    // or another address of the same node (the channel does not say which it reached).
    const hosts = dialable(all).map((a) => a.host);
    let c = this.clients.get(address);
    if (!c) {
      // grpc-js gives TLS the target host as server name, and Node warns for an IP address
      // (DEP0123): send a fixed name and check the certificate against the IP itself, as
      // `mfsctl identify` does (certificates carry their node's IPs: `ca issue --host`).
      const byIp = this.tls !== null && isIP(first.host) !== 0;
      const creds = this.tls
        ? grpc.credentials.createSsl(this.tls.ca, this.tls.key, this.tls.cert, byIp ? { checkServerIdentity: (_n, cert) => (hosts.some((h) => checkServerIdentity(h, cert) === undefined) ? undefined : checkServerIdentity(first.host, cert)) } : {})
        : grpc.credentials.createInsecure();
      c = new this.NodeClient(address, creds, byIp ? { 'grpc.ssl_target_name_override': 'omfs-node' } : {});
      this.clients.set(address, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** A unary NodeService call with a deadline; rejects with the grpc ServiceError. */
export function callNode<T>(client: grpc.Client, method: string, req: object, deadlineMs: number): Promise<T> {
  const fn = (client as unknown as Record<string, unknown>)[method] as
    (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void;
  return new Promise((resolve, reject) => {
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, v) => (e ? reject(e) : resolve(v)));
  });
}
