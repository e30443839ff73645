// Peers: who a call belongs to, and what each peer may hold. A unary call's peer is its connection
// (key: grpc-js's getPeer() "ip:port", unique among live connections on the listening socket); a
// session frame's peer is its session (key "session:<node>:<session id hex>", server/session.ts), so
// that it outlives the session's stream for its lease. Everything a peer holds hangs off its Peer
// record and is dropped by `end()`, whoever decides the peer is gone (a connection closing, a
// session's lease expiring or the session being fenced).
import * as grpc from '@grpc/grpc-js';
import { Errno, errnoToStatus } from '../proto/errno.js';

export interface PeerLimits {
  /** Open files (fhs) one peer may hold; beyond, Open/Create fail with EMFILE. */
  openFilesPerPeer: number;
  /** Calls one peer may have in flight; beyond, a call fails at once with EAGAIN. */
  requestsPerPeer: number;
  /** POSIX locks one peer may hold (the lock table enforces it, ENOLCK). */
  locksPerPeer: number;
  /** Blocked SetLkW calls one peer may have waiting (the lock table enforces it, ENOLCK). */
  lockWaitersPerPeer: number;
}

export const DEFAULT_PEER_LIMITS: Readonly<PeerLimits> = {
  openFilesPerPeer: 4096,
  requestsPerPeer: 1024,
  locksPerPeer: 4096,
  lockWaitersPerPeer: 256,
};

/** One peer's accounting. Owned by Peers; other modules keep their own per-peer state keyed by it. */
export class Peer {
  /** Calls accepted and not finished. */
  inFlight = 0;
  /** Open/Create calls that passed the open-files check and have not finished (their fh may not exist yet). */
  opening = 0;
  /** Set once by Peers.end(): whatever is still added to a gone peer must be released by the adder. */
  gone = false;
  constructor(readonly key: string) {}
}

export class Peers {
  private readonly live = new Map<string, Peer>();
  private readonly onEnd: Array<(peer: Peer) => void> = [];
  readonly limits: Readonly<PeerLimits>;

  constructor(limits: Partial<PeerLimits> = {}) {
    this.limits = { ...DEFAULT_PEER_LIMITS, ...limits };
  }

  /** The peer record of `key`, made on first use. */
  get(key: string): Peer {
    let p = this.live.get(key);
    if (!p) {
      p = new Peer(key);
      this.live.set(key, p);
    }
    return p;
  }

  /** Whether `key` names a live peer. */
  has(key: string): boolean {
    return this.live.has(key);
  }

  /** The peer a call comes from. */
  of(call: { getPeer(): string }): Peer {
    return this.get(call.getPeer());
  }

  /** Runs `fn` for every peer that ends (file service: close its files, drop its locks). */
  whenEnded(fn: (peer: Peer) => void): void {
    this.onEnd.push(fn);
  }

  /** The peer is gone: release everything it holds. A later call with the same key is a new peer. */
  end(key: string): void {
    const p = this.live.get(key);
    if (!p) return;
    this.live.delete(key);
    p.gone = true;
    for (const fn of this.onEnd) {
      try {
        fn(p);
      } catch {
        // One holder failing to release must not keep the others from releasing.
      }
    }
  }

  /** Number of live peer records (tests, diagnostics). */
  get size(): number {
    return this.live.size;
  }

  /**
   * A grpc-js server interceptor (documented API) that caps calls in flight per peer. A call over the
   * cap is answered EAGAIN before any handler runs: EAGAIN because it is temporary and the peer's own
   * doing (its earlier calls will finish), the way the kernel answers fork() at RLIMIT_NPROC; the
   * client may retry. ENOBUFS/ENOMEM would wrongly suggest the daemon itself is short.
   */
  interceptor(): grpc.ServerInterceptor {
    return (_method, call) => {
      const peer = this.of(call);
      let counted = false;
      const finish = (): void => {
        if (!counted) return;
        counted = false;
        peer.inFlight -= 1;
      };
      return new grpc.ServerInterceptingCall(call, {
        start: (next) => next({
          onReceiveMetadata: (metadata, nextMd) => {
            if (peer.inFlight >= this.limits.requestsPerPeer) {
              const s = errnoToStatus(new Errno('EAGAIN', `more than ${this.limits.requestsPerPeer} calls in flight from this peer`));
              call.sendStatus({ code: s.code ?? grpc.status.UNAVAILABLE, details: s.details ?? '', metadata: s.metadata ?? null });
              return;
            }
            peer.inFlight += 1;
            counted = true;
            nextMd(metadata);
          },
          onCancel: finish,
        }),
        sendStatus: (status, next) => {
          finish();
          next(status);
        },
      });
    };
  }
}
