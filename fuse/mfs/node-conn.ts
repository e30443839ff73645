// One cluster node as the mount sees it: its session (opened when /mfs/<K> is first used, closed
// when idle), its exports, and the bookkeeping that decides whether a reply may be cached. Every
// invalidation the node sends bumps `seq` and records, per inode, the seq of its last
// invalidation; a reply may be cached only if none of the inodes it describes was invalidated
// after the request was sent (fresh()). Losing the session counts as invalidating everything.
//
// The node is reached through a NodeLink (proto/node-link.ts): a Session dialed to its mfsd, or,
// for the node whose mfsd hosts this mount, the LocalNode's in-process link (no socket: DFSA's
// short-circuit), which keeps its callbacks like a session and is never closed for idleness (it
// costs nothing to keep, and keeping it keeps the kernel's cache of the node's own files).
import { credentials as grpcCredentials, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { constants } from 'node:os';
import { Errno, statusToErrno } from '../../proto/errno.js';
import { loadNodeServiceConstructor, type ExportInfo, type IdentifyReply } from '../../proto/node.js';
import type { LocalNode, NodeLink } from '../../proto/node-link.js';
import { Session } from '../../proto/session-client.js';
import type { RawTls } from '../../proto/session-raw.js';

/** An invalidation as the mount uses it, whatever shape the session library delivers. */
export interface Inval {
  kind: 'attr' | 'data' | 'name';
  /** The inode (for 'name': the directory). */
  ino: bigint;
  offset: number;
  /** 0 = to the end. */
  length: number;
  /** 'name' only; empty = every name in the directory and its listing. */
  name: Buffer;
}

export interface ConnOptions {
  /** This mount's node number (its certificate names node<N>). */
  myNode: number;
  creds: ChannelCredentials;
  /** The cluster TLS material `creds` were made of: sessions then use the raw transport (proto/frame-wire.ts). */
  tls?: RawTls;
  /** Channel options for this node's channels (e.g. grpc.ssl_target_name_override with credentials of its own). */
  channelOptions?: ChannelOptions;
  /** soft: a call waiting for an absent node fails with EIO after timeoMs; hard: it waits. */
  soft: boolean;
  timeoMs: number;
  /** Close the session after this long without calls or open files (ms); 0 = never. */
  idleMs: number;
  /** This is the hosting mfsd's own node: reach it through this, in process, instead of dialing `address`. */
  local?: LocalNode;
  /**
   * Wraps the link every operation goes through (the events stay on the link itself): a place for
   * the caller to watch each operation (DFSA's per-process I/O statistics) without this file knowing.
   */
  wrapLink?: (link: NodeLink, node: number) => NodeLink;
}

/** A call's body: it may use only what every link has (a session or the in-process link). */
type LinkCall<T> = (s: NodeLink) => Promise<T>;

/** Inodes whose last invalidation is remembered; beyond, everything counts as just invalidated. */
const TRACKED_INODES_MAX = 65536;

const big = (v: unknown): bigint => (v === undefined || v === null || v === '' ? 0n : BigInt(v as string | number | bigint));

/** The session library's Invalidate (protobufjs oneof, or a flattened {kind, ...}) as an Inval. */
export function normalizeInval(raw: Record<string, unknown>): Inval | undefined {
  const flat = typeof raw['kind'] === 'string';
  const kind = (flat ? raw['kind'] : raw['what'] ?? ['attr', 'data', 'name'].find((k) => raw[k] != null)) as string | undefined;
  if (kind !== 'attr' && kind !== 'data' && kind !== 'name') return undefined;
  const body = (flat ? raw : raw[kind]) as Record<string, unknown> | undefined;
  if (!body) return undefined;
  const name = body['name'];
  return {
    kind,
    ino: big(kind === 'name' ? body['dir'] ?? body['ino'] : body['ino']),
    offset: Number(big(body['offset'])),
    length: Number(big(body['length'])),
    name: Buffer.isBuffer(name) ? name : name instanceof Uint8Array ? Buffer.from(name) : typeof name === 'string' ? Buffer.from(name) : Buffer.alloc(0),
  };
}

/**
 * The kernel layer (fuse/kernel/session.ts) reads an error's `code` against Node's errno names,
 * which lack some Linux ones: EHOSTDOWN (a node that cannot be talked to) would reach the caller as
 * EIO. Until that layer takes the number, the nearest errno it knows: EHOSTUNREACH.
 */
function forKernel(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || Object.hasOwn(constants.errno, code)) return err;
  return new Errno(code === 'EHOSTDOWN' ? 'EHOSTUNREACH' : 'EIO', (err as Error).message);
}

export class NodeConn {
  private session: NodeLink | null = null;
  /** What operations run on: the session, wrapped by opts.wrapLink when given. */
  private link: NodeLink | null = null;
  private opening: Promise<NodeLink> | null = null;
  /** The node's exports, from its Identify (known once a session opened). */
  exports: ExportInfo[] = [];
  private seq = 0;
  private floor = 0;
  private readonly lastInval = new Map<bigint, number>();
  /** Open files on this node: the session may not be closed for idleness while any is open. */
  openFiles = 0;
  private lastUse = Date.now();
  /** The mount was detached (umount -l): no call may wait for an absent node any more. */
  private detached = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /**
   * Called for each invalidation, after the bookkeeping; resolves once the kernel applied it. The
   * promise is what the session's 'invalidate' listener returns, so that the ack can wait for it
   * (see the report: the session library acks when the listener returns).
   */
  onInvalidate: (inv: Inval) => Promise<unknown> | void = () => {};
  /** Called when the session is lost or closed: everything cached from this node must go. */
  onLost: () => Promise<unknown> | void = () => {};

  constructor(readonly node: number, readonly address: string, private readonly opts: ConnOptions) {}

  /** Whether the session is connected (replies may then be cached). */
  get up(): boolean {
    return this.session?.status === 'connected';
  }

  /** The seq to compare against after the reply (see fresh()). */
  mark(): number {
    return this.seq;
  }

  /** Whether no inode of `inos` was invalidated since mark() returned `since`, and the session is up. */
  fresh(since: number, ...inos: bigint[]): boolean {
    if (!this.up || since < this.floor) return false;
    for (const ino of inos) if ((this.lastInval.get(ino) ?? this.floor) > since) return false;
    return true;
  }

  /** Whether this node is reached in process (the hosting mfsd's own). */
  get isLocal(): boolean {
    return this.opts.local !== undefined;
  }

  /** The session, opened (with the node's exports) on first use. */
  use(): Promise<NodeLink> {
    this.lastUse = Date.now();
    if (this.session) return Promise.resolve(this.session);
    this.opening ??= this.open().finally(() => (this.opening = null));
    return this.opening;
  }

  /** Runs one operation on the session (hard: waits while the node is away; soft: EIO after timeo). */
  async call<T>(fn: LinkCall<T>): Promise<T> {
    let s: NodeLink | undefined;
    try {
      s = await this.use();
      return await fn(this.link ?? s);
    } catch (err) {
      // The session ended for good (closed, refused): drop it and what we cached; the next call reopens.
      if ((err as { code?: string }).code === 'EHOSTDOWN' && s && this.session === s && s.status === 'closed') this.retire();
      throw forKernel(err);
    } finally {
      this.lastUse = Date.now();
    }
  }

  private async open(): Promise<NodeLink> {
    const local = this.opts.local;
    let s: NodeLink;
    if (local) {
      this.exports = [...local.exports];
      s = local.openLink();
    } else {
      this.exports = (await this.identify()).exports;
      // A node that cannot be reached at first use fails at once (EHOSTDOWN), hard or soft: only a
      // session that was up waits for its node to come back (hard) or gives up after timeo (soft).
      s = await Session.open(this.address, this.opts.creds, {
        node: this.opts.myNode, mode: this.opts.soft ? 'soft' : 'hard', timeoMs: this.opts.timeoMs,
        ...(this.opts.channelOptions ? { channelOptions: this.opts.channelOptions } : {}),
        ...(this.opts.tls ? { tls: this.opts.tls } : {}),
      });
    }
    s.on('invalidate', (raw) => this.invalidated(raw as unknown as Record<string, unknown>));
    // The stream broke (reset) or the server's state of the session is gone (expired): the server
    // dropped our callbacks, so nothing cached from it is known good. The session reconnects itself.
    s.on('reset', () => this.lost());
    s.on('expired', () => this.lost());
    s.on('state', (state) => {
      if (this.detached && state === 'reconnecting' && this.session === s) this.retire();
    });
    this.session = s;
    this.link = this.opts.wrapLink ? this.opts.wrapLink(s, this.node) : s;
    this.armIdle();
    return s;
  }

  /** The node's exports, from NodeService Identify (same certificate). */
  private identify(): Promise<IdentifyReply> {
    const Ctor = loadNodeServiceConstructor();
    const client = new Ctor(this.address, this.opts.creds ?? grpcCredentials.createInsecure(), this.opts.channelOptions ?? {});
    return new Promise<IdentifyReply>((resolve, reject) => {
      const call = client['Identify'] as (req: object, md: object, cb: (e: ServiceError | null, r: IdentifyReply) => void) => void;
      try {
        call.call(client, {}, { deadline: Date.now() + 15_000 }, (e, r) => {
          client.close();
          if (e) reject(e.metadata?.get('omfs-errno').length ? statusToErrno(e) : new Errno('EHOSTDOWN', `node ${this.node}: ${e.message}`));
          else resolve(r);
        });
      } catch (err) {
        client.close();
        reject(new Errno('EHOSTDOWN', `node ${this.node}: ${(err as Error).message}`));
      }
    });
  }

  private invalidated(raw: Record<string, unknown>): Promise<unknown> | void {
    const inv = normalizeInval(raw);
    this.seq++;
    if (!inv) {
      // Something we cannot read: treat it as a change to everything.
      this.floor = this.seq;
      this.lastInval.clear();
      return this.onLost();
    }
    if (this.lastInval.size >= TRACKED_INODES_MAX) {
      this.floor = this.seq;
      this.lastInval.clear();
    }
    this.lastInval.set(inv.ino, this.seq);
    return this.onInvalidate(inv);
  }

  /** The server dropped our callbacks (reset, expired lease): nothing cached from it is known good. */
  private lost(): void {
    this.floor = ++this.seq;
    this.lastInval.clear();
    void this.onLost();
  }

  /** Close the session (broken, idle, or unmount) and drop what was cached from it. */
  retire(): void {
    const s = this.session;
    if (!s) return;
    this.session = null;
    this.link = null;
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    s.removeAllListeners();
    s.close();
    this.lost();
  }

  /**
   * The mount is no longer attached (umount -l) but processes may still use it: those of connected
   * nodes go on; a call waiting for an absent node (hard) fails now, and one that would wait later
   * fails instead (EHOSTDOWN), so no process is left hung on a mount nobody can see.
   */
  detach(): void {
    this.detached = true;
    if (this.session && this.session.status !== 'connected') this.retire();
  }

  /** Idle sessions close: a map of many nodes costs nothing while they are not used. */
  private armIdle(): void {
    const idle = this.opts.idleMs;
    if (idle <= 0 || this.opts.local) return;
    this.idleTimer = setInterval(() => {
      const s = this.session;
      if (s && this.openFiles === 0 && s.inFlight === 0 && Date.now() - this.lastUse > idle) this.retire();
    }, Math.max(1000, idle / 2));
    this.idleTimer.unref();
  }
}
