// The cluster's membership from its two sources: the map file, which is authoritative for every
// node it names (its addresses, its aliases), and discovery (cluster/discovery.ts), which adds the
// nodes the map does not name. A node the map names is never moved by what the LAN announces: an
// announcement is unauthenticated, the map is the admin's word.
import type { ClusterMap, MapNode } from './map-file.js';

export function mergeMembership(map: ClusterMap, discovered: Iterable<MapNode>): ClusterMap {
  const nodes = new Map(map.nodes);
  for (const n of discovered) if (!nodes.has(n.id)) nodes.set(n.id, n);
  return { nodes };
}
