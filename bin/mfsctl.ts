#!/usr/bin/env node
// mfsctl: cluster administration. `ca init` makes the cluster CA, `ca issue NODE` a node's key
// and certificate, `identify HOST:PORT` asks a running mfsd who it is. Exit 2 for bad usage.
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TLS_DIR } from '../server/config.js';
import { TlsError, caInit, caIssue, clientCredentials, readTlsMaterial } from '../server/tls.js';
import { loadNodeServiceConstructor, type IdentifyReply } from '../proto/node.js';

const USAGE = `usage: mfsctl ca init [--dir DIR] [--force]
       mfsctl ca issue NODE [--dir DIR] [--out DIR] [--host HOST|IP]... [--force]
       mfsctl identify HOST:PORT [--dir DIR | --insecure]
DIR defaults to ${DEFAULT_TLS_DIR}. "ca issue" writes node.key, node.crt (and ca.crt) to --out (default DIR).`;

class UsageError extends Error {}

// grpc-js hands an IP-address target to TLS as the server name, which Node 20 reports as
// DEP0123 on every `identify HOST:PORT`; the certificate check itself uses the IP SAN.
process.noDeprecation = true;

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
    },
  });
}

async function identify(address: string, dir: string, insecure: boolean): Promise<IdentifyReply> {
  const creds = insecure
    ? grpc.credentials.createInsecure()
    : clientCredentials(await readTlsMaterial({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') }));
  const Client = loadNodeServiceConstructor();
  const client = new Client(address, creds);
  try {
    return await new Promise<IdentifyReply>((resolve, reject) => {
      client.waitForReady(Date.now() + 5000, (err?: Error) => {
        // grpc-js says only "Failed to connect before the deadline": say what was tried and the
        // usual causes (nothing listening, or plaintext meeting TLS or the reverse).
        const tried = insecure
          ? 'plaintext: is mfsd running there without TLS? (a TLS node needs --dir, not --insecure)'
          : `mutual TLS with ${dir}: is mfsd running there with a certificate of this CA? (a node started with --insecure needs --insecure)`;
        if (err) return reject(new Error(`cannot reach ${address} within 5 s over ${tried}`));
        const call = client['Identify'] as (req: object, cb: (e: grpc.ServiceError | null, r: IdentifyReply) => void) => void;
        call.call(client, {}, (e, r) => (e ? reject(new Error(`${address}: ${e.details}`)) : resolve(r)));
      });
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
    throw new UsageError((err as Error).message);
  }
  const [cmd, sub, arg, ...extra] = parsed.positionals;
  const v = parsed.values;
  const dir = v.dir ?? DEFAULT_TLS_DIR;
  if (cmd === 'ca' && sub === 'init' && arg === undefined) {
    const r = await caInit({ dir, force: v.force ?? false });
    process.stdout.write(`mfsctl: cluster CA created: ${r.caCert} (key ${r.caKey}, keep it secret)\n`);
    return 0;
  }
  if (cmd === 'ca' && sub === 'issue' && arg !== undefined && extra.length === 0) {
    const r = await caIssue({ dir, node: arg, hosts: v.host ?? [], force: v.force ?? false, ...(v.out ? { outDir: v.out } : {}) });
    process.stdout.write(`mfsctl: node ${arg}: certificate ${r.cert}, key ${r.key}\n`);
    return 0;
  }
  if (cmd === 'identify' && sub !== undefined && arg === undefined) {
    const reply = await identify(sub, dir, v.insecure ?? false);
    process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
    return 0;
  }
  throw new UsageError(cmd === undefined ? 'missing command' : `bad command "${parsed.positionals.join(' ')}"`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`mfsctl: ${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`mfsctl: ${err instanceof TlsError || err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
