// mfsctl nomfs / mfs (openMosix's mosctl nomfs / mfs): refuse, and allow again, other nodes'
// access to this node's files, through the local mfsd's admin socket (server/admin-socket.ts,
// root-only). The state survives an mfsd restart (server/mfs-access.ts says why). Also the lines
// `mfsctl status` adds: this node's access state and the mounts its mfsd hosts.
import { parseArgs } from 'node:util';
import { AdminUnreachable, askAdmin, localAdminSocket, type AdminReply } from './admin-socket.js';

export const ACCESS_USAGE = `usage: mfsctl nomfs [--config PATH] [--socket PATH]
       mfsctl mfs [--config PATH] [--socket PATH]
nomfs refuses other nodes' access to this node's files: their new sessions and file calls get
EACCES, their open sessions end (a soft mount of theirs then fails EIO, a hard one waits); this
node's own /mfs keeps working. mfs allows them again. Kept across mfsd restarts. For root: the
admin socket is the mfsd's (config "adminSocket", default <stateDir>/mfsd.sock).`;

export class AccessUsageError extends Error {}

function socketOf(socket: string | undefined, config: string | undefined): string {
  return socket ?? localAdminSocket(config).path;
}

async function ask(path: string, req: Parameters<typeof askAdmin>[1]): Promise<AdminReply> {
  try {
    return await askAdmin(path, req, 10_000);
  } catch (err) {
    if (err instanceof AdminUnreachable && err.code === 'EACCES') throw new Error(`${err.message}: the admin socket is root's`);
    throw err;
  }
}

/** mfsctl nomfs | mfs: the exit code. */
export async function accessCommand(command: 'nomfs' | 'mfs', argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { config: { type: 'string' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    throw new AccessUsageError((err as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(`${ACCESS_USAGE}\n`);
    return 0;
  }
  const extra = parsed.positionals.filter((p) => p !== command);
  if (extra.length > 0) throw new AccessUsageError(`unexpected "${extra.join(' ')}"`);
  const path = socketOf(parsed.values.socket, parsed.values.config);
  const r = await ask(path, { op: command });
  if (!r.ok) throw new Error(`${command}: ${r.error}`);
  if (command === 'nomfs') {
    process.stdout.write(`mfsctl: nomfs: other nodes are refused access to this node's files (${String(r['ended'])} of their session streams ended); mfsctl mfs allows them again\n`);
  } else {
    process.stdout.write('mfsctl: mfs: other nodes may use this node\'s files again\n');
  }
  return 0;
}

/** The lines `mfsctl status` adds (best effort: a daemon without the socket, or not root, says so). */
export async function accessStatusLines(config: string | undefined): Promise<string> {
  let path: string;
  try {
    path = socketOf(undefined, config);
  } catch (err) {
    return `mfs access: unknown (${(err as Error).message})\n`;
  }
  let r: AdminReply;
  try {
    r = await ask(path, { op: 'status' });
  } catch (err) {
    return `mfs access: unknown (${(err as Error).message})\n`;
  }
  if (!r.ok) return `mfs access: unknown (${r.error})\n`;
  const since = r['nomfs'];
  const access = typeof since === 'string'
    ? `mfs access: nomfs: other nodes refused since ${since} (mfsctl mfs allows them again)`
    : 'mfs access: mfs: open to other nodes';
  const mounts = (r['mounts'] as Array<{ path: string }> | undefined) ?? [];
  return `${access}\nmounts hosted by mfsd: ${mounts.map((m) => m.path).join(', ') || 'none'}\n`;
}
