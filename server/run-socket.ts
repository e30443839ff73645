// mfsrun's door into its LOCAL mfsd: a unix socket anyone may connect to (mode 0666), because an
// unprivileged user cannot hold the node's TLS key. Who connected is learned from the kernel
// (SO_PEERCRED: uid, gid, pid; the groups from /proc/PID/status), never from what they send.
// Frames are proto/run.ts's: the first message says what the connection is for (start a run,
// migrate a job, list jobs).
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { encodeOutputFrame, inputReader, type RunInputMsg, type RunOutputMsg } from '../proto/run.js';
import { groupsOf, peerCred, type PeerCred } from '../sys/peercred.js';

export interface Caller extends PeerCred { groups: number[] }

export interface SocketConnection {
  caller: Caller;
  /** False when the client is not reading fast enough (then wait for whenDrained). */
  send(m: RunOutputMsg): boolean;
  whenDrained(cb: () => void): void;
  /** Stop reading the client (its input waits in the socket), and go on. */
  pauseInput(): void;
  resumeInput(): void;
  /** Send what is queued, then close. */
  close(): void;
}

export interface ConnectionHandler {
  /** A message from the client; the first one decides what the connection is. */
  message(m: RunInputMsg): void;
  /** The client closed or broke the connection. */
  gone(): void;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Connections at once (each a running mfsrun, or an mfsctl migrate): more are refused. */
const MAX_CONNECTIONS = 8192;

export interface RunSocketServer {
  /** Stop listening and drop every connection (their jobs are hung up by their handlers). */
  close(): Promise<void>;
}

/** Listens on `path` (its directory made 0755, a stale socket replaced) and hands each connection to `accept`. */
export async function listenRunSocket(path: string, accept: (c: SocketConnection) => ConnectionHandler, log: (line: string) => void): Promise<RunSocketServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    // nothing there
  }
  if (isSocket) {
    // A live one belongs to another mfsd on this machine: never take it over.
    if (await answers(path)) throw new Error(`${path} is served by another process`);
    unlinkSync(path);
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    if (sockets.size >= MAX_CONNECTIONS) {
      log(`run: more than ${MAX_CONNECTIONS} mfsrun connections at once; one refused`);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const fd = fdOf(socket);
    let cred: PeerCred;
    try {
      if (fd === undefined) throw new Error('no descriptor');
      cred = peerCred(fd);
    } catch (err) {
      log(`run: a connection whose peer cannot be identified was closed (${(err as Error).message})`);
      socket.destroy();
      return;
    }
    const conn: SocketConnection = {
      caller: { ...cred, groups: groupsOf(cred.pid, cred.uid, cred.gid) },
      send: (m) => (socket.destroyed ? true : socket.write(encodeOutputFrame(m))),
      whenDrained: (cb) => void socket.once('drain', cb),
      pauseInput: () => socket.pause(),
      resumeInput: () => socket.resume(),
      // A client that stopped reading (its input held back) would never see the end: once what
      // is queued is written, the connection goes.
      close: () => void socket.end(() => socket.destroy()),
    };
    const handler = accept(conn);
    const reader = inputReader();
    socket.on('data', (chunk: Buffer) => {
      let msgs: RunInputMsg[];
      try {
        msgs = reader.push(chunk);
      } catch (err) {
        log(`run: uid ${cred.uid} pid ${cred.pid} sent a bad frame (${(err as Error).message}); closed`);
        socket.destroy();
        return;
      }
      for (const m of msgs) handler.message(m);
    });
    let gone = false;
    const onGone = () => {
      if (gone) return;
      gone = true;
      handler.gone();
    };
    socket.on('end', onGone);
    socket.on('close', onGone);
    socket.on('error', onGone);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o666);
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
