// `mfsctl nomfs` / `mfsctl mfs` (openMosix's mosctl nomfs/mfs): refuse, and allow again, other
// nodes' access to this node's files. While refusing:
// - a new session from another node is refused at its Hello with EACCES (its mount's call fails
//   "Permission denied" at once, and the next use asks again);
// - an existing session of another node is ended, and its resume Hellos (and bulk streams) are
//   refused with EHOSTDOWN, an errno the session client retries: to that client the node is away,
//   so a soft mount fails EIO after timeo and a hard one waits until `mfsctl mfs`;
// - unary file calls are refused with EACCES unless their client certificate names this node
//   (without TLS nothing says who calls: every unary file call is refused).
// This node's own mount (in process, or dfsa=0: a session claiming this node) keeps working.
// NodeService (identify, status, load) is not file access and stays open.
//
// The state is persisted: `<stateDir>/nomfs` exists while refusing, so a restart of the daemon (a
// crash, an upgrade, systemd's Restart=) does not open the node again behind the admin's back;
// only `mfsctl mfs` does. openMosix kept it in the running kernel only; a daemon restarts far more
// often than a kernel, and unlike a reboot nobody decides it.
import type * as grpc from '@grpc/grpc-js';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, errnoToStatus } from '../proto/errno.js';

export const NOMFS_FILE = 'nomfs';

/** What a session's Hello is checked with (server/session.ts). */
export interface SessionGate {
  /**
   * null: accepted, and `end` will end this stream if access is refused later (until the stream
   * closes: `call`'s end events unregister it). Otherwise the errno the Hello is refused with.
   */
  admit(node: number, newSession: boolean, end: (why: Errno) => void, call: NodeJS.EventEmitter): Errno | null;
}

export class MfsAccess implements SessionGate {
  private since: Date | null;
  private readonly streams = new Map<(why: Errno) => void, number>();

  constructor(private readonly node: number, private readonly stateDir: string, private readonly tls: boolean) {
    this.since = readSince(join(stateDir, NOMFS_FILE));
  }

  /** Whether other nodes are refused, and since when. */
  get refusing(): Date | null {
    return this.since;
  }

  /** nomfs: refuse other nodes from now on and end their sessions; the number of streams ended. */
  refuse(): number {
    if (!this.since) {
      const now = new Date();
      writeFileSync(join(this.stateDir, NOMFS_FILE), `${now.toISOString()}\n`, { mode: 0o600 });
      this.since = now;
    }
    let ended = 0;
    for (const [end, node] of [...this.streams]) {
      if (node === this.node) continue;
      this.streams.delete(end);
      end(this.away());
      ended += 1;
    }
    return ended;
  }

  /** mfs: other nodes may come back (their sessions resume on their own). */
  allow(): void {
    rmSync(join(this.stateDir, NOMFS_FILE), { force: true });
    this.since = null;
  }

  admit(node: number, newSession: boolean, end: (why: Errno) => void, call: NodeJS.EventEmitter): Errno | null {
    if (this.since && node !== this.node) {
      return newSession
        ? new Errno('EACCES', `node ${this.node} refuses other nodes' access to its files (mfsctl nomfs)`)
        : this.away();
    }
    this.streams.set(end, node);
    const off = (): void => {
      this.streams.delete(end);
    };
    for (const ev of ['close', 'finish', 'error', 'cancelled']) call.once(ev, off);
    return null;
  }

  private away(): Errno {
    return new Errno('EHOSTDOWN', `node ${this.node} refuses other nodes' access for now (mfsctl nomfs): the session waits until mfsctl mfs`);
  }

  /** The refusal for a unary file call, or null when it may run. */
  private checkUnary(call: { getAuthContext?(): { sslPeerCertificate?: { subject?: { CN?: unknown } } } | undefined }): Errno | null {
    if (!this.since) return null;
    const cn = this.tls ? call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN : undefined;
    if (cn === `node${this.node}`) return null;
    return new Errno('EACCES', `node ${this.node} refuses other nodes' access to its files (mfsctl nomfs)`);
  }

  /**
   * The file service's handlers, each checking access first: a refused unary or client-streaming
   * call gets the errno as its status, a server-streaming one ends with it.
   */
  guard(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
    const out: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(implementation)) {
      const def = definition[name];
      const fn = handler as (call: never, callback?: never) => void;
      if (!def) {
        out[name] = handler;
        continue;
      }
      if (def.responseStream) {
        out[name] = ((call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
          const refused = this.checkUnary(call);
          if (refused) call.emit('error', errnoToStatus(refused));
          else fn(call as never);
        }) as grpc.UntypedHandleCall;
      } else {
        out[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const refused = this.checkUnary(call);
          if (refused) callback(errnoToStatus(refused));
          else fn(call as never, callback as never);
        }) as grpc.UntypedHandleCall;
      }
    }
    return out;
  }
}

function readSince(file: string): Date | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  const d = new Date(text);
  // A file without a readable time still means refusing: its presence is the state.
  return Number.isNaN(d.getTime()) ? new Date(0) : d;
}
