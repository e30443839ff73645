// The connection layer under grpc-js: which connections exist, which have authenticated, and when
// one closes; the HTTP/2 flow-control windows and frame size they use; and the hand-over of raw
// session connections. grpc-js has no documented hook for any of this, so this file is the ONE
// place that uses its internals, written against @grpc/grpc-js 1.14.7 (build/src/server.js):
//   - Server.createHttp2Server(credentials) is a JS method (private in the .d.ts) that bindAsync and
//     createConnectionInjector call through `this`; wrapping it on the instance hands us each
//     http2 server before it listens.
//   - On that http2 server (a plain node:http2 server): 'connection' = raw TCP socket accepted,
//     'secureConnection' = TLS handshake done and the client certificate accepted, 'session' = an
//     http2 session whose 'close' means the connection is gone, 'unknownProtocol' = a TLS
//     connection that negotiated no ALPN protocol (node:http2's documented event).
//   - A call's getPeer() (documented) is `${remoteAddress}:${remotePort}` of the session's socket
//     (server-interceptors.js), so peerKeyOf() below builds the same string from a socket.
// test/server/security-limits-transport.test.ts fails loudly if an upgrade breaks any of these.
//
// Before authentication (issue 8 point 5): a TLS connection that has not finished its handshake
// within `handshakeTimeoutMs` is destroyed, and at most `maxUnauthenticated` such connections may
// exist at once; a new one beyond that is closed at once. Authenticated connections do not count.
// (Our own timer rather than node:tls's handshakeTimeout option, which would need grpc-js's private
// _getConstructorOptions too; ours also covers a peer that sends half a hello.)
import type * as grpc from '@grpc/grpc-js';
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Http2SecureServer, Http2Session } from 'node:http2';
import { SESSION_CONNECTION_WINDOW, SESSION_MAX_FRAME, SESSION_STREAM_WINDOW } from '../proto/session-codec.js';

export interface TransportOptions {
  /** A connection (the peer of key `peerKey`) closed: release what it holds. */
  onConnectionClosed(peerKey: string): void;
  /** Deadline for a TLS client to complete its handshake. */
  handshakeTimeoutMs: number;
  /** Connections allowed to be still handshaking at once. */
  maxUnauthenticated: number;
  /**
   * A TLS connection whose client certificate was accepted and which offered no ALPN protocol (a
   * gRPC client offers h2): the raw session transport (proto/frame-wire.ts). Without this, node:http2
   * refuses such a connection as it would any (an HTTP 403), and raw clients fall back to gRPC.
   */
  onRawConnection?(socket: TLSSocket): void;
}

export interface TransportStats {
  /** Connections accepted whose TLS handshake has not completed. */
  unauthenticated(): number;
}

type CreateHttp2Server = (credentials: grpc.ServerCredentials) => NetServer;

/** The same key grpc-js's call.getPeer() gives for calls on this socket's connection. */
export function peerKeyOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  if (!socket.remoteAddress) return 'unknown';
  return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}

/**
 * Makes `server` report closed connections and guard the handshake phase. Call before bindAsync.
 * Throws if this grpc-js no longer has the method we wrap (see the header).
 */
export function trackConnections(server: grpc.Server, opts: TransportOptions): TransportStats {
  const internals = server as unknown as { createHttp2Server?: CreateHttp2Server };
  const original = internals.createHttp2Server;
  if (typeof original !== 'function') {
    throw new Error('@grpc/grpc-js internals changed: Server.createHttp2Server is gone (server/transport.ts was written for 1.14.7)');
  }
  let handshaking = 0;
  // Raw sockets still handshaking, by peer key, so 'secureConnection' (which gets the TLS socket) finds them.
  const pending = new Map<string, () => void>();

  const guardHandshake = (socket: Socket): void => {
    // Frames go out as they are written: with Nagle, a small frame that follows another before its
    // ACK waits for the peer's delayed ACK (40 ms). Set on the TCP socket (a TLS one cannot).
    socket.setNoDelay(true);
    if (handshaking >= opts.maxUnauthenticated) {
      socket.destroy();
      return;
    }
    handshaking += 1;
    const key = peerKeyOf(socket);
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      handshaking -= 1;
      clearTimeout(timer);
      if (pending.get(key) === settle) pending.delete(key);
    };
    const timer = setTimeout(() => {
      settle();
      socket.destroy();
    }, opts.handshakeTimeoutMs);
    timer.unref();
    pending.set(key, settle);
    socket.once('close', settle);
  };

  internals.createHttp2Server = function (this: unknown, credentials: grpc.ServerCredentials): NetServer {
    const http2Server = original.call(server, credentials);
    // Wide flow-control windows and large frames (why: SESSION_STREAM_WINDOW). grpc-js sets only
    // maxConcurrentStreams on its servers; updateSettings keeps that and adds ours.
    (http2Server as unknown as Http2SecureServer).updateSettings({ initialWindowSize: SESSION_STREAM_WINDOW, maxFrameSize: SESSION_MAX_FRAME });
    if (credentials._isSecure()) {
      // Prepended: runs before node:tls wraps the socket and before grpc-js's own listener.
      http2Server.prependListener('connection', guardHandshake);
      http2Server.on('secureConnection', (tlsSocket: Socket) => pending.get(peerKeyOf(tlsSocket))?.());
      // With a listener here node:http2 leaves the connection to us (no timeout of its own);
      // without one it answers "HTTP/1.0 403" and closes, which a raw client takes as "use gRPC".
      const onRaw = opts.onRawConnection;
      if (onRaw) http2Server.on('unknownProtocol', (tlsSocket: TLSSocket) => (tlsSocket.authorized ? onRaw(tlsSocket) : tlsSocket.destroy()));
    }
    http2Server.on('session', (session: Http2Session) => {
      const key = peerKeyOf(session.socket);
      session.once('close', () => opts.onConnectionClosed(key));
      session.setLocalWindowSize(SESSION_CONNECTION_WINDOW);
    });
    return http2Server;
  };
  return { unauthenticated: () => handshaking };
}
