// The three tunable tables of a node, as mfsctl (and later /mfs/.admin) reads and sets them:
// `costs` = mfscosts, `tune` = overheads (mosctl gettune), `decay` = setdecay's INTERVAL SLOW FAST.
// Each is one line of whitespace-separated integers in its file in the state directory.
import { MFSCOSTS, OVERHEADS } from './costs.js';
import { DECAY, decayOf } from './decay.js';
import { readTable, writeTable } from './state-dir.js';
import { formatTable, parseWords, type TableSpec } from './tables.js';

export type TuneTable = 'costs' | 'tune' | 'decay';

export const TUNE_TABLES: Record<TuneTable, TableSpec> = { costs: MFSCOSTS, tune: OVERHEADS, decay: DECAY };

/** Checks what a single field cannot (decay: fast <= slow). */
function checkWhole(which: TuneTable, values: number[]): number[] {
  if (which === 'decay') decayOf(values);
  return values;
}

/** The table's current values (its defaults if never set), in the file's format. */
export async function getTune(dir: string, which: TuneTable): Promise<string> {
  return formatTable(checkWhole(which, await readTable(dir, TUNE_TABLES[which])));
}

/**
 * Sets the table from words as typed: separate arguments or one quoted line (`"36 40 14 19 88
 * 56"`, as one would echo it into the /proc file). All values are checked before anything is
 * written; a TableError names the field and why.
 */
export async function setTune(dir: string, which: TuneTable, args: readonly string[]): Promise<number[]> {
  const words = args.flatMap((a) => a.split(/[ \t\r\n]+/)).filter((w) => w !== '');
  const values = checkWhole(which, parseWords(TUNE_TABLES[which], words));
  await writeTable(dir, TUNE_TABLES[which], values);
  return values;
}
