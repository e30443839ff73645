// The client end of mfsrun's unix socket (server/run-socket.ts), for bin/mfsrun.ts and
// `mfsctl migrate`: which socket is the local mfsd's, and a connection exchanging proto/run.ts frames.
import { existsSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { encodeInputFrame, outputReader, type RunInputMsg, type RunOutputMsg } from '../proto/run.js';
import { RUN_SOCKET_DIR, defaultRunSocket } from './run-config.js';

/** omfs-cluster's default DIR (bin/omfs-cluster.ts). */
export const DEFAULT_CLUSTER_DIR = '/var/lib/omfs-cluster';

/**
 * The socket: `explicit` (--socket, OMFS_RUN_SOCKET), else node `from`'s (--from N, OMFS_NODE: in
 * `clusterDir` when it is a node of that local omfs-cluster, else /run/omfs's), else the only
 * mfsrun socket in /run/omfs. Throws with a message saying what to pass.
 */
export function findRunSocket(explicit: string | undefined, from: number | undefined, clusterDir = DEFAULT_CLUSTER_DIR): string {
  if (explicit) return explicit;
  if (from !== undefined) {
    // A node of a local omfs-cluster has its socket in its folder (server/run-config.ts).
    const inCluster = join(clusterDir, `node${from}`, 'mfsrun.sock');
    return existsSync(inCluster) ? inCluster : defaultRunSocket(from);
  }
  let found: string[] = [];
  try {
    found = readdirSync(RUN_SOCKET_DIR).filter((f) => /^mfsrun\.\d+\.sock$/.test(f));
  } catch {
    // no directory: no mfsd here
  }
  if (found.length === 1) return join(RUN_SOCKET_DIR, found[0]!);
  if (found.length === 0) throw new Error(`no mfsd on this machine (no ${RUN_SOCKET_DIR}/mfsrun.<node>.sock); is mfsd running?`);
  throw new Error(`several nodes on this machine (${found.join(', ')}): say which one you are on with --from N or OMFS_NODE=N`);
}

export interface RunConnection {
  /** False when mfsd is not taking input as fast: wait for whenDrained. */
  send(m: RunInputMsg): boolean;
  whenDrained(cb: () => void): void;
  close(): void;
  /** Stop reading mfsd's output (while the caller's own output is behind), and go on. */
  pause(): void;
  resume(): void;
}

/** Connects; `message` gets each frame, `closed` once (with an error when the connection failed or broke). */
export function connectRun(path: string, on: { message(m: RunOutputMsg): void; closed(err?: Error): void }): Promise<RunConnection> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(path);
    const reader = outputReader();
    let open = false;
    let closed = false;
    const close = (err?: Error) => {
      if (closed) return;
      closed = true;
      on.closed(err);
    };
    socket.once('connect', () => {
      open = true;
      resolve({
        send: (m) => socket.write(encodeInputFrame(m)),
        whenDrained: (cb) => void socket.once('drain', cb),
        close: () => socket.end(),
        pause: () => socket.pause(),
        resume: () => socket.resume(),
      });
    });
    socket.on('data', (chunk: Buffer) => {
      let msgs: RunOutputMsg[];
      try {
        msgs = reader.push(chunk);
      } catch (err) {
        socket.destroy();
        close(err as Error);
        return;
      }
      for (const m of msgs) on.message(m);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!open) reject(new Error(`cannot reach mfsd at ${path}: ${err.code ?? err.message}`));
      else close(err);
    });
    socket.on('close', () => {
      if (open) close();
    });
  });
}

/** One request, one answer (migrate, jobs). */
export function askRun(path: string, m: RunInputMsg): Promise<RunOutputMsg> {
  return new Promise((resolve, reject) => {
    let answered = false;
    connectRun(path, {
      message: (out) => {
        answered = true;
        resolve(out);
      },
      closed: (err) => {
        if (!answered) reject(err ?? new Error('mfsd closed the connection without an answer'));
      },
    }).then((c) => c.send(m), reject);
  });
}
