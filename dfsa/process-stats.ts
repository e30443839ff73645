// Per-process I/O reported by an /mfs mount (fuse/mfs/io-accounting.ts), applied to a node's
// statistics (io-profile.ts). A batch holds what happened since the previous one, in this order:
// processes that exec'd (their statistics start again), the I/O done since (per process and target
// node: calls, KB read, KB written), processes that exited (forgotten). The mount hosted by mfsd
// applies its batches in process; a standalone mfs-mount sends them over NodeService
// ReportProcessIo (server/process-io.ts), which checks them with checkProcessIo first.
import { Errno } from '../proto/errno.js';
import type { IoStatistics } from './io-profile.js';
import type { ProcessIo, ProcessIoBatch } from '../proto/process-io.js';

export type { ProcessIo, ProcessIoBatch };

/** More entries than this in one batch is no mount of ours (one a second, per process and node touched). */
export const MAX_BATCH_ENTRIES = 100_000;

const KEY = /^[1-9]\d{0,9}:\d{1,20}$/;

/** Throws EINVAL, naming the first thing wrong, unless `b` is a batch a mount could have sent. */
export function checkProcessIo(b: ProcessIoBatch): void {
  const n = b.exec.length + b.io.length + b.exit.length;
  if (n > MAX_BATCH_ENTRIES) throw new Errno('EINVAL', `${n} entries in one batch, at most ${MAX_BATCH_ENTRIES}`);
  for (const k of [...b.exec, ...b.exit, ...b.io.map((io) => io.process)]) {
    if (!KEY.test(k)) throw new Errno('EINVAL', `process ${JSON.stringify(k.slice(0, 40))} is not PID:STARTTIME`);
  }
  for (const io of b.io) {
    if (!(Number.isInteger(io.node) && io.node >= 1 && io.node <= 65535)) throw new Errno('EINVAL', `node ${io.node} is not 1..65535`);
    if (![io.calls, io.readKB, io.writeKB].every((v) => Number.isFinite(v) && v >= 0)) {
      throw new Errno('EINVAL', `process ${io.process} node ${io.node}: calls and KB are finite, non-negative numbers`);
    }
  }
}

/** Applies a batch: execs, then the I/O, then exits. */
export function applyProcessIo(stats: IoStatistics, b: ProcessIoBatch): void {
  for (const k of b.exec) stats.exec(k);
  for (const io of b.io) stats.recordIo(io.process, io.node, { calls: io.calls, readKB: io.readKB, writeKB: io.writeKB });
  for (const k of b.exit) stats.exit(k);
}
