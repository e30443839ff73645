// A node's DFSA tuning, persisted in its state directory (mfsd's stateDir), one file per
// table in openMosix's format: `mfscosts`, `overheads`, `decay`. A missing file means the
// defaults; a file that does not parse is an error naming the file and the field (the node does
// not silently fall back to defaults an admin did not choose).
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
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

/**
 * A table as a running daemon uses it: read on first use and again whenever its file changed
 * (inode, size or mtime: mfsctl set* renames a new file over the old one, so the inode changes
 * even within one mtime tick). One stat per use, no timer and no watcher. A file that stops
 * parsing keeps the last good values (the daemon does not fall back to defaults nobody chose);
 * `onError` hears about it once per change of the file.
 */
export class TableFile {
  private stamp = '';
  private current: number[];

  constructor(private readonly dir: string, private readonly spec: TableSpec, private readonly onError: (message: string) => void = () => {}) {
    this.current = [...spec.defaults];
  }

  values(): number[] {
    const path = join(this.dir, this.spec.file);
    let stamp: string;
    try {
      const st = statSync(path);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return this.current;
      stamp = 'absent';
    }
    if (stamp === this.stamp) return this.current;
    this.stamp = stamp;
    if (stamp === 'absent') {
      this.current = [...this.spec.defaults];
      return this.current;
    }
    try {
      this.current = parseTable(this.spec, readFileSync(path, 'utf8'));
    } catch (err) {
      this.onError(`${path}: ${(err as Error).message}; keeping ${formatTable(this.current).trim()}`);
    }
    return this.current;
  }
}
