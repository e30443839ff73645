// The CLI's cache modes: --direct-io (no page cache: every read and write reaches the daemon),
// --keep-cache (page cache kept across opens) and --timeout 0 (no attribute or entry caching).
// Each mode must still give the same results as a bare directory.
import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { compileC, must, seededBytes, sh } from './tools.js';

let work = '';
let input = '';
beforeAll(async () => {
  work = await makeTempDir('omfs-pt-modes-');
  input = join(work, 'input');
  await writeFile(input, seededBytes(9, 3 * 1_048_576 + 5));
  // mapwrite FILE: map it shared and overwrite its first bytes through the map.
  await compileC(
    work,
    'mapwrite',
    String.raw`
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) return 1;
  char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 3;
  memcpy(p, "MAPPED", 6);
  return msync(p, 4096, MS_SYNC) || munmap(p, 4096) || close(fd);
}
`,
  );
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** The same workload on any directory; the caller compares the results with a bare directory's. */
async function workload(dir: string): Promise<void> {
  await must('dd if="$1" of="$2/dd-1m" bs=1M status=none && dd if="$1" of="$2/dd-4k" bs=4k status=none', [input, dir]);
  await must('dd if=/dev/zero of="$1/dd-1m" bs=4k seek=3 count=2 conv=notrunc status=none', [dir]);
  await must('cp -a /usr/include/linux/netfilter "$1/nf" && truncate -s 5000 "$1/dd-4k"', [dir]);
  await writeFile(join(dir, 'appended'), 'one\n');
  await appendFile(join(dir, 'appended'), 'two\n');
}

async function expectSameAsBare(dir: string): Promise<void> {
  const bare = join(work, `bare-${Math.random().toString(36).slice(2)}`);
  await mkdir(bare);
  await workload(bare);
  await must('diff -r "$1" "$2"', [bare, dir]);
}

describe('--direct-io', () => {
  const test = passthroughTest({ args: ['--direct-io'] });

  test('dd, cp -a, truncate and appends match a bare directory', async ({ pt }) => {
    await workload(pt.mnt);
    await expectSameAsBare(pt.mnt);
    await expectSameAsBare(pt.source);
  });

  test('shared mmap still works, and a binary built on the mount runs from it', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'm'), Buffer.alloc(8192, 'x'));
    await must('"$1" "$2"', [join(work, 'mapwrite'), join(pt.mnt, 'm')]);
    expect((await readFile(join(pt.source, 'm'), 'latin1')).slice(0, 8)).toBe('MAPPEDxx');
    await writeFile(join(pt.mnt, 'hi.c'), '#include <stdio.h>\nint main(void) { puts("direct"); return 0; }\n');
    await must('cc -o "$1/hi" "$1/hi.c"', [pt.mnt]);
    expect(await must('"$1/hi"', [pt.mnt])).toBe('direct\n');
  });
});

describe('--keep-cache', () => {
  const test = passthroughTest({ args: ['--keep-cache'] });

  test('writes through the mount are read back at once, across opens, like a bare directory', async ({ pt }) => {
    await workload(pt.mnt);
    await expectSameAsBare(pt.mnt);
    await writeFile(join(pt.mnt, 'rewrite'), 'first');
    expect(await readFile(join(pt.mnt, 'rewrite'), 'utf8')).toBe('first');
    await writeFile(join(pt.mnt, 'rewrite'), 'second, longer');
    expect(await readFile(join(pt.mnt, 'rewrite'), 'utf8')).toBe('second, longer');
    await must('truncate -s 3 "$1/rewrite"', [pt.mnt]);
    expect(await readFile(join(pt.mnt, 'rewrite'), 'utf8')).toBe('sec');
  });

  // --keep-cache opens files without OPEN: the I/O below reaches the daemon with no handle at all.
  test('O_TRUNC, appends past a change behind the mount, copy_file_range and fsync work without OPEN', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'f'), 'a long first version\n');
    await must('echo short > "$1/f"', [pt.mnt]); // O_TRUNC: a SETATTR of size 0 after the open
    expect(await readFile(join(pt.source, 'f'), 'utf8')).toBe('short\n');
    await appendFile(join(pt.source, 'f'), 'behind\n'); // the kernel's cached size is now stale
    await appendFile(join(pt.mnt, 'f'), 'appended\n'); // O_APPEND: at the true end, not the cached one
    expect(await readFile(join(pt.source, 'f'), 'utf8')).toBe('short\nbehind\nappended\n');
    const copy = `import os, sys
src = os.open(sys.argv[1], os.O_RDONLY); dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
n = os.copy_file_range(src, dst, 1 << 20); os.fsync(dst); os.fdatasync(dst); print(n)`;
    expect((await must('python3 -c "$1" "$2" "$3"', [copy, join(pt.mnt, 'f'), join(pt.mnt, 'g')])).trim()).toBe('22');
    expect(await readFile(join(pt.source, 'g'), 'utf8')).toBe('short\nbehind\nappended\n');
  });

  test('a file written through the mount is not held open for writing once idle (the bare file can then be run)', async ({ pt }) => {
    await writeFile(join(pt.source, 'run.sh'), '', { mode: 0o755 });
    await writeFile(join(pt.mnt, 'run.sh'), '#!/bin/sh\necho ran\n'); // an open of an existing file: no OPEN
    // The daemon keeps a write descriptor for a moment after the last write; exec needs none (ETXTBSY).
    let out = '';
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && out !== 'ran\n'; await new Promise((r) => setTimeout(r, 200))) {
      out = (await sh('"$1"', [join(pt.source, 'run.sh')])).stdout;
    }
    expect(out).toBe('ran\n');
  });

  test('files created after the first open hold no descriptor once closed (the kernel sends them no RELEASE)', async ({ pt }) => {
    // The first open of an existing file gets ENOSYS for OPEN: from then on the kernel opens by itself.
    await writeFile(join(pt.source, 'old'), 'x');
    expect(await readFile(join(pt.mnt, 'old'), 'utf8')).toBe('x');
    const writeFds = async (): Promise<number> =>
      Number((await must('ls -l /proc/"$1"/fd | grep -c "^l-wx" || true', [String(pt.proc.pid)])).trim());
    const before = await writeFds();
    await mkdir(join(pt.mnt, 'made'));
    for (let i = 0; i < 200; i++) await writeFile(join(pt.mnt, 'made', `f${i}`), i % 2 ? '' : `data ${i}\n`);
    for (let i = 0; i < 200; i += 2) expect(await readFile(join(pt.mnt, 'made', `f${i}`), 'utf8')).toBe(`data ${i}\n`);
    expect(await readFile(join(pt.source, 'made', 'f10'), 'utf8')).toBe('data 10\n');
    // Written ones keep a write descriptor for a moment (closeIdleWriters); then none is left.
    let held = 0;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      held = (await writeFds()) - before;
      if (held <= 0) break;
    }
    expect(held).toBeLessThanOrEqual(0);
  });
});

describe('--timeout 0', () => {
  const test = passthroughTest({ args: ['--timeout', '0'] });

  test('with nothing cached, a change to the backing dir is seen by the very next call', async ({ pt }) => {
    await writeFile(join(pt.source, 'f'), 'short');
    expect((await stat(join(pt.mnt, 'f'))).size).toBe(5);
    await writeFile(join(pt.source, 'f'), 'much longer now');
    expect((await stat(join(pt.mnt, 'f'))).size).toBe(15);
    expect(await readFile(join(pt.mnt, 'f'), 'utf8')).toBe('much longer now');
    await rm(join(pt.source, 'f'));
    await expect(stat(join(pt.mnt, 'f'))).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(join(pt.source, 'f'), 'back again');
    expect(await readFile(join(pt.mnt, 'f'), 'utf8')).toBe('back again');
  });
});
