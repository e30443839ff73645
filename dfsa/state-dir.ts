// A node's DFSA tuning, persisted in its state directory (mfsd's stateDir), one file per
// table in openMosix's format: `mfscosts`, `overheads`, `decay`. A missing file means the
// defaults; a file that does not parse is an error naming the file and the field (the node does
// not silently fall back to defaults an admin did not choose).
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TableError, formatTable, parseTable, type TableSpec } from './tables.js';

/** The table's values from DIR, or its defaults when the file does not exist. */
export async function readTable(dir: string, spec: TableSpec): Promise<number[]> {
  const path = join(dir, spec.file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [...spec.defaults];
    throw err;
  }
  try {
    return parseTable(spec, text);
  } catch (err) {
    if (err instanceof TableError) throw new TableError(`${path}: ${err.message}`);
    throw err;
  }
}

/**
 * Writes the table atomically: a temporary file in the same directory, fsynced, renamed over the
 * old one, then the directory fsynced, so a crash leaves either the old table or the new one,
 * never a torn line the next start would refuse.
 */
export async function writeTable(dir: string, spec: TableSpec, values: readonly number[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, spec.file);
  const tmp = join(dir, `.${spec.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(formatTable(values));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
