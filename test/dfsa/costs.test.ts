import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_COSTS, DEFAULT_MIGRATION, MFSCOSTS, OVERHEADS, formatCosts, parseCosts } from '../../dfsa/costs.js';
import { TableError, formatTable, parseTable } from '../../dfsa/tables.js';
import { readTable, writeTable } from '../../dfsa/state-dir.js';

describe('cost tables', () => {
  it("defaults are openMosix's: mfscosts 36 40 14 19 88 56, overheads with 8141 and 351", () => {
    expect(formatTable(MFSCOSTS.defaults)).toBe('36 40 14 19 88 56\n');
    expect(DEFAULT_COSTS).toEqual({ connS: 36, connC: 40, inKbS: 14, inKbC: 19, outKbS: 88, outKbC: 56 });
    expect(formatTable(OVERHEADS.defaults)).toBe('81 150 39 38 0 11 0 18 0 18 0 12 8141 351\n');
    expect(DEFAULT_MIGRATION).toEqual({ migrateEmpty: 8141, perDirtyPage: 351 });
  });

  it("parses openMosix's file format (spaces or tabs, as echo wrote it) and prints it back exactly", () => {
    expect(parseTable(OVERHEADS, '81 150 39 38 0 11 0 18 0 18 0 12 10000 351\n')).toEqual([81, 150, 39, 38, 0, 11, 0, 18, 0, 18, 0, 12, 10000, 351]);
    expect(parseCosts('36\t40 14\t19  88 56')).toEqual(DEFAULT_COSTS);
    for (const text of ['36 40 14 19 88 56\n', '0 0 0 0 0 60000000\n', '1 2 3 4 5 6\n']) {
      expect(formatCosts(parseCosts(text))).toBe(text);
    }
    expect(formatTable(parseTable(MFSCOSTS, '007 40 14 19 88 56'))).toBe('7 40 14 19 88 56\n');
  });

  it('refuses bad input with a message naming the field and why', () => {
    const refused = (text: string) => {
      try {
        parseTable(MFSCOSTS, text);
      } catch (err) {
        expect(err).toBeInstanceOf(TableError);
        return (err as Error).message;
      }
      throw new Error(`"${text}" was accepted`);
    };
    expect(refused('36 40 abc 19 88 56')).toBe('mfscosts field 3 (MFSCOSTINKB_S, per KB in, server side): "abc" is not a number');
    expect(refused('36 40 14 -19 88 56')).toBe('mfscosts field 4 (MFSCOSTINKB_C, per KB in, client side): "-19" is negative; the value must be at least 0');
    expect(refused('36 40 14 19 88.5 56')).toMatch(/^mfscosts field 5 \(MFSCOSTOUTKB_S, per KB out, server side\): "88.5" is not a whole number/);
    expect(refused('36 40 14 19 88 60000001')).toMatch(/^mfscosts field 6 \(MFSCOSTOUTKB_C, per KB out, client side\): 60000001 is too large; at most 60000000/);
    expect(refused('36 40 14 19 88 99999999999999999999999')).toMatch(/field 6 .* is too large/);
    expect(refused('36 40 14 19 88')).toBe('mfscosts: 5 values given, 6 expected (MFSCOSTCONN_S MFSCOSTCONN_C MFSCOSTINKB_S MFSCOSTINKB_C MFSCOSTOUTKB_S MFSCOSTOUTKB_C)');
    expect(refused('36 40 14 19 88 56 1')).toMatch(/^mfscosts: 7 values given, 6 expected/);
    expect(refused('')).toMatch(/^mfscosts: 0 values given, 6 expected/);
    expect(() => parseTable(OVERHEADS, '81 150 39 38 0 11 0 18 0 18 0 12 x 351')).toThrow('overheads field 13 (MIGRATE_EMPTY, migration time of an empty process): "x" is not a number');
  });
});

describe('persisted per node in its state directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'omfs-dfsa-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a missing file reads as the defaults', async () => {
    expect(await readTable(join(dir, 'none'), MFSCOSTS)).toEqual([...MFSCOSTS.defaults]);
  });

  it('written atomically in the file format and read back after a restart (a fresh reader)', async () => {
    const state = join(dir, 'state');
    await writeTable(state, MFSCOSTS, [1, 2, 3, 4, 5, 6]);
    await writeTable(state, OVERHEADS, [81, 150, 39, 38, 0, 11, 0, 18, 0, 18, 0, 12, 10000, 351]);
    expect(await readFile(join(state, 'mfscosts'), 'utf8')).toBe('1 2 3 4 5 6\n');
    expect(await readFile(join(state, 'overheads'), 'utf8')).toBe('81 150 39 38 0 11 0 18 0 18 0 12 10000 351\n');
    await writeTable(state, MFSCOSTS, [36, 40, 14, 19, 88, 57]);
    // No temporary file is left behind, only the two tables.
    expect((await readdir(state)).sort()).toEqual(['mfscosts', 'overheads']);
    expect(await readTable(state, MFSCOSTS)).toEqual([36, 40, 14, 19, 88, 57]);
    expect((await readTable(state, OVERHEADS))[12]).toBe(10000);
  });

  it('a corrupt file is an error naming the file and the field, not silently the defaults', async () => {
    await writeFile(join(dir, 'mfscosts'), '36 40 14 19 88 fifty\n');
    await expect(readTable(dir, MFSCOSTS)).rejects.toThrow(`${join(dir, 'mfscosts')}: mfscosts field 6 (MFSCOSTOUTKB_C, per KB out, client side): "fifty" is not a number`);
  });
});
