// Data paths the tree tests do not reach: offsets past 4 GiB (64-bit fields on the wire), sparse files,
// several processes reading and writing at once, and O_APPEND from two writers.
import { open, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { must, seededBytes, sha256 } from './tools.js';

const test = passthroughTest();
const GIB = 1024 * 1_048_576;
const scratch: string[] = [];
afterEach(async () => {
  for (const dir of scratch.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('large and sparse files', () => {
  test('writes and reads past 4 GiB land at the right offset; the hole reads as zeros', async ({ pt }) => {
    const data = seededBytes(21, 3 * 4096 + 17);
    const where = 5 * GIB + 12_345; // beyond any 32-bit offset, not page aligned
    const fh = await open(join(pt.mnt, 'sparse'), 'w+');
    try {
      await fh.write(data, 0, data.length, where);
      const back = Buffer.alloc(data.length);
      await fh.read(back, 0, back.length, where);
      expect(back.equals(data)).toBe(true);
      const hole = Buffer.alloc(65_536, 1);
      await fh.read(hole, 0, hole.length, 4 * GIB);
      expect(hole.equals(Buffer.alloc(65_536))).toBe(true);
    } finally {
      await fh.close();
    }
    expect((await stat(join(pt.mnt, 'sparse'))).size).toBe(where + data.length);
    expect((await stat(join(pt.source, 'sparse'))).size).toBe(where + data.length);
    // The backing file holds the bytes at that very offset, and stays sparse (few blocks allocated).
    const raw = await must('dd if="$1" bs=4096 skip=$2 count=4 status=none | sha256sum', [
      join(pt.source, 'sparse'),
      String(Math.floor(where / 4096)),
    ]);
    const tail = Buffer.alloc((where % 4096) + data.length); // from the page start to EOF
    data.copy(tail, where % 4096);
    expect(raw.split(' ')[0]).toBe(sha256(tail));
    expect((await stat(join(pt.source, 'sparse'))).blocks).toBeLessThan(1024);
    await must('truncate -s 7G "$1"', [join(pt.mnt, 'sparse')]);
    expect((await stat(join(pt.source, 'sparse'))).size).toBe(7 * GIB);
  });
});

describe('concurrency', () => {
  test('four readers at random offsets of a file not in memory get the backing file\'s bytes', async ({ pt }) => {
    // Behind the mount, then out of the page cache: each READ waits on the disk, which is when the
    // daemon hands READs to its read workers (they answer the kernel themselves).
    const size = 32 * 1_048_576;
    const bytes = seededBytes(77, size);
    await writeFile(join(pt.source, 'cold'), bytes);
    await must('sync; echo 1 > /proc/sys/vm/drop_caches');
    let seed = 4242;
    const offsets = Array.from({ length: 2000 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) % (size / 4096)) * 4096);
    const wrong: number[] = [];
    await Promise.all([0, 1, 2, 3].map(async (k) => {
      const fh = await open(join(pt.mnt, 'cold'), 'r');
      const buf = Buffer.alloc(4096);
      try {
        for (let i = k; i < offsets.length; i += 4) {
          const { bytesRead } = await fh.read(buf, 0, 4096, offsets[i]!);
          if (bytesRead !== 4096 || !buf.equals(bytes.subarray(offsets[i]!, offsets[i]! + 4096))) wrong.push(offsets[i]!);
        }
      } finally {
        await fh.close();
      }
    }));
    expect(wrong).toEqual([]);
  });

  test('eight processes writing and reading different files at once all get their own data', async ({ pt }) => {
    const work = await makeTempDir('omfs-pt-io-');
    scratch.push(work);
    const inputs = Array.from({ length: 8 }, (_, i) => join(work, `in${i}`));
    for (const [i, p] of inputs.entries()) await writeFile(p, seededBytes(100 + i, 2 * 1_048_576 + i * 999));
    // All writers in parallel (different block sizes), then all readers in parallel with cmp.
    await must('for i in 0 1 2 3 4 5 6 7; do dd if="$1/in$i" of="$2/out$i" bs=$((4096 << i)) status=none & done; wait', [work, pt.mnt]);
    const r = await must('for i in 0 1 2 3 4 5 6 7; do (cmp "$1/in$i" "$2/out$i" && echo ok$i) & done; wait', [work, pt.mnt]);
    expect(r.trim().split('\n').sort()).toEqual(['ok0', 'ok1', 'ok2', 'ok3', 'ok4', 'ok5', 'ok6', 'ok7']);
    for (const [i, p] of inputs.entries()) {
      expect(sha256(await readFile(join(pt.source, `out${i}`)))).toBe(sha256(await readFile(p)));
    }
  });

  test('two processes appending with O_APPEND never overwrite each other', async ({ pt }) => {
    const log = join(pt.mnt, 'log');
    await writeFile(log, '');
    // Each line is written by one write(2) (printf builtin, line-buffered >>), so lines stay whole.
    await must('for w in a b; do (for i in $(seq 1 400); do printf "%s-%04d\\n" $w $i >> "$1"; done) & done; wait', [log]);
    const lines = (await readFile(join(pt.source, 'log'), 'utf8')).trim().split('\n');
    expect(lines.length).toBe(800);
    for (const w of ['a', 'b']) {
      const mine = lines.filter((l) => l.startsWith(`${w}-`));
      expect(mine).toEqual(Array.from({ length: 400 }, (_, i) => `${w}-${String(i + 1).padStart(4, '0')}`));
    }
  });

  test('read-only opens of a file share one descriptor in the daemon, and each reads what any writer wrote, also unlinked', async ({ pt }) => {
    const path = join(pt.mnt, 'shared');
    await writeFile(path, 'first');
    const daemonFds = async (): Promise<number> => (await readdir(`/proc/${pt.proc.pid}/fd`)).length;
    const before = await daemonFds();
    const readers = await Promise.all(Array.from({ length: 20 }, () => open(path, 'r')));
    try {
      // One descriptor for the twenty (not twenty more), beside whatever the daemon had open.
      expect(await daemonFds()).toBeLessThanOrEqual(before + 1);
      const writer = await open(path, 'r+');
      await writer.write('SECOND', 0, 'utf8');
      await writer.close();
      await unlink(path);
      for (const r of readers) {
        const buf = Buffer.alloc(16);
        const { bytesRead } = await r.read(buf, 0, buf.length, 0);
        expect(buf.subarray(0, bytesRead).toString()).toBe('SECOND');
      }
    } finally {
      for (const r of readers) await r.close();
    }
  });
});
