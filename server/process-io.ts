// NodeService ReportProcessIo: per-process I/O statistics from a standalone /mfs mount on this
// node's machine (bin/mfs-mount.ts sends a batch about once a second), applied to the daemon's
// DFSA statistics (server/dfsa-node.ts `stats`) so the Advisor answers for those processes.
//
// Who may report: the statistics steer where processes are moved, and a process key is only
// meaningful on this machine, so only this node's own certificate (CN node<N>, which the mount
// holds) is taken; any other cluster certificate gets EACCES. A daemon serving --insecure has no
// certificates to tell callers apart: it takes reports from loopback only.
import type * as grpc from '@grpc/grpc-js';
import { checkProcessIo, type ProcessIoBatch } from '../dfsa/process-stats.js';
import { Errno, errnoToStatus } from '../proto/errno.js';
import type { ProcessIoReportMsg } from '../proto/node.js';

export interface ProcessIoOptions {
  self: number;
  tls: boolean;
  apply: (batch: ProcessIoBatch) => void;
}

/** A report as a batch, checked (EINVAL names what is wrong). */
export function batchOf(m: ProcessIoReportMsg): ProcessIoBatch {
  const batch: ProcessIoBatch = {
    exec: m.exec ?? [],
    io: (m.io ?? []).map((io) => ({ process: io.process, node: io.node, calls: io.calls, readKB: io.read_kb, writeKB: io.write_kb })),
    exit: m.exit ?? [],
  };
  checkProcessIo(batch);
  return batch;
}

const LOOPBACK = /^(ipv4:127\.|ipv6:\[::1\]|ipv6:\[::ffff:127\.|unix:)/;

function checkCaller(call: grpc.ServerUnaryCall<unknown, unknown>, o: ProcessIoOptions): void {
  if (!o.tls) {
    if (!LOOPBACK.test(call.getPeer())) throw new Errno('EACCES', `process I/O is taken from this machine only (peer ${call.getPeer()})`);
    return;
  }
  const cn = call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
  if (cn !== `node${o.self}`) {
    throw new Errno('EACCES', `process I/O is taken only from node${o.self}'s own certificate, not ${typeof cn === 'string' ? JSON.stringify(cn) : 'a peer without one'}`);
  }
}

/** The ReportProcessIo handler, to merge into the NodeService implementation. */
export function processIoHandlers(o: ProcessIoOptions): grpc.UntypedServiceImplementation {
  return {
    ReportProcessIo: (call: grpc.ServerUnaryCall<ProcessIoReportMsg, object>, cb: grpc.sendUnaryData<object>) => {
      try {
        checkCaller(call, o);
        o.apply(batchOf(call.request));
        cb(null, {});
      } catch (err) {
        cb(errnoToStatus(err));
      }
    },
  };
}
