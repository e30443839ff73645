#!/usr/bin/env node
// mount.mfs: the helper mount(8) runs for `mount -t mfs SPEC DIR` and for fstab lines of type mfs
// (installed as /sbin/mount.mfs, a link to bin/mount.mfs, which runs this). One daemon per node:
// when this node's mfsd answers on its admin socket ($OMFS_MFSD_SOCKET, else the one its config
// /etc/omfs/mfsd.json names, else /var/lib/omfs/mfsd.sock), the mount is handed to it, and mfsd
// mounts DIR in process with its own node number and certificate (map= still chooses the map, tls=
// is not used; node= naming another node keeps the standalone way). Otherwise it finds the map, this
// node's number and the certificates, starts mfs-mount detached (its own session, log under
// /run/omfs), waits until DIR is mounted and answers, and exits 0; it says so on stderr when a
// daemon was expected (a config or a socket names one) or with -v. `umount DIR` ends either mount.
// Exit codes as mount(8) documents for helpers: 1 for a bad command line or option (nothing is
// mounted), 32 when the mount fails.
import { readFileSync, existsSync, mkdirSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOwnNode, parseMap } from '../cluster/map-file.js';
import { answers, startDetached, StartError, stopProcess, unmountIfMounted } from '../fuse/mfs/detached.js';
import { AdminUnreachable, askAdmin, localAdminSocket } from '../server/admin-socket.js';
import { DEFAULT_MAPS, HELPER_USAGE, parseHelperArgs, type HelperArgs } from '../fuse/mfs/mount-helper-options.js';
import { MountArgsError } from '../fuse/mfs/mount-options.js';

const MFS_MOUNT_JS = fileURLToPath(new URL('./mfs-mount.js', import.meta.url));
const MFSD_CONFIG = '/etc/omfs/mfsd.json';
const LOG_DIR = process.env.OMFS_RUN_DIR ?? '/run/omfs';
const READY_PREFIX = 'mfs-mount: mounted ';
const READY_MS = 30_000;
const EXIT_USAGE = 1;
const EXIT_FAILURE = 32;

function fail(code: number, message: string): never {
  process.stderr.write(`mount.mfs: ${message}\n`);
  process.exit(code);
}

function mapPath(args: HelperArgs): string {
  if (args.map) return args.map;
  const found = DEFAULT_MAPS.find((p) => existsSync(p));
  if (!found) fail(EXIT_USAGE, `no map file: none of ${DEFAULT_MAPS.join(', ')} exists (or say map=PATH)`);
  return found;
}

/** node=N, else the map node with one of this host's addresses, else "node" of mfsd's config. */
function nodeNumber(args: HelperArgs, map: string): number {
  if (args.node !== undefined) return args.node;
  let why = '';
  try {
    const own = [...Object.values(networkInterfaces())].flatMap((list) => (list ?? []).map((a) => a.address));
    const found = findOwnNode(parseMap(readFileSync(map, 'utf8'), map), own, hostname());
    if (found !== undefined) return found;
    why = `no node of ${map} has an address of this host`;
  } catch (err) {
    why = err instanceof Error ? err.message : String(err);
  }
  try {
    const node: unknown = (JSON.parse(readFileSync(MFSD_CONFIG, 'utf8')) as { node?: unknown }).node;
    if (typeof node === 'number' && Number.isInteger(node) && node >= 1) return node;
  } catch {
    // no config: say why the map did not tell
  }
  fail(EXIT_USAGE, `which node is this? ${why}, and ${MFSD_CONFIG} has no "node"; say node=N`);
}

async function main(): Promise<void> {
  let args: HelperArgs;
  try {
    args = parseHelperArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof MountArgsError) fail(EXIT_USAGE, `${err.message}\n${HELPER_USAGE}`);
    throw err;
  }
  for (const opt of args.ignored) process.stderr.write(`mount.mfs: -s: ignoring unknown option "${opt}"\n`);
  if (await handedToMfsd(args)) return;
  const map = mapPath(args);
  const node = nodeNumber(args, map);
  const tls = (f: string): string => join(args.tlsDir, f);
  for (const f of ['ca.crt', 'node.crt', 'node.key']) {
    if (!existsSync(tls(f))) fail(EXIT_USAGE, `${tls(f)} is missing (certificates from "mfsctl ca issue node${node}"; or say tls=DIR)`);
  }
  const argv = [
    '--map', map, '--node', String(node), '--tls-ca', tls('ca.crt'), '--tls-cert', tls('node.crt'), '--tls-key', tls('node.key'),
    ...(args.mountOptions.length > 0 ? ['-o', args.mountOptions.join(',')] : []), args.mountPoint,
  ];
  if (args.verbose || args.fake) process.stderr.write(`mount.mfs: mfs-mount ${argv.join(' ')}\n`);
  if (args.fake) return;

  mkdirSync(LOG_DIR, { recursive: true, mode: 0o755 });
  // One log per mount point, named as systemd escapes paths: /mfs -> mfs.log, /a/b -> a-b.log.
  const log = join(LOG_DIR, `${args.mountPoint.replace(/^\/+/, '').replace(/\//g, '-') || 'root'}.log`);
  let pid: number;
  try {
    pid = await startDetached(MFS_MOUNT_JS, argv, log, READY_PREFIX, READY_MS);
  } catch (err) {
    if (err instanceof StartError) fail(EXIT_FAILURE, err.message);
    throw err;
  }
  // Mounted; it must also answer (the root lists from the map alone, without the network).
  if (!(await answers(args.mountPoint, 10_000))) {
    await stopProcess(pid, MFS_MOUNT_JS, 5_000);
    unmountIfMounted(args.mountPoint);
    fail(EXIT_FAILURE, `${args.mountPoint} was mounted but does not answer; log ${log}`);
  }
  if (args.verbose) process.stderr.write(`mount.mfs: ${args.spec} on ${args.mountPoint} as node ${node} (pid ${pid}, log ${log})\n`);
}

/**
 * Hands the mount to this node's running mfsd: true once DIR is mounted by it and answers. False
 * (after saying why when a daemon was expected) when none answers or it is not this node's to
 * serve; a mount the daemon tried and refused is a failure (exit 32 with its reason).
 */
async function handedToMfsd(args: HelperArgs): Promise<boolean> {
  let socket: { path: string; configured: boolean };
  try {
    socket = localAdminSocket();
  } catch (err) {
    process.stderr.write(`mount.mfs: ${(err as Error).message}; mounting without mfsd\n`);
    return false;
  }
  const expected = socket.configured || existsSync(socket.path);
  const standalone = (why: string): false => {
    if (expected || args.verbose) process.stderr.write(`mount.mfs: ${why}: starting a standalone mfs-mount instead\n`);
    return false;
  };
  const request = {
    op: 'mount' as const, path: args.mountPoint, options: args.mountOptions.join(','),
    ...(args.map ? { map: args.map } : {}), ...(args.node !== undefined ? { node: args.node } : {}),
  };
  if (args.fake) {
    process.stderr.write(`mount.mfs: would ask the mfsd on ${socket.path}: ${JSON.stringify(request)} (else mfs-mount)\n`);
    return false;
  }
  let reply;
  try {
    reply = await askAdmin(socket.path, request);
  } catch (err) {
    if (err instanceof AdminUnreachable) return standalone(err.message);
    fail(EXIT_FAILURE, `mfsd on ${socket.path}: ${(err as Error).message}`);
  }
  if (!reply.ok) {
    if (reply.fallback) return standalone(`mfsd on ${socket.path}: ${reply.error}`);
    fail(EXIT_FAILURE, `mfsd: ${reply.error}`);
  }
  // mfsd answered once its mount answered; this checks it as the caller sees it.
  if (!(await answers(args.mountPoint, 10_000))) {
    unmountIfMounted(args.mountPoint);
    fail(EXIT_FAILURE, `${args.mountPoint} was mounted by mfsd but does not answer`);
  }
  if (args.verbose) process.stderr.write(`mount.mfs: ${args.spec} on ${args.mountPoint}: handed to mfsd (${socket.path}): ${String(reply['line'] ?? '')}\n`);
  return true;
}

main().then(() => process.exit(0), (err: unknown) => fail(EXIT_FAILURE, err instanceof Error ? (err.stack ?? err.message) : String(err)));
