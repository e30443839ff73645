#!/usr/bin/env node
// mfsctl: cluster administration. `ca init` makes the cluster CA, `ca issue NODE` a node's key
// and certificate, `identify HOST:PORT` asks a running mfsd who it is. Exit 2 for bad usage.
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { parseArgs } from 'node:util';
import { DEFAULT_TLS_DIR } from '../server/config.js';
import { TlsError, caInit, caIssue, readTlsMaterial } from '../server/tls.js';
import { loadNodeServiceConstructor, type IdentifyReply } from '../proto/node.js';
import { splitHostPort, whyUnreachable } from '../proto/reach.js';

type Command = 'ca init' | 'ca issue' | 'identify';
const SYNOPSIS: Record<Command, string> = {
  'ca init': 'mfsctl ca init [--dir DIR] [--force]',
  'ca issue': 'mfsctl ca issue NODE [--dir DIR] [--out DIR] [--host HOST|IP]... [--force]',
  'identify': 'mfsctl identify HOST:PORT [--dir DIR | --insecure]',
};
const OPTIONS_OF: Record<Command, string[]> = {
  'ca init': ['dir', 'force'],
  'ca issue': ['dir', 'out', 'host', 'force'],
  'identify': ['dir', 'insecure'],
};
const FOOTER = `DIR defaults to ${DEFAULT_TLS_DIR}. "ca issue" writes node.key, node.crt (and ca.crt) to --out (default DIR).`;
const usageOf = (cmds: Command[]): string => cmds.map((c, i) => `${i === 0 ? 'usage: ' : '       '}${SYNOPSIS[c]}`).join('\n');
const USAGE = `${usageOf(['ca init', 'ca issue', 'identify'])}\n${FOOTER}`;

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
  if (cmd !== 'ca') return ['ca init', 'ca issue', 'identify'];
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

async function main(argv: string[]): Promise<number> {
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
  const command: Command | undefined = cmd === 'identify' ? 'identify'
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
