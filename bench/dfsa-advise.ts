// dfsa-advise ADDRESS CERTDIR PROCESS: asks the mfsd at ADDRESS (its Advisor gRPC service, with
// the node certificate in CERTDIR) for the advice on PROCESS ("PID:STARTTIME") and prints it as
// JSON. Run inside a node's network namespace by bench/dfsa-cluster.ts: the test or benchmark
// process itself is in the host's, from where the nodes' addresses cannot be reached.
// Exit 1 with "ERRNO: message" on stderr when the call fails.
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { loadAdvisorConstructor, type AdviseReplyMsg } from '../proto/advisor.js';
import { statusToErrno } from '../proto/errno.js';
import { clientCredentials, readTlsMaterial } from '../server/tls.js';

async function main(): Promise<void> {
  const [address, certs, process_] = process.argv.slice(2);
  if (!address || !certs || !process_) throw new Error('usage: dfsa-advise ADDRESS CERTDIR PID:STARTTIME');
  const creds = clientCredentials(await readTlsMaterial({ ca: join(certs, 'ca.crt'), cert: join(certs, 'node.crt'), key: join(certs, 'node.key') }));
  const Advisor = loadAdvisorConstructor();
  const client = new Advisor(address, creds);
  try {
    const reply = await new Promise<AdviseReplyMsg>((resolve, reject) => {
      const advise = client['Advise'] as (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: AdviseReplyMsg) => void) => void;
      advise.call(client, { process: process_ }, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(statusToErrno(e)) : resolve(r)));
    });
    process.stdout.write(`${JSON.stringify(reply.advice)}\n`);
  } finally {
    client.close();
  }
}

main().catch((err: Error & { code?: string }) => {
  process.stderr.write(`${err.code ?? 'EIO'}: ${err.message}\n`);
  process.exitCode = 1;
});
