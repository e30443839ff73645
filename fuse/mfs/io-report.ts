// The ProcessIoSink of a standalone mfs-mount: each batch of io-accounting.ts goes to this node's
// own mfsd as one NodeService ReportProcessIo call (about once a second), with the mount's
// certificate, which names node<N>: the daemon takes reports from that certificate only.
import type { ChannelCredentials, Client, ServiceError } from '@grpc/grpc-js';
import { statusToErrno } from '../../proto/errno.js';
import { loadNodeServiceConstructor, type ProcessIoReportMsg } from '../../proto/node.js';
import type { ProcessIoBatch, ProcessIoSink } from './io-accounting.js';

/** How long one report may take: the next one comes a second later anyway. */
const REPORT_DEADLINE_MS = 5000;

export interface NodeReportSink extends ProcessIoSink {
  close(): void;
}

export function nodeReportSink(address: string, creds: ChannelCredentials): NodeReportSink {
  const Ctor = loadNodeServiceConstructor();
  const client = new Ctor(address, creds) as Client & Record<string, unknown>;
  const call = client['ReportProcessIo'] as (req: ProcessIoReportMsg, opts: { deadline: number }, cb: (err: ServiceError | null) => void) => void;
  return {
    report(b: ProcessIoBatch): Promise<void> {
      const msg: ProcessIoReportMsg = {
        exec: b.exec,
        io: b.io.map((io) => ({ process: io.process, node: io.node, calls: io.calls, read_kb: io.readKB, write_kb: io.writeKB })),
        exit: b.exit,
      };
      return new Promise((resolve, reject) => {
        call.call(client, msg, { deadline: Date.now() + REPORT_DEADLINE_MS }, (err) => (err ? reject(statusToErrno(err)) : resolve()));
      });
    },
    close: () => client.close(),
  };
}
