// The two cost tables of openMosix's DFSA, with its defaults and its file layouts.
//
// mfscosts, order MFSCOSTCONN_S MFSCOSTCONN_C MFSCOSTINKB_S MFSCOSTINKB_C MFSCOSTOUTKB_S
// MFSCOSTOUTKB_C. Why this order: it is the order of the #defines in include/hpc/mfscosts.h as
// quoted on the openMosix wiki, and their values (36 40 14 19 88 56) are exactly what the same
// page shows `cat /proc/hpc/admin/mfscosts` printing, so the file lists them in header order:
// connection, per KB in, per KB out, each server side then client side. "S = server, C =
// client" is the wiki author's reading; we keep it. "In" is taken as data coming into the
// calling process (a read) and "out" as data leaving it (a write): openMosix's meaning is
// not recorded anywhere we could find (omfs-reference.md section 4).
//
// overheads, order as the `mosctl gettune` listing (the wiki: "exactly in the same order of the
// /proc entry"): demand page home/remote, syscall home/remote, read basic home, per KB home,
// basic remote, per KB remote, the same four for writes, migration of an empty process, extra
// per dirty page. All values are microseconds.
import { formatTable, parseTable, type FieldSpec, type TableSpec } from './tables.js';

// No single cost in these tables is near a minute; a larger value is a typo (or a unit
// mistake), and refusing it keeps the advisor's arithmetic far from overflow.
const MAX_US = 60_000_000;
const US_WHY = 'one minute: a cost is microseconds per operation or KB';
const us = (name: string, what: string): FieldSpec => ({ name, what, min: 0, max: MAX_US, maxWhy: US_WHY });

export const MFSCOSTS: TableSpec = {
  file: 'mfscosts',
  fields: [
    us('MFSCOSTCONN_S', 'connection, server side'),
    us('MFSCOSTCONN_C', 'connection, client side'),
    us('MFSCOSTINKB_S', 'per KB in, server side'),
    us('MFSCOSTINKB_C', 'per KB in, client side'),
    us('MFSCOSTOUTKB_S', 'per KB out, server side'),
    us('MFSCOSTOUTKB_C', 'per KB out, client side'),
  ],
  defaults: [36, 40, 14, 19, 88, 56],
};

export const OVERHEADS: TableSpec = {
  file: 'overheads',
  fields: [
    us('PAGE_HOME', 'home-node overhead in processing a demand-page'),
    us('PAGE_REMOTE', 'remote overhead in processing a demand-page'),
    us('SYSCALL_HOME', 'home-node overhead in processing a system call'),
    us('SYSCALL_REMOTE', 'remote overhead in processing a system call'),
    us('READ_HOME', 'basic home-node overhead for reading data'),
    us('READ_HOME_KB', 'home-node overhead per 1KB read'),
    us('READ_REMOTE', 'basic remote overhead for reading data'),
    us('READ_REMOTE_KB', 'remote overhead per 1KB read'),
    us('WRITE_HOME', 'basic home-node overhead for writing data'),
    us('WRITE_HOME_KB', 'home-node overhead per 1KB written'),
    us('WRITE_REMOTE', 'basic remote overhead for writing data'),
    us('WRITE_REMOTE_KB', 'remote overhead per 1KB written'),
    us('MIGRATE_EMPTY', 'migration time of an empty process'),
    us('MIGRATE_PER_DIRTY_PAGE', 'extra migration time per dirty page'),
  ],
  defaults: [81, 150, 39, 38, 0, 11, 0, 18, 0, 18, 0, 12, 8141, 351],
};

/** mfscosts by name, µs. */
export interface MfsCosts {
  connS: number;
  connC: number;
  inKbS: number;
  inKbC: number;
  outKbS: number;
  outKbC: number;
}

/** The overheads the advisor uses, µs (the other twelve are kept and printed, not modelled). */
export interface MigrationOverheads {
  migrateEmpty: number;
  perDirtyPage: number;
}

export function costsOf(values: readonly number[]): MfsCosts {
  const [connS, connC, inKbS, inKbC, outKbS, outKbC] = values as [number, number, number, number, number, number];
  return { connS, connC, inKbS, inKbC, outKbS, outKbC };
}

export function costValues(c: MfsCosts): number[] {
  return [c.connS, c.connC, c.inKbS, c.inKbC, c.outKbS, c.outKbC];
}

export function migrationOf(overheads: readonly number[]): MigrationOverheads {
  return { migrateEmpty: overheads[12]!, perDirtyPage: overheads[13]! };
}

export const DEFAULT_COSTS: MfsCosts = costsOf(MFSCOSTS.defaults);
export const DEFAULT_MIGRATION: MigrationOverheads = migrationOf(OVERHEADS.defaults);

export const parseCosts = (text: string): MfsCosts => costsOf(parseTable(MFSCOSTS, text));
export const formatCosts = (c: MfsCosts): string => formatTable(costValues(c));
