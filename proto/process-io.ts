// What an /mfs mount reports of each process's I/O to its node's daemon (fuse/mfs/io-accounting.ts
// makes the batches, dfsa/process-stats.ts applies them; a standalone mount sends them over
// NodeService ReportProcessIo). One definition for both sides, which may not import each other.

/** A process: "PID:STARTTIME" (start time in clock ticks since boot), so a reused pid is another. */
export type ProcessKey = string;

/** One process's I/O with one node since the last batch. */
export interface ProcessIo {
  process: ProcessKey;
  node: number;
  calls: number;
  readKB: number;
  writeKB: number;
}

/**
 * What happened since the last batch, to apply in this order: `exec` (clear those processes'
 * statistics), `io` (add), `exit` (forget).
 */
export interface ProcessIoBatch {
  exec: ProcessKey[];
  io: ProcessIo[];
  exit: ProcessKey[];
}
