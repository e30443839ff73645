// The daemon's side of discovery (config "discovery", cluster/discovery.ts): announce this node at
// its bound port and put the nodes heard into the cluster view beside the map's. The hosted /mfs
// mount follows the same Discovery's 'change' events (bin/mfsd.ts).
import { isIP } from 'node:net';
import { Discovery } from '../cluster/discovery.js';
import type { MfsdConfig } from './config.js';
import type { ClusterView } from './load-cluster.js';

/** Starts discovery; rejects when the multicast socket cannot be set up (bad interface, no route). */
export async function startDiscovery(cfg: MfsdConfig, port: number, cluster: ClusterView, log: (line: string) => void): Promise<Discovery> {
  const d = cfg.discovery!;
  // Where others dial us: the configured address, else a specific listen address, else whatever
  // source address our datagrams carry (right on a LAN of one interface).
  const listen = cfg.listen.host;
  const specific = isIP(listen) === 4 && listen !== '0.0.0.0' && !listen.startsWith('127.') ? listen : undefined;
  const host = d.address ?? specific;
  const discovery = new Discovery(
    { group: d.group, port: d.port, intervalMs: d.intervalMs, missed: d.missed, ...(d.interface ? { interface: d.interface } : {}) },
    { node: cfg.node, port, ...(host ? { host } : {}) },
  );
  discovery.on('change', () => {
    cluster.setDiscovered(discovery.nodes());
    const heard = discovery.entries().map((h) => `${h.node}@${h.host}:${h.port}`);
    log(`discovery: ${heard.length ? `heard ${heard.join(', ')}` : 'no other node heard'}; cluster ${cluster.nodes().join(',')}`);
  });
  discovery.on('conflict', (node: number, where: string) => log(`discovery: node ${node} is also announced from ${where}; ignored while the first holder is heard`));
  discovery.on('error', (err: Error) => log(`discovery: ${err.message}`));
  await discovery.start();
  cluster.setDiscovered(discovery.nodes());
  log(`discovery: announcing node ${cfg.node} on ${d.group}:${d.port} every ${d.intervalMs} ms${d.interface ? ` via ${d.interface}` : ''}`);
  return discovery;
}
