// mfsd's "run" config section (mfsrun, server/run-service.ts): { "socket": PATH, "mount": PATH }.
// socket: the unix socket mfsrun connects to; default /run/omfs/mfsrun.<node>.sock (mfsrun finds
// the only one, or the one of --from N / OMFS_NODE), except on a node of a local omfs-cluster
// (STATE/../mfsd.json exists): STATE/../mfsrun.sock, so two such clusters on one machine, whose
// node numbers repeat, do not fight over /run/omfs (mfsrun --from N --cluster DIR looks there).
// mount: where THIS node's /mfs is, so paths a client gave relative to its mount land in this
// node's; default: the mount mfsd hosts (`mount.path`), else the omfs-cluster layout's
// (STATE/../mountpoint, written by `omfs-cluster up`), else /mfs.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';

/** null: the default (see the header). */
export interface RunSettings { socket: string | null; mount: string | null }

export const RUN_SOCKET_DIR = '/run/omfs';
export const defaultRunSocket = (node: number): string => join(RUN_SOCKET_DIR, `mfsrun.${node}.sock`);

/** Throws Error(message naming the field) for a bad section. */
export function parseRunSettings(raw: unknown): RunSettings {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) throw new Error('run: must be an object { socket, mount }');
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(o)) if (key !== 'socket' && key !== 'mount') throw new Error(`run: unknown field "${key}" (known: socket, mount)`);
  const path = (field: string, v: unknown): string => {
    if (typeof v !== 'string' || !isAbsolute(v)) throw new Error(`run.${field}: must be an absolute path, got ${JSON.stringify(v)}`);
    return normalize(v);
  };
  return {
    socket: o['socket'] === undefined ? null : path('socket', o['socket']),
    mount: o['mount'] === undefined ? null : path('mount', o['mount']),
  };
}

/** This node's mount (see the header), looked up on each use: omfs-cluster writes its file after mfsd starts. */
export function runMount(settings: RunSettings | undefined, hosted: string | undefined, stateDir: string): string {
  if (settings?.mount) return settings.mount;
  if (hosted) return hosted;
  try {
    const m = readFileSync(join(dirname(stateDir), 'mountpoint'), 'utf8').trim();
    if (isAbsolute(m)) return m;
  } catch {
    // not an omfs-cluster node
  }
  return '/mfs';
}

/** The socket this node's mfsd listens on (see the header). */
export function runSocket(settings: RunSettings | undefined, node: number, stateDir: string): string {
  if (settings?.socket) return settings.socket;
  const clusterNode = dirname(stateDir);
  if (existsSync(join(clusterNode, 'mfsd.json'))) return join(clusterNode, 'mfsrun.sock');
  return defaultRunSocket(node);
}
