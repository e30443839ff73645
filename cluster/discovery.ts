// Discovery on the LAN by UDP multicast, what openMosix's omdiscd did: each daemon announces
// itself to a multicast group every intervalMs and learns the others from their announcements; a
// node not heard for `missed` intervals has left, and one that says goodbye (a clean stop) leaves
// at once. Off unless configured. Pure node:dgram.
// An announcement is one JSON datagram: { "omfs": 1, "node": N, "port": P, "host"?: H, "boot": B,
// "validMs": V }. `host` is where to dial the node; without it, the datagram's source address.
// `validMs` (the sender's intervalMs x missed) is how long it counts without a newer one: the
// sender decides, so a listener (a mount without a daemon) needs no settings. `boot` is random
// per daemon start: a node number heard from two boots at once (two daemons claiming one number)
// keeps the first holder until it goes silent, and the other is reported as a conflict.
// Announcements are not authenticated: what they add is only where to dial, and every connection
// is mutual TLS with the cluster CA, so a forged one can make a node listed, never trusted.
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { MapNode } from './map-file.js';

export interface DiscoverySettings {
  /** The multicast group (an IPv4 address in 224.0.0.0/4) and UDP port. */
  group: string;
  port: number;
  /** How often to announce. */
  intervalMs: number;
  /** Intervals without an announcement after which a node has left. */
  missed: number;
  /** The local IPv4 address of the interface to announce and listen on (default: the kernel's choice). */
  interface?: string;
  /** Multicast TTL: 1 (default) keeps announcements on this LAN. */
  ttl?: number;
}

/** What this daemon announces; null: listen only (a mount without a daemon). */
export interface Self {
  node: number;
  port: number;
  /** Where others dial it; default: the source address they see. */
  host?: string;
}

export interface Heard { node: number; host: string; port: number; boot: string; lastMs: number; validMs: number }

interface Announcement { omfs: 1; node: number; port: number; host?: string; boot: string; validMs?: number; bye?: true }

/** The longest an announcement may ask to count (a day): a bad one cannot pin a node forever. */
const MAX_VALID_MS = 86_400_000;

export function parseAnnouncement(buf: Buffer): Announcement | undefined {
  let o: unknown;
  try {
    o = JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const a = o as Record<string, unknown>;
  const okInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max;
  if (a['omfs'] !== 1 || !okInt(a['node'], 65535) || !okInt(a['port'], 65535)) return undefined;
  if (typeof a['boot'] !== 'string' || a['boot'].length === 0 || a['boot'].length > 64) return undefined;
  if (a['host'] !== undefined && (typeof a['host'] !== 'string' || isIP(a['host']) === 0)) return undefined;
  if (a['validMs'] !== undefined && !okInt(a['validMs'], MAX_VALID_MS)) return undefined;
  return {
    omfs: 1, node: a['node'], port: a['port'], boot: a['boot'],
    ...(a['host'] ? { host: a['host'] as string } : {}), ...(a['validMs'] ? { validMs: a['validMs'] as number } : {}), ...(a['bye'] === true ? { bye: true } : {}),
  };
}

/**
 * Events: 'change' (nodes: MapNode[]) when a node joins, leaves or moves; 'conflict'
 * (node, host) when a second daemon claims a node number already held; 'error' (Error) for a
 * socket problem after the start.
 */
export class Discovery extends EventEmitter {
  readonly boot = randomBytes(8).toString('hex');
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly heard = new Map<number, Heard>();

  constructor(private readonly settings: DiscoverySettings, private readonly self: Self | null, private readonly now: () => number = Date.now) {
    super();
  }

  /** Binds, joins the group and sends the first announcement; rejects if the socket cannot. */
  async start(): Promise<void> {
    const s = this.settings;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // Bound to the port on every address: multicast datagrams are addressed to the group.
      socket.bind(s.port, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    try {
      socket.addMembership(s.group, s.interface);
      if (s.interface) socket.setMulticastInterface(s.interface);
      socket.setMulticastTTL(s.ttl ?? 1);
      // Several daemons on one host (a test, a local cluster) hear each other through loopback.
      socket.setMulticastLoopback(true);
    } catch (err) {
      this.close();
      throw err;
    }
    socket.on('message', (buf, rinfo: RemoteInfo) => this.hear(buf, rinfo.address));
    socket.on('error', (err) => this.emit('error', err));
    this.timer = setInterval(() => {
      this.announce(false);
      this.expire();
    }, s.intervalMs);
    this.timer.unref();
    this.announce(false);
  }

  /**
   * The nodes heard and not yet gone, as map entries, and this node itself when it announces (at
   * its announced host, else loopback): a node found by discovery alone is a member of its own
   * cluster even when the map does not name it.
   */
  nodes(): MapNode[] {
    const heard = [...this.heard.values()].map((h) => ({ id: h.node, addresses: [{ host: h.host, port: h.port }] }));
    const self = this.self ? [{ id: this.self.node, addresses: [{ host: this.self.host ?? '127.0.0.1', port: this.self.port }] }] : [];
    return [...heard, ...self].sort((a, b) => a.id - b.id);
  }

  /** Who was heard, with boot ids and when (for status). */
  entries(): Heard[] {
    return [...this.heard.values()];
  }

  /** This node's announcement (null: listening only); `bye`: the goodbye. */
  message(bye: boolean): Buffer | null {
    if (!this.self) return null;
    const a: Announcement = {
      omfs: 1, node: this.self.node, port: this.self.port, boot: this.boot, validMs: this.validMs(),
      ...(this.self.host ? { host: this.self.host } : {}), ...(bye ? { bye: true } : {}),
    };
    return Buffer.from(JSON.stringify(a));
  }

  /** Says goodbye (others drop this node at once) and closes the socket. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    const bye = this.message(true);
    if (bye) socket.send(bye, this.settings.port, this.settings.group, () => socket.close());
    else socket.close();
  }

  private validMs(): number {
    return Math.min(this.settings.intervalMs * this.settings.missed, MAX_VALID_MS);
  }

  private announce(bye: boolean): void {
    const m = this.message(bye);
    // A send that fails (no route yet, interface down) is retried at the next interval.
    if (m && this.socket) this.socket.send(m, this.settings.port, this.settings.group, () => {});
  }

  /** Drops the nodes whose last announcement is no longer valid (every interval). */
  expire(): void {
    let changed = false;
    for (const [node, h] of this.heard) {
      if (this.now() - h.lastMs > h.validMs) {
        this.heard.delete(node);
        changed = true;
      }
    }
    if (changed) this.emit('change', this.nodes());
  }

  /** One datagram from `from` (the socket's messages; tests feed it directly). */
  hear(buf: Buffer, from: string): void {
    const a = parseAnnouncement(buf);
    if (!a) return;
    if (a.boot === this.boot) return; // our own, looped back
    if (this.self && a.node === this.self.node) {
      this.emit('conflict', a.node, a.host ?? from);
      return;
    }
    const host = a.host ?? from;
    const old = this.heard.get(a.node);
    if (a.bye) {
      if (old?.boot === a.boot) {
        this.heard.delete(a.node);
        this.emit('change', this.nodes());
      }
      return;
    }
    if (old && old.boot !== a.boot && this.now() - old.lastMs <= old.validMs) {
      // Heard recently from another boot: either a restart whose old boot said no goodbye (then
      // the old entry ages out and this one takes over) or a second claimant.
      if (old.host !== host || old.port !== a.port) this.emit('conflict', a.node, host);
      return;
    }
    // Without validMs (another implementation), our own settings say how long it counts.
    this.heard.set(a.node, { node: a.node, host, port: a.port, boot: a.boot, lastMs: this.now(), validMs: a.validMs ?? this.validMs() });
    if (!old || old.host !== host || old.port !== a.port) this.emit('change', this.nodes());
  }
}

/** "239.1.2.3:7118" into group and port; undefined when it is not a multicast IPv4 address with a port. */
export function parseGroup(text: string): { group: string; port: number } | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(text);
  if (!m || isIP(m[1]!) !== 4) return undefined;
  const first = Number(m[1]!.split('.')[0]);
  const port = Number(m[2]);
  if (first < 224 || first > 239 || port < 1 || port > 65535) return undefined;
  return { group: m[1]!, port };
}
