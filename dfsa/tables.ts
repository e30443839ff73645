// Tuning tables in openMosix's /proc/hpc/admin file format: whitespace-separated decimal
// integers on one line (the wiki's `cat /proc/hpc/admin/mfscosts` prints "36 40 14 19 88 56";
// writes accepted a single space or a tab between values). We print single spaces and a
// newline, and parse any run of spaces, tabs or newlines, so `echo "..." > file` and our own
// output both read back to the same values.

/** One value of a table: its name (as in the openMosix header or mosctl listing) and meaning. */
export interface FieldSpec {
  readonly name: string;
  readonly what: string;
  /** Smallest accepted value (inclusive). */
  readonly min: number;
  /** Largest accepted value (inclusive); why a larger one is refused is in `maxWhy`. */
  readonly max: number;
  readonly maxWhy: string;
}

export interface TableSpec {
  /** File name in the state directory, also used in messages ("mfscosts field 3 ..."). */
  readonly file: string;
  readonly fields: readonly FieldSpec[];
  readonly defaults: readonly number[];
}

/** A value the table refuses; the message names the table, the field and why. */
export class TableError extends Error {}

const DIGITS = /^[0-9]+$/;

/** Which field a value is, for messages: `mfscosts field 3 (MFSCOSTINKB_S, per KB in, server side)`. */
export function fieldLabel(spec: TableSpec, index: number): string {
  const f = spec.fields[index]!;
  return `${spec.file} field ${index + 1} (${f.name}, ${f.what})`;
}

/** One value: a whole decimal number within the field's bounds, or a TableError saying why not. */
export function parseField(spec: TableSpec, index: number, word: string): number {
  const f = spec.fields[index]!;
  const label = fieldLabel(spec, index);
  if (/^-[0-9.]/.test(word) && Number.isFinite(Number(word))) throw new TableError(`${label}: "${word}" is negative; the value must be at least ${f.min}`);
  if (!DIGITS.test(word)) {
    const n = Number(word);
    if (word !== '' && Number.isFinite(n)) throw new TableError(`${label}: "${word}" is not a whole number (values are integers, as in openMosix)`);
    throw new TableError(`${label}: "${word}" is not a number`);
  }
  // Compare as digits first: "99999999999999999999" must not round into range.
  const n = word.replace(/^0+(?=.)/, '').length > 15 ? Infinity : Number(word);
  if (n < f.min) throw new TableError(`${label}: ${word} is too small; the value must be at least ${f.min}`);
  if (n > f.max) throw new TableError(`${label}: ${word} is too large; at most ${f.max} (${f.maxWhy})`);
  return n;
}

/** Values from words (already split), all checked; wrong count first, then each field in order. */
export function parseWords(spec: TableSpec, words: readonly string[]): number[] {
  const n = spec.fields.length;
  if (words.length !== n) {
    const names = spec.fields.map((f) => f.name).join(' ');
    throw new TableError(`${spec.file}: ${words.length} value${words.length === 1 ? '' : 's'} given, ${n} expected (${names})`);
  }
  return words.map((w, i) => parseField(spec, i, w));
}

/** Values from the file's text (openMosix format: whitespace-separated numbers). */
export function parseTable(spec: TableSpec, text: string): number[] {
  const words = text.split(/[ \t\r\n]+/).filter((w) => w !== '');
  return parseWords(spec, words);
}

/** The file's text: values separated by one space, ending in a newline, as /proc printed them. */
export function formatTable(values: readonly number[]): string {
  return `${values.join(' ')}\n`;
}
