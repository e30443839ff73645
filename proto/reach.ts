// Why a node cannot be reached, in words: grpc-js only retries until its deadline and then says
// "Failed to connect before the deadline". This dials HOST:PORT the way a gRPC channel would (TCP,
// then TLS or not, then the HTTP/2 preface) and names the first step that fails: nothing
// listening, TLS meeting plaintext or the reverse, a certificate from another CA.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** HOST:PORT or [V6]:PORT split; undefined when there is no numeric port. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

export interface ReachTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Where ca.crt, node.crt and node.key came from, named in the messages. */
  dir: string;
}

// The HTTP/2 client preface and an empty SETTINGS frame: what a gRPC client sends first.
const PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/** Certificate verification codes that mean "not signed by the CA we trust". */
const FOREIGN_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE',
]);

const NET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing listens on that port: is mfsd running there?)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'cannot resolve the host name',
  EAI_AGAIN: 'cannot resolve the host name (temporary failure)',
  EADDRNOTAVAIL: 'address not available',
};

type Outcome =
  | { kind: 'http2' }             // the server answered with HTTP/2 frames: this transport works
  | { kind: 'closed' }            // closed (or reset) without a byte
  | { kind: 'other-bytes' }       // answered, but not with HTTP/2
  | { kind: 'timeout' }
  | { kind: 'error'; err: NodeJS.ErrnoException };

interface Watched { outcome: Outcome; connected: boolean; handshake: boolean }

/**
 * Once connected (and, over TLS, once the handshake is done) write the preface, then wait for the
 * first bytes, the end, an error or the deadline.
 */
function watch(sock: Socket | TLSSocket, secure: boolean, deadline: number): Promise<Watched> {
  return new Promise((resolve) => {
    let connected = false;
    let handshake = false;
    let done = false;
    const finish = (outcome: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ outcome, connected, handshake });
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), Math.max(0, deadline - Date.now()));
    sock.once('connect', () => {
      connected = true;
      if (!secure) sock.write(PREFACE);
    });
    sock.once('secureConnect', () => {
      connected = handshake = true;
      sock.write(PREFACE);
    });
    // An HTTP/2 server's first frame is SETTINGS (type 4 in byte 3 of the 9-byte frame header).
    sock.once('data', (d: Buffer) => finish(d.length >= 4 && d[3] === 4 ? { kind: 'http2' } : { kind: 'other-bytes' }));
    sock.once('error', (err: NodeJS.ErrnoException) => finish(connected && err.code === 'ECONNRESET' ? { kind: 'closed' } : { kind: 'error', err }));
    sock.once('close', () => finish({ kind: 'closed' }));
  });
}

/** What a failed TCP connect means, or undefined when the error is not one of those. */
function netErrorText(err: NodeJS.ErrnoException): string | undefined {
  return NET_ERRORS[err.code ?? ''];
}

function tlsErrorText(err: NodeJS.ErrnoException, host: string, tls: ReachTls): string {
  const code = err.code ?? '';
  if (FOREIGN_CA.has(code)) return `its certificate is not signed by the cluster CA in ${tls.dir}/ca.crt (${code})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `its certificate does not name ${host} (issue it with "mfsctl ca issue NODE --host ${host}")`;
  if (code === 'CERT_HAS_EXPIRED') return 'its certificate has expired';
  if (code === 'CERT_NOT_YET_VALID') return 'its certificate is not valid yet (check the clocks)';
  if (/wrong version number|packet length too long|record layer failure|unknown protocol/i.test(err.message)) {
    return 'it speaks plaintext, not TLS (a node started with --insecure needs mfsctl --insecure)';
  }
  if (/alert (unknown ca|bad certificate|certificate required|decrypt error)/i.test(err.message)) {
    return `it refused this client's certificate ${tls.dir}/node.crt (not from its cluster CA?)`;
  }
  return `TLS failed: ${err.message.split('\n')[0]}`;
}

/** No SNI for an IP address (Node warns, DEP0123); the certificate is still checked against it. */
const sni = (host: string): { servername?: string } => (isIP(host) ? {} : { servername: host });

/** Does anything speak TLS at host:port? (no client certificate, no verification) */
async function speaksTls(host: string, port: number, deadline: number): Promise<boolean> {
  const w = await watch(tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...sni(host) }), true, deadline);
  // A TLS alert after the handshake (certificate required) proves TLS as well.
  return w.handshake || (w.outcome.kind === 'error' && /alert/i.test(w.outcome.err.message));
}

/**
 * Dial `address` as a gRPC client with these credentials would (`tls` null: plaintext) and return
 * why that cannot work, or null when the server answered HTTP/2 over that transport.
 */
export async function whyUnreachable(address: string, tls: ReachTls | null, timeoutMs = 5000): Promise<string | null> {
  const hp = splitHostPort(address);
  if (!hp) return `${address}: not HOST:PORT`;
  const { host, port } = hp;
  const deadline = Date.now() + timeoutMs;
  const cannot = (why: string): string => `cannot reach ${address}: ${why}`;
  let w: Watched;
  if (tls) {
    let sock: TLSSocket;
    try {
      sock = tlsConnect({ host, port, ca: tls.ca, cert: tls.cert, key: tls.key, ALPNProtocols: ['h2'], ...sni(host) });
    } catch (err) {
      return `${tls.dir}: ${(err as Error).message}`; // e.g. node.key does not match node.crt
    }
    w = await watch(sock, true, deadline);
  } else {
    w = await watch(netConnect({ host, port }), false, deadline);
  }
  const o = w.outcome;
  if (o.kind === 'http2') return null;
  if (!w.connected) {
    if (o.kind === 'error') return cannot(netErrorText(o.err) ?? o.err.message);
    return cannot(`no TCP connection within ${timeoutMs / 1000} s (a firewall dropping packets, or the host is down?)`);
  }
  if (tls) {
    if (o.kind === 'error') return cannot(tlsErrorText(o.err, host, tls));
    if (!w.handshake) return cannot(o.kind === 'timeout' ? 'no TLS handshake within the time limit' : 'it closed the connection during the TLS handshake');
    if (o.kind === 'closed') return cannot(`it closed the connection after the TLS handshake: it refused this client's certificate ${tls.dir}/node.crt (not from its cluster CA?)`);
    return cannot(o.kind === 'timeout' ? 'no HTTP/2 answer after the TLS handshake' : 'it answered, but not with HTTP/2 (not an mfsd?)');
  }
  if (o.kind === 'timeout') return cannot('no HTTP/2 answer within the time limit');
  if (await speaksTls(host, port, Math.max(deadline, Date.now() + 1000))) {
    return cannot('it speaks TLS, not plaintext (a TLS node needs mfsctl --dir DIR with a node certificate, not --insecure)');
  }
  if (o.kind === 'error') return cannot(netErrorText(o.err) ?? o.err.message);
  return cannot(o.kind === 'closed' ? 'it closed the connection without an HTTP/2 answer (not an mfsd?)' : 'it answered, but not with HTTP/2 (not an mfsd?)');
}
