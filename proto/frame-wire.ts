// The raw session transport: session frames (proto/session.proto) over a TLS connection of their
// own, without HTTP/2 or gRPC. Why: a session's every call crossed grpc-js's call layers, HTTP/2
// framing and flow control on both sides, and each 1 MiB write was copied into a new message
// buffer on each side (GC in both processes). Measured on loopback with mutual TLS, one call at a
// time: a 200-byte call 125-139 us here against 151-197 over gRPC; a 1 MiB one 1.3-1.5 ms against
// 1.8-2.3 ms (bench/stream-floor.ts measures the gRPC side).
//
// How a connection starts: the client opens TLS to the mfsd's gRPC port offering NO ALPN protocol
// (gRPC clients offer h2); node:http2 hands such a connection, handshake and client certificate
// already checked, to the 'unknownProtocol' listener, which server/transport.ts passes to the
// session service. The client then writes PREFACE, and both sides write records:
//   header: payload length (u32 LE), kind (u8); then the payload.
//   FRAME  one ClientFrame or ServerFrame: what one gRPC message of the Session method carries
//   PING   a keepalive probe (no payload), answered with PONG
//   PONG
//   END    the sender is done: errno (u32 LE, 0 for a clean end), then a UTF-8 message. A client's
//          END 0 half-closes (gRPC's end of the request stream); a server's END ends the stream
//          with that errno (gRPC's status). The sender then ends the TLS connection.
// A record whose length is over the receiver's limit, an unknown kind or a wrong preface ends the
// connection (EPROTO). Keepalive: a side that has received nothing for keepaliveMs sends PING; if
// it still has received nothing keepaliveMs later, the connection is dead (ETIMEDOUT). So a silent
// peer is noticed within about twice keepaliveMs, as with the HTTP/2 pings of the gRPC transport.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Errno } from './errno.js';

export const PREFACE = Buffer.from('OMFS/S1\n', 'latin1');
const HEADER = 5;
const FRAME = 0;
const PING = 1;
const PONG = 2;
const END = 3;
const EMPTY = Buffer.alloc(0);

export interface FramedOptions {
  /** The largest payload accepted from the peer. */
  maxPayload: number;
  /** Keepalive interval (0: none). */
  keepaliveMs: number;
  /** Server side: the peer must first send PREFACE, within `prefaceMs`. */
  expectPreface?: { withinMs: number };
}

/**
 * One framed connection. Events: 'frame' (payload: a view into what was received, valid as long as
 * it is referenced), 'end' (errno, message: the peer sent END), 'drain', 'close' (Errno or null:
 * the connection is gone; null when both sides ended it cleanly).
 */
export class FramedConnection extends EventEmitter {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The payload length and kind of the record being received, or -1 while its header is awaited. */
  private need = -1;
  private kind = 0;
  private prefaceLeft: number;
  private heard = false;
  private pinged = false;
  /** Paused for backpressure: nothing is read, so silence proves nothing. */
  private paused = false;
  private readonly keepalive: NodeJS.Timeout | undefined;
  private readonly prefaceTimer: NodeJS.Timeout | undefined;
  private failure: Errno | null = null;
  private ended = false;
  private peerEnded = false;
  private closed = false;

  constructor(readonly socket: Socket, private readonly opts: FramedOptions) {
    super();
    this.prefaceLeft = opts.expectPreface ? PREFACE.length : 0;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.failure ??= new Errno('EHOSTDOWN', `session connection: ${err.code ?? err.message}`);
    });
    socket.on('close', () => this.onClose());
    // The peer half-closed: after its END that is the clean way; without it, the peer went away.
    socket.on('end', () => {
      if (!this.peerEnded) this.failure ??= new Errno('EHOSTDOWN', 'the session connection was closed by the other side');
      socket.end();
    });
    if (opts.keepaliveMs > 0) {
      this.keepalive = setInterval(() => this.tick(), opts.keepaliveMs);
      this.keepalive.unref();
    }
    if (opts.expectPreface) {
      this.prefaceTimer = setTimeout(() => this.destroy(new Errno('ETIMEDOUT', 'no session preface in time')), opts.expectPreface.withinMs);
      this.prefaceTimer.unref();
    }
  }

  /** Client side: the preface, before any record. */
  sendPreface(): void {
    this.socket.write(PREFACE);
  }

  /** Sends one frame; false when the socket's buffer is full ('drain' follows). */
  writeFrame(payload: Buffer): boolean {
    return this.record(FRAME, payload);
  }

  /** Sends END (errno 0: a clean end) and ends the connection's sending side. */
  end(errno = 0, message = ''): void {
    if (this.ended || this.closed) return;
    const text = Buffer.from(message, 'utf8');
    const payload = Buffer.allocUnsafe(4 + text.length);
    payload.writeUInt32LE(errno, 0);
    text.copy(payload, 4);
    this.record(END, payload);
    this.ended = true;
    this.socket.end();
  }

  /** Drops the connection at once; 'close' reports `why`. */
  destroy(why: Errno): void {
    this.failure ??= why;
    this.socket.destroy();
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket.resume();
  }

  private record(kind: number, payload: Buffer): boolean {
    if (this.ended || this.closed) return false;
    const header = Buffer.allocUnsafe(HEADER);
    header.writeUInt32LE(payload.length, 0);
    header[4] = kind;
    // One TLS write for both: the payload is encrypted from where it is, never copied here.
    this.socket.cork();
    this.socket.write(header);
    if (payload.length > 0) this.socket.write(payload);
    this.socket.uncork();
    return !this.socket.writableNeedDrain;
  }

  private tick(): void {
    if (this.heard || this.paused) {
      this.heard = false;
      this.pinged = false;
    } else if (this.pinged) {
      this.destroy(new Errno('ETIMEDOUT', `the session connection's peer did not answer a keepalive ping within ${this.opts.keepaliveMs} ms`));
    } else {
      this.pinged = true;
      this.record(PING, EMPTY);
    }
  }

  private onData(chunk: Buffer): void {
    this.heard = true;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, chunk.length);
      const at = PREFACE.length - this.prefaceLeft;
      if (!chunk.subarray(0, n).equals(PREFACE.subarray(at, at + n))) return this.destroy(new Errno('EPROTO', 'not an omfs session preface'));
      this.prefaceLeft -= n;
      if (this.prefaceLeft === 0) clearTimeout(this.prefaceTimer);
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.closed) {
      if (this.need < 0) {
        if (this.buffered < HEADER) return;
        const h = this.take(HEADER);
        this.need = h.readUInt32LE(0);
        this.kind = h[4]!;
        if (this.kind > END) return this.destroy(new Errno('EPROTO', `unknown session record kind ${this.kind}`));
        if (this.need > this.opts.maxPayload) return this.destroy(new Errno('EPROTO', `a session record of ${this.need} bytes (at most ${this.opts.maxPayload})`));
      }
      if (this.buffered < this.need) return;
      const payload = this.take(this.need);
      this.need = -1;
      this.dispatch(this.kind, payload);
    }
  }

  private dispatch(kind: number, payload: Buffer): void {
    if (kind === FRAME) this.emit('frame', payload);
    else if (kind === PING) this.record(PONG, EMPTY);
    else if (kind === END) {
      if (payload.length < 4) return this.destroy(new Errno('EPROTO', 'a session END record without its errno'));
      this.peerEnded = true;
      this.emit('end', payload.readUInt32LE(0), payload.toString('utf8', 4));
    }
  }

  /** The next n received bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let off = 0; off < n;) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    clearTimeout(this.prefaceTimer);
    this.chunks.length = 0;
    this.emit('close', this.failure);
  }
}

/**
 * The addresses of a gRPC target as cluster/addresses.ts dialTarget() writes them, in order:
 * "host:port", "[v6]:port", or "ipv4:a:p,b:p" / "ipv6:[a]:p,[b]:p" for a node with several.
 */
export function hostPorts(target: string): Array<{ host: string; port: number }> {
  const list = target.replace(/^(ipv4|ipv6|dns):(\/\/\/)?/, '');
  return list.split(',').map((one) => {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(one) ?? /^([^:]+):(\d+)$/.exec(one);
    if (!m) throw new Errno('EINVAL', `not a host:port address: ${one}`);
    return { host: m[1]!, port: Number(m[2]) };
  });
}
