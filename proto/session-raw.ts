// The client end of one session stream over the raw transport (proto/frame-wire.ts), shaped as the
// part of grpc-js's ClientDuplexStream that proto/session-client.ts uses: write(), end() (the
// half-close), cancel(); events 'data' (a frame), 'error' (an Errno: the server ended the stream
// with it, or no connection could be made or kept: EHOSTDOWN, ETIMEDOUT; EPROTONOSUPPORT: the node
// answered with something else than this transport), 'status' then 'end' when the server ended the
// stream cleanly. After cancel() it emits nothing more.
// A node with several addresses (the map's ALIAS lines) is tried address after address, as the
// gRPC channel does; frames written meanwhile wait for the connection.
import { EventEmitter } from 'node:events';
import { connect as connectTcp, isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { Errno } from './errno.js';
import { FramedConnection, hostPorts } from './frame-wire.js';

/** The cluster TLS material: the CA to trust, and this node's certificate and key. */
export interface RawTls { ca: Buffer; cert: Buffer; key: Buffer }

/** How long one address may take to connect and finish the TLS handshake. */
const CONNECT_MS = 10_000;

export class RawClientStream extends EventEmitter {
  private conn: FramedConnection | null = null;
  /** Frames written before the connection was up, and whether end() was called then. */
  private queued: Buffer[] = [];
  private endQueued = false;
  private socket: TLSSocket | null = null;
  private done = false;

  constructor(address: string, private readonly tls: RawTls, private readonly opts: { keepaliveMs: number; maxPayload: number }) {
    super();
    let targets: Array<{ host: string; port: number }>;
    try {
      targets = hostPorts(address);
    } catch (err) {
      queueMicrotask(() => this.finish(err as Errno));
      return;
    }
    this.dial(targets, 0, null);
  }

  write(frame: Buffer): boolean {
    if (this.conn) return this.conn.writeFrame(frame);
    this.queued.push(frame);
    return true;
  }

  /** Half-closes: the server ends the stream once it has answered everything. */
  end(): void {
    if (this.conn) this.conn.end(0);
    else this.endQueued = true;
  }

  /** Drops the connection; nothing more is emitted. */
  cancel(): void {
    this.done = true;
    this.socket?.destroy();
  }

  private dial(targets: Array<{ host: string; port: number }>, i: number, lastError: string | null): void {
    if (this.done) return;
    if (i >= targets.length) {
      return this.finish(new Errno('EHOSTDOWN', `cannot open a session connection to ${targets.map((t) => `${t.host}:${t.port}`).join(', ')}: ${lastError ?? 'no address'}`));
    }
    const { host, port } = targets[i]!;
    // No ALPNProtocols: that is what makes mfsd's HTTP/2 server hand the connection to sessions.
    // The server's certificate is checked against `host`, as the gRPC transport does. TCP_NODELAY
    // on the TCP socket itself (a TLS socket cannot set it): with Nagle, a frame that follows
    // another before its ACK waited for the peer's delayed ACK (40 ms).
    const tcp = connectTcp({ host, port, noDelay: true });
    const socket = connect({ socket: tcp, host, ca: this.tls.ca, cert: this.tls.cert, key: this.tls.key, ...(isIP(host) ? {} : { servername: host }) });
    this.socket = socket;
    let gaveUp = false;
    const failed = (err: NodeJS.ErrnoException | Error): void => {
      if (gaveUp) return;
      gaveUp = true;
      socket.destroy();
      tcp.destroy();
      this.dial(targets, i + 1, (err as NodeJS.ErrnoException).code ?? err.message);
    };
    socket.once('error', failed);
    tcp.once('error', failed);
    socket.setTimeout(CONNECT_MS, () => failed(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
    socket.once('secureConnect', () => {
      socket.off('error', failed);
      tcp.off('error', failed);
      socket.setTimeout(0);
      if (this.done) return void socket.destroy();
      this.adopt(socket);
    });
  }

  private adopt(socket: TLSSocket): void {
    const conn = new FramedConnection(socket, { maxPayload: this.opts.maxPayload, keepaliveMs: this.opts.keepaliveMs });
    this.conn = conn;
    let heard = false;
    conn.on('frame', (frame: Buffer) => {
      heard = true;
      if (!this.done) this.emit('data', frame);
    });
    conn.on('end', (errno: number, message: string) => this.finish(errno === 0 ? null : Errno.fromNumber(errno, message)));
    conn.on('close', (why: Errno | null) => {
      // Not one frame, and bytes that are no record: a server that does not speak this transport
      // (node:http2 without our listener answers "HTTP/1.0 403 ...").
      if (why?.code === 'EPROTO' && !heard) this.finish(new Errno('EPROTONOSUPPORT', `the node does not speak the raw session transport (${why.message})`));
      else this.finish(why ?? new Errno('EHOSTDOWN', 'the session connection closed'));
    });
    conn.sendPreface();
    for (const frame of this.queued) conn.writeFrame(frame);
    this.queued = [];
    if (this.endQueued) conn.end(0);
  }

  private finish(err: Errno | null): void {
    if (this.done) return;
    this.done = true;
    if (err) {
      this.emit('error', err);
      this.socket?.destroy();
    } else {
      this.emit('status');
      this.emit('end');
    }
  }
}
