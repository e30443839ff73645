// --kernel-passthrough: the kernel reads and writes the backing file itself (FUSE_PASSTHROUGH). The
// data must be the same as through the daemon, several opens of one file must share its backing
// file (the kernel refuses a second one with EIO), and no READ or WRITE may reach the daemon.
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { passthroughTest } from '../harness/passthrough-mount.js';
import { must, seededBytes, sha256 } from './tools.js';

const test = passthroughTest({ args: ['--kernel-passthrough', '--debug'] });

describe('kernel passthrough', () => {
  test('data written and read through the kernel lands in the backing file; the daemon sees no READ or WRITE', async ({ pt }) => {
    const data = seededBytes(7, 3 * 1_048_576 + 123);
    await writeFile(join(pt.mnt, 'f'), data);
    expect(sha256(await readFile(join(pt.source, 'f')))).toBe(sha256(data));
    expect(sha256(await readFile(join(pt.mnt, 'f')))).toBe(sha256(data));
    // a write in the middle by a real tool
    await must('printf HELLO | dd of="$1" bs=1 seek=10 conv=notrunc status=none', [join(pt.mnt, 'f')]);
    expect((await readFile(join(pt.source, 'f'))).subarray(10, 15).toString()).toBe('HELLO');
    expect(pt.output()).toMatch(/rx \d+: OPEN /);
    expect(pt.output()).not.toMatch(/rx \d+: (READ|WRITE) /);
  });

  test('two opens of one file at once, and many opens in a row, all work', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'g'), 'x'.repeat(10_000));
    const reader = await open(join(pt.mnt, 'g'), 'r');
    const writer = await open(join(pt.mnt, 'g'), 'r+');
    try {
      await writer.write('hello', 0);
      const back = Buffer.alloc(5);
      await reader.read(back, 0, 5, 0);
      expect(back.toString()).toBe('hello');
    } finally {
      await reader.close();
      await writer.close();
    }
    for (let i = 0; i < 20; i++) {
      const a = await open(join(pt.mnt, 'g'), 'r+');
      const b = await open(join(pt.mnt, 'g'), 'r');
      await a.close();
      await b.close();
    }
    expect((await readFile(join(pt.mnt, 'g'))).subarray(0, 5).toString()).toBe('hello');
  });
});
