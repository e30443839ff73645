#!/usr/bin/env node
// mfsctl: cluster administration. `ca init` makes the cluster CA, `ca issue NODE` a node's key
// and certificate, `identify HOST:PORT` asks a running mfsd who it is; getcosts/setcosts,
// gettune/settune and getdecay/setdecay read and set this node's DFSA tables (mfscosts, overheads,
// decay) in its state directory, in openMosix's formats. Exit 2 for bad usage (bad values
// included), 1 for anything else that fails.
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { parseArgs } from 'node:util';
import { DEFAULT_STATE_DIR, DEFAULT_TLS_DIR } from '../server/config.js';
import { TableError } from '../dfsa/tables.js';
import { TUNE_TABLES, getTune, setTune, type TuneTable } from '../dfsa/tuning.js';
import { TlsError, caInit, caIssue, readTlsMaterial } from '../server/tls.js';
import { loadNodeServiceConstructor, type IdentifyReply } from '../proto/node.js';
import { splitHostPort, whyUnreachable } from '../proto/reach.js';

type TuneCommand = 'getcosts' | 'setcosts' | 'gettune' | 'settune' | 'getdecay' | 'setdecay';
type Command = 'ca init' | 'ca issue' | 'identify' | TuneCommand;
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
};
const FOOTER = `DIR defaults to ${DEFAULT_TLS_DIR}. "ca issue" writes node.key, node.crt (and ca.crt) to --out (default DIR).
--state-dir defaults to ${DEFAULT_STATE_DIR}; values are microseconds (decay: seconds and per mille); set* is for root.`;
const usageOf = (cmds: Command[]): string => cmds.map((c, i) => `${i === 0 ? 'usage: ' : '       '}${SYNOPSIS[c]}`).join('\n');
const ALL: Command[] = ['ca init', 'ca issue', 'identify', 'getcosts', 'setcosts', 'gettune', 'settune', 'getdecay', 'setdecay'];
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
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Which commands a (possibly unparsable) command line is about, for its usage lines. */
function commandsOf(words: string[]): Command[] {
  const [cmd, sub] = words.filter((w) => !w.startsWith('-'));
  if (cmd === 'identify') return ['identify'];
  if (cmd !== 'ca') return ALL;
  if (sub === 'init') return ['ca init'];
  if (sub === 'issue') return ['ca issue'];
  return ['ca init', 'ca issue'];
}

async function identify(address: string, dir: string, insecure: boolean): Promise<IdentifyReply> {
  const { host } = splitHostPort(address)!;
  const m = insecure ? null : await readTlsMaterial({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') });
  // grpc-js only says "Failed to connect before the deadline" after retrying for the whole deadline:
  // dial once ourselves first and say what is wrong (nothing listening, TLS against plaintext or
  // the reverse, a certificate from another CA) at once.
  const why = await whyUnreachable(address, m ? { ...m, dir } : null, 5000);
  if (why) throw new Error(why);
  // grpc-js gives TLS the target host as server name; for an IP address Node warns (DEP0123).
  // Send a name instead and check the certificate against the IP itself.
  const byIp = m !== null && isIP(host) !== 0;
  const creds = m
    ? grpc.credentials.createSsl(m.ca, m.key, m.cert, byIp ? { checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) } : {})
    : grpc.credentials.createInsecure();
  const Client = loadNodeServiceConstructor();
  const client = new Client(address, creds, byIp ? { 'grpc.ssl_target_name_override': 'omfs-node' } : {});
  try {
    return await new Promise<IdentifyReply>((resolve, reject) => {
      const call = client['Identify'] as (req: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: IdentifyReply) => void) => void;
      call.call(client, {}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(new Error(`${address}: ${e.details}`)) : resolve(r)));
    });
  } finally {
    client.close();
  }
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

async function main(argv: string[]): Promise<number> {
  // The command word: the first word that is neither an option nor an option's value.
  const first = argv.find((w, i) => !w.startsWith('-') && !(i > 0 && /^--(state-dir|dir|out|host)$/.test(argv[i - 1]!)));
  if (isTune(first)) return tune(first, argv);
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
    : cmd === 'ca' && (sub === 'init' || sub === 'issue') ? `ca ${sub}` : undefined;
  if (command === undefined) throw new UsageError(`bad command "${parsed.positionals.join(' ')}"`, usageOf(commandsOf(parsed.positionals)));
  const usage = usageOf([command]);
  const bad = (message: string): never => {
    throw new UsageError(message, usage);
  };
  for (const [name, value] of Object.entries(v)) {
    if (value !== undefined && !OPTIONS_OF[command].includes(name)) bad(`--${name} is not an option of "${command}"`);
  }
  const args = command === 'identify' ? [sub, ...rest] : rest;
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
