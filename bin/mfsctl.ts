#!/usr/bin/env node
// mfsctl: cluster administration. `ca init` makes the cluster CA, `ca issue NODE` a node's key
// and certificate, `identify HOST:PORT` asks a running mfsd who it is; getcosts/setcosts,
// gettune/settune and getdecay/setdecay read and set this node's DFSA tables (mfscosts, overheads,
// decay) in its state directory, in openMosix's formats. getload, whois and status ask the local
// mfsd (its address and certificate from its config, or --listen and --dir) for its load view and
// the map's nodes. Exit 2 for bad usage (bad values included), 1 for anything else that fails.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, DEFAULT_TLS_DIR } from '../server/config.js';
import { TableError } from '../dfsa/tables.js';
import { TUNE_TABLES, getTune, setTune, type TuneTable } from '../dfsa/tuning.js';
import { TlsError, caInit, caIssue, readTlsMaterial } from '../server/tls.js';
import {
  loadNodeServiceConstructor, type ClusterReplyMsg, type IdentifyReply, type LoadReplyMsg, type LoadReportMsg, type NodeStatusMsg,
} from '../proto/node.js';
import { splitHostPort } from '../proto/reach.js';
import { UsageError as LocalUsageError, columns, dial, localDaemon, unary, type Local } from './mfsctl-local.js';

type TuneCommand = 'getcosts' | 'setcosts' | 'gettune' | 'settune' | 'getdecay' | 'setdecay';
type LocalCommand = 'getload' | 'whois' | 'status';
type Command = 'ca init' | 'ca issue' | 'identify' | LocalCommand | TuneCommand;
const LOCAL: readonly string[] = ['getload', 'whois', 'status'];
const TUNE: Record<TuneCommand, { table: TuneTable; set: boolean }> = {
  getcosts: { table: 'costs', set: false },
  setcosts: { table: 'costs', set: true },
  gettune: { table: 'tune', set: false },
  settune: { table: 'tune', set: true },
  getdecay: { table: 'decay', set: false },
  setdecay: { table: 'decay', set: true },
};
const isTune = (w: string | undefined): w is TuneCommand => w !== undefined && Object.hasOwn(TUNE, w);
const SYNOPSIS: Record<Command, string> = {
  'ca init': 'mfsctl ca init [--dir DIR] [--force]',
  'ca issue': 'mfsctl ca issue NODE [--dir DIR] [--out DIR] [--host HOST|IP]... [--force]',
  'identify': 'mfsctl identify HOST:PORT [--dir DIR | --insecure]',
  'getload': 'mfsctl getload [N] [--config PATH] [--listen HOST:PORT] [--dir DIR | --insecure]',
  'whois': 'mfsctl whois N [--config PATH] [--listen HOST:PORT] [--dir DIR | --insecure]',
  'status': 'mfsctl status [--config PATH] [--listen HOST:PORT] [--dir DIR | --insecure]',
  'getcosts': 'mfsctl getcosts [--state-dir DIR]',
  'setcosts': 'mfsctl setcosts CONN_S CONN_C INKB_S INKB_C OUTKB_S OUTKB_C [--state-dir DIR]',
  'gettune': 'mfsctl gettune [--state-dir DIR]',
  'settune': 'mfsctl settune V1 ... V14 [--state-dir DIR]   (the 14 overheads, in gettune order)',
  'getdecay': 'mfsctl getdecay [--state-dir DIR]',
  'setdecay': 'mfsctl setdecay INTERVAL SLOW FAST [--state-dir DIR]',
};
const OPTIONS_OF: Record<Exclude<Command, TuneCommand>, string[]> = {
  'ca init': ['dir', 'force'],
  'ca issue': ['dir', 'out', 'host', 'force'],
  'identify': ['dir', 'insecure'],
  'getload': ['config', 'listen', 'dir', 'insecure'],
  'whois': ['config', 'listen', 'dir', 'insecure'],
  'status': ['config', 'listen', 'dir', 'insecure'],
};
const FOOTER = `DIR defaults to ${DEFAULT_TLS_DIR}. "ca issue" writes node.key, node.crt (and ca.crt) to --out (default DIR).
--state-dir defaults to ${DEFAULT_STATE_DIR}; values are microseconds (decay: seconds and per mille); set* is for root.
getload, whois and status ask the local mfsd: its address and certificate come from its config
(--config, default ${DEFAULT_CONFIG_PATH}), --listen and --dir override them.
Also: mfsctl calibrate [NODE...] (measure and write mfscosts), mfsctl mon [--once] (live monitor);
each says its options with --help.`;
const usageOf = (cmds: Command[]): string => cmds.map((c, i) => `${i === 0 ? 'usage: ' : '       '}${SYNOPSIS[c]}`).join('\n');
const ALL: Command[] = ['ca init', 'ca issue', 'identify', 'getload', 'whois', 'status', 'getcosts', 'setcosts', 'gettune', 'settune', 'getdecay', 'setdecay'];
const USAGE = `${usageOf(ALL)}\n${FOOTER}`;

/** Bad command line: the message, then the usage of the commands it concerns. */
class UsageError extends Error {
  constructor(message: string, readonly usage: string = USAGE) {
    super(message);
  }
}

function flags(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: 'string' },
      out: { type: 'string' },
      host: { type: 'string', multiple: true },
      force: { type: 'boolean' },
      insecure: { type: 'boolean' },
      config: { type: 'string' },
      listen: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Which commands a (possibly unparsable) command line is about, for its usage lines. */
function commandsOf(words: string[]): Command[] {
  const [cmd, sub] = words.filter((w) => !w.startsWith('-'));
  if (cmd === 'identify') return ['identify'];
  if (cmd !== undefined && LOCAL.includes(cmd)) return [cmd as LocalCommand];
  if (cmd !== 'ca') return ALL;
  if (sub === 'init') return ['ca init'];
  if (sub === 'issue') return ['ca issue'];
  return ['ca init', 'ca issue'];
}

/** Where a daemon is and the certificate to show it (null: insecure). */
type Target = Pick<Local, 'address' | 'tls'>;

async function identify(address: string, dir: string, insecure: boolean): Promise<IdentifyReply> {
  const tls = insecure ? null : { ...(await readTlsMaterial({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') })), dir };
  return call<IdentifyReply>({ address, tls }, 'Identify', {});
}

/** One NodeService call, after a dial of our own that says at once what is wrong if it fails (mfsctl-local.ts dial). */
async function call<T>(target: Target, method: string, req: object, deadlineMs = 5000): Promise<T> {
  const client = await dial(target.address, target.tls, loadNodeServiceConstructor());
  try {
    return await unary<T>(client, method, req, deadlineMs).catch((e: Error) => {
      throw new Error(`${target.address}: ${e.message}`);
    });
  } finally {
    client.close();
  }
}

/** The local mfsd as its config describes it, --listen, --dir and --insecure overriding (mfsctl-local.ts). */
async function localTarget(v: { config?: string; listen?: string; dir?: string; insecure?: boolean }): Promise<Target> {
  try {
    return await localDaemon(v);
  } catch (err) {
    if (err instanceof LocalUsageError) throw new UsageError(err.message, usageOf(['getload', 'whois', 'status']));
    throw err;
  }
}

function nodeArg(word: string | undefined, command: string): number {
  const n = word !== undefined && /^\d+$/.test(word) ? Number(word) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new UsageError(`${command}: "${word}" is not a node number (1..65535)`, usageOf([command as Command]));
  return n;
}

const age = (ms: string | number): string => `${(Number(ms) / 1000).toFixed(1)} s`;

function loadTable(self: number, reports: LoadReportMsg[]): string {
  const rows = [['node', 'load', 'cpus', 'speed', 'free MB', 'read KB/s', 'write KB/s', 'age']];
  for (const r of reports) {
    rows.push([`${r.node}${r.node === self ? '*' : ''}`, r.load.toFixed(2), String(r.cpus), r.speed.toFixed(2),
      String(Math.round(Number(r.free_mem_kb) / 1024)), r.read_kbps.toFixed(1), r.write_kbps.toFixed(1), age(r.age_ms)]);
  }
  return columns(rows);
}

const describeExports = (id: IdentifyReply | null | undefined): string =>
  id ? id.exports.map((e) => [e.path, e.dfsa ? `dfsa=${e.dfsa}` : '', e.read_only ? 'ro' : '', e.root_squash ? 'root_squash' : ''].filter(Boolean).join(':')).join(', ') : '-';

function whoisText(n: NodeStatusMsg, self: number): string {
  const lines = [`node ${n.node}${n.node === self ? ' (this node)' : ''}: ${n.up ? 'up' : `down (${n.error})`}`];
  lines.push(`  addresses  ${n.addresses.join(', ') || '- (not in the map)'}`);
  const id = n.identity;
  if (id && n.up) {
    lines.push(`  hostname   ${id.hostname}`, `  version    ${id.version}`, `  tls        ${id.tls ? 'yes' : 'no'}`);
    lines.push(`  exports    ${describeExports(id)}`);
    lines.push(`  sessions   ${id.health.sessions} live, ${id.health.sessions_held} held`);
    lines.push(`  cpus       ${id.health.cpu_count}, load average ${id.health.load_average.map((l) => l.toFixed(2)).join(' ')}`);
    lines.push(`  uptime     ${id.health.uptime_seconds.toFixed(0)} s`);
  }
  return lines.join('\n') + '\n';
}

async function accessCommandOrUsage(command: 'nomfs' | 'mfs', argv: string[]): Promise<number> {
  const { AccessUsageError, ACCESS_USAGE, accessCommand } = await import('../server/mfsctl-access.js');
  try {
    return await accessCommand(command, argv);
  } catch (err) {
    if (err instanceof AccessUsageError) throw new UsageError(err.message, ACCESS_USAGE);
    throw err;
  }
}

async function local(command: LocalCommand, args: string[], target: Target, configPath?: string): Promise<number> {
  const usage = usageOf([command]);
  if (command === 'getload') {
    if (args.length > 1) throw new UsageError(`unexpected "${args.slice(1).join(' ')}"`, usage);
    const node = args[0] === undefined ? 0 : nodeArg(args[0], command);
    const r = await call<LoadReplyMsg>(target, 'Load', { node, local_only: false });
    process.stdout.write(loadTable(r.self, r.reports));
    if (r.asked_directly) process.stdout.write(`(node ${node} was not in node ${r.self}'s window: asked directly)\n`);
    return 0;
  }
  if (command === 'whois') {
    if (args.length !== 1) throw new UsageError(args.length === 0 ? 'whois needs N, a node number' : `unexpected "${args.slice(1).join(' ')}"`, usage);
    const r = await call<ClusterReplyMsg>(target, 'Cluster', { node: nodeArg(args[0], command) });
    process.stdout.write(whoisText(r.nodes[0]!, r.self));
    return 0;
  }
  if (args.length > 0) throw new UsageError(`unexpected "${args.join(' ')}"`, usage);
  const [cluster, loads] = await Promise.all([
    call<ClusterReplyMsg>(target, 'Cluster', { node: 0 }, 10_000),
    call<LoadReplyMsg>(target, 'Load', { node: 0, local_only: true }),
  ]);
  const up = cluster.nodes.filter((n) => n.up).length;
  process.stdout.write(`node ${cluster.self}, map ${cluster.map || '(none: a node alone)'}: ${cluster.nodes.length} node(s), ${up} up\n`);
  const rows = [['node', 'state', 'address', 'sessions', 'exports']];
  for (const n of cluster.nodes) {
    rows.push([`${n.node}${n.node === cluster.self ? '*' : ''}`, n.up ? 'up' : 'down', n.addresses[0] ?? '-',
      n.up && n.identity ? String(n.identity.health.sessions) : '-', n.up ? describeExports(n.identity) : n.error]);
  }
  process.stdout.write(columns(rows));
  process.stdout.write(await (await import('../server/mfsctl-access.js')).accessStatusLines(configPath));
  process.stdout.write(`\nloads known to node ${loads.self}:\n${loadTable(loads.self, loads.reports)}`);
  return 0;
}

/**
 * getcosts ... setdecay. Parsed by hand, not by parseArgs: a negative value ("-5") must reach the
 * table's check and be refused as negative, not taken for an unknown option.
 */
async function tune(command: TuneCommand, argv: string[]): Promise<number> {
  const usage = usageOf([command]);
  let dir = DEFAULT_STATE_DIR;
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state-dir' || a.startsWith('--state-dir=')) {
      const d = a === '--state-dir' ? argv[++i] : a.slice('--state-dir='.length);
      if (d === undefined || d === '') throw new UsageError("Option '--state-dir <value>' argument missing", usage);
      dir = d;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${usage}\n`);
      return 0;
    } else if (a.startsWith('-') && !/^-[0-9.]/.test(a)) {
      throw new UsageError(`${a.replace(/=.*/, '')} is not an option of "${command}"`, usage);
    } else {
      values.push(a);
    }
  }
  values.splice(values.indexOf(command), 1);
  const { table, set } = TUNE[command];
  if (!set) {
    if (values.length > 0) throw new UsageError(`unexpected "${values.join(' ')}"`, usage);
    process.stdout.write(await getTune(dir, table));
    return 0;
  }
  // Like the root-writable /proc/hpc/admin files these tables replace.
  if (process.getuid?.() !== 0) throw new Error(`${command}: EPERM: only root may change the ${TUNE_TABLES[table].file} table`);
  try {
    await setTune(dir, table, values);
  } catch (err) {
    if (err instanceof TableError) throw new UsageError(err.message, usage);
    throw err;
  }
  return 0;
}

const MIGRATE_USAGE = `usage: mfsctl migrate PID|JOB NODE|home|balance [--from N] [--socket PATH]
       mfsctl jobs [--from N] [--socket PATH]
migrate RESTARTS a job started with mfsrun --restartable on another node: SIGTERM, then the same
command, directory and environment there (not a live migration). PID: the mfsrun's pid on this
node or the job's pid where it runs; balance: where the advisor ranks it cheapest. Root may move
any job, a user only their own. jobs lists the mfsrun jobs whose home is this node.`;

/** mfsctl migrate / jobs: over mfsrun's unix socket to the local mfsd (server/run-client.ts). */
async function runJobsCommand(command: 'migrate' | 'jobs', argv: string[]): Promise<number> {
  const jobsFlags = (args: string[]) =>
    parseArgs({ args, allowPositionals: true, strict: true, options: { from: { type: 'string' }, socket: { type: 'string' }, help: { type: 'boolean' } } });
  let parsed: ReturnType<typeof jobsFlags>;
  try {
    parsed = jobsFlags(argv);
  } catch (err) {
    throw new UsageError((err as Error).message, MIGRATE_USAGE);
  }
  if (parsed.values.help) {
    process.stdout.write(`${MIGRATE_USAGE}\n`);
    return 0;
  }
  const [, who, to, ...extra] = parsed.positionals;
  const fromRaw = parsed.values.from ?? process.env['OMFS_NODE'];
  const from = fromRaw === undefined ? undefined : Number(fromRaw);
  if (from !== undefined && !(Number.isInteger(from) && from >= 1 && from <= 65535)) throw new UsageError(`--from: a node number, got "${fromRaw}"`, MIGRATE_USAGE);
  const { askRun, findRunSocket } = await import('../server/run-client.js');
  const socket = findRunSocket(parsed.values.socket ?? process.env['OMFS_RUN_SOCKET'], from);
  if (command === 'jobs') {
    if (who !== undefined) throw new UsageError(`unexpected "${parsed.positionals.slice(1).join(' ')}"`, MIGRATE_USAGE);
    const r = await askRun(socket, { what: 'jobs', jobs: {} });
    if (r.what !== 'jobs') throw new Error(r.what === 'failed' ? r.failed.message : 'unexpected answer');
    process.stdout.write('JOB\tPID\tNODE\tHOME\tMFSRUN\tUID\tRESTARTABLE\tLOCKED\tRESTARTS\tCOMMAND\n');
    for (const j of r.jobs.jobs) {
      process.stdout.write(`${j.job}\t${j.pid}\t${j.node}\t${j.home}\t${j.client_pid}\t${j.uid}\t${j.restartable}\t${j.locked}\t${j.restarts}\t${j.argv.map((a) => a.toString()).join(' ')}\n`);
    }
    return 0;
  }
  if (who === undefined || to === undefined || extra.length > 0) throw new UsageError('migrate needs PID (or JOB) and NODE, home or balance', MIGRATE_USAGE);
  const isPid = /^\d+$/.test(who);
  const r = await askRun(socket, { what: 'migrate', migrate: { pid: isPid ? Number(who) : 0, job: isPid ? '' : who, to } });
  if (r.what === 'failed') {
    process.stderr.write(`mfsctl: migrate: ${r.failed.message}\n`);
    return 1;
  }
  process.stdout.write(`mfsctl: ${r.what === 'migrated' ? r.migrated : 'unexpected answer'}\n`);
  return r.what === 'migrated' ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  // The command word: the first word that is neither an option nor an option's value.
  const first = argv.find((w, i) => !w.startsWith('-') && !(i > 0 && /^--(state-dir|dir|out|host|config|listen)$/.test(argv[i - 1]!)));
  if (isTune(first)) return tune(first, argv);
  // Their own modules, with their own options and usage (bin/mfsctl-calibrate.ts, bin/mfsctl-mon.ts).
  if (first === 'calibrate') return (await import('./mfsctl-calibrate.js')).calibrateCommand(argv);
  if (first === 'mon') return (await import('./mfsctl-mon.js')).monCommand(argv);
  // nomfs / mfs: over the local mfsd's admin socket (server/mfsctl-access.ts).
  if (first === 'nomfs' || first === 'mfs') return accessCommandOrUsage(first, argv);
  if (first === 'migrate' || first === 'jobs') return runJobsCommand(first, argv);
  let parsed: ReturnType<typeof flags>;
  try {
    parsed = flags(argv);
  } catch (err) {
    throw new UsageError((err as Error).message, usageOf(commandsOf(argv)));
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [cmd, sub, ...rest] = parsed.positionals;
  if (cmd === undefined) throw new UsageError('missing command');
  const command: Exclude<Command, TuneCommand> | undefined = cmd === 'identify' ? 'identify'
    : LOCAL.includes(cmd) ? cmd as LocalCommand
    : cmd === 'ca' && (sub === 'init' || sub === 'issue') ? `ca ${sub}` : undefined;
  if (command === undefined) throw new UsageError(`bad command "${parsed.positionals.join(' ')}"`, usageOf(commandsOf(parsed.positionals)));
  const usage = usageOf([command]);
  const bad = (message: string): never => {
    throw new UsageError(message, usage);
  };
  for (const [name, value] of Object.entries(v)) {
    if (value !== undefined && !OPTIONS_OF[command].includes(name)) bad(`--${name} is not an option of "${command}"`);
  }
  const args = command === 'identify' || LOCAL.includes(command) ? [sub, ...rest].filter((a) => a !== undefined) : rest;
  if (command === 'getload' || command === 'whois' || command === 'status') {
    if (v.dir !== undefined && v.insecure) bad('--dir and --insecure exclude each other');
    return local(command, args, await localTarget(v), v.config);
  }
  const dir = v.dir ?? DEFAULT_TLS_DIR;

  if (command === 'ca init') {
    if (args.length > 0) bad(`unexpected "${args.join(' ')}"`);
    const r = await caInit({ dir, force: v.force ?? false });
    process.stdout.write(`mfsctl: cluster CA created: ${r.caCert} (key ${r.caKey}, keep it secret)\n`);
    return 0;
  }
  if (command === 'ca issue') {
    const [node, ...extra] = args;
    if (node === undefined) bad('ca issue needs NODE, the name of the node to certify');
    if (extra.length > 0) bad(`unexpected "${extra.join(' ')}"`);
    const r = await caIssue({ dir, node: node!, hosts: v.host ?? [], force: v.force ?? false, ...(v.out ? { outDir: v.out } : {}) });
    process.stdout.write(`mfsctl: node ${node}: certificate ${r.cert}, key ${r.key}\n`);
    return 0;
  }
  const [address, ...extra] = args;
  if (address === undefined) bad('identify needs HOST:PORT, the address of a node');
  if (extra.length > 0) bad(`unexpected "${extra.join(' ')}"`);
  if (!splitHostPort(address!)) bad(`"${address}" is not HOST:PORT (or [IPv6]:PORT)`);
  if (v.dir !== undefined && v.insecure) bad('--dir and --insecure exclude each other');
  const reply = await identify(address!, dir, v.insecure ?? false);
  process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`mfsctl: ${err.message}\n${err.usage}\n`);
      process.exit(2);
    }
    process.stderr.write(`mfsctl: ${err instanceof TlsError || err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
