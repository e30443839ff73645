// A session stream over the raw transport (proto/frame-wire.ts), shaped as the part of grpc-js's
// ServerDuplexStream that the session service uses, so server/session.ts serves both transports
// with one ServerStream: 'data' per frame, 'end' at the client's half-close, 'drain', 'close';
// write() with backpressure, pause()/resume(), end(), fail() (END with an errno), and the peer's
// certificate through getAuthContext() as grpc-js gives it.
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import type { Errno } from '../proto/errno.js';
import { FramedConnection } from '../proto/frame-wire.js';

export interface RawAuthContext { sslPeerCertificate?: { subject?: { CN?: unknown } } }

export class RawSessionCall extends EventEmitter {
  private readonly conn: FramedConnection;

  constructor(private readonly socket: TLSSocket, opts: { maxPayload: number; keepaliveMs: number; prefaceMs: number }) {
    super();
    this.conn = new FramedConnection(socket, { maxPayload: opts.maxPayload, keepaliveMs: opts.keepaliveMs, expectPreface: { withinMs: opts.prefaceMs } });
    this.conn.on('frame', (frame: Buffer) => this.emit('data', frame));
    // The client's END 0 is its half-close; END with an errno from a client means nothing more
    // than that it is gone.
    this.conn.on('end', (errno: number) => (errno === 0 ? this.emit('end') : socket.destroy()));
    this.conn.on('drain', () => this.emit('drain'));
    this.conn.on('close', () => this.emit('close'));
  }

  write(frame: Buffer): boolean {
    return this.conn.writeFrame(frame);
  }

  pause(): void {
    this.conn.pause();
  }

  resume(): void {
    this.conn.resume();
  }

  /** The stream ends cleanly (every reply sent). */
  end(): void {
    this.conn.end(0);
  }

  /** The stream ends with `err`, which the client's session sees as the stream's errno. */
  fail(err: Errno): void {
    this.conn.end(err.errno, err.message);
  }

  getAuthContext(): RawAuthContext {
    const cert = this.socket.getPeerCertificate();
    return cert && Object.keys(cert).length > 0 ? { sslPeerCertificate: { subject: { CN: cert.subject?.CN } } } : {};
  }
}
