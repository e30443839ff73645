// Directory listings through the passthrough: large directories, long names, and the READDIR resume
// cookie, which must neither skip nor repeat an entry when the directory changes between two reads.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import * as sys from '../../sys/index.js';
import { eventually, makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { compileC, must } from './tools.js';

const test = passthroughTest();

let helpers = '';
beforeAll(async () => {
  helpers = await makeTempDir('omfs-pt-dirs-');
  await compileC(helpers, 'slowls', SLOWLS_C);
});
afterAll(async () => {
  if (helpers) await rm(helpers, { recursive: true, force: true });
});

/**
 * slowls DIR N: list DIR with getdents64 and a 1 KiB buffer (so the kernel resumes from a cookie many
 * times), print one name per line, and after N names print "--paused--" and wait for a line on stdin.
 */
const SLOWLS_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
struct dirent64_raw { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; };
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (fd < 0) { perror("open"); return 1; }
  long pause_after = atol(argv[2]), seen = 0;
  int paused = 0;
  char buf[1024];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) { perror("getdents64"); return 1; }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
      printf("%s\n", d->name);
      off += d->reclen;
      seen++;
    }
    if (!paused && seen >= pause_after) {
      paused = 1;
      printf("--paused--\n");
      fflush(stdout);
      char line[16];
      if (!fgets(line, sizeof line, stdin)) return 1;
    }
  }
  fflush(stdout);
  return 0;
}
`;

/** Run slowls on `dir`, call `meanwhile` while it is paused mid-listing, and return every name it printed. */
async function listWhileChanging(dir: string, pauseAfter: number, meanwhile: () => Promise<void>): Promise<string[]> {
  const proc = spawn(join(helpers, 'slowls'), [dir, String(pauseAfter)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => proc.once('close', (code) => r(code)));
  try {
    if (!(await eventually(() => out.includes('--paused--\n'), 10_000))) throw new Error(`slowls never paused: ${err}`);
    await meanwhile();
    proc.stdin.end('go\n');
    expect(await exited).toBe(0);
  } finally {
    proc.kill('SIGKILL');
  }
  return out.split('\n').filter((l) => l !== '' && l !== '--paused--');
}

/** Every getdents64 call's records on `dir` (32 KiB at a time, as glibc's readdir asks): name and record length. */
function rawListing(dir: string): { calls: number; records: { name: Buffer; reclen: number }[] } {
  const fd = openSync(dir, 'r');
  const buf = Buffer.alloc(32 * 1024);
  const records: { name: Buffer; reclen: number }[] = [];
  let calls = 0;
  try {
    for (;;) {
      const n = sys.getdentsRaw(fd, buf);
      calls++;
      if (n === 0) break;
      for (let at = 0; at < n;) {
        const reclen = buf.readUInt16LE(at + sys.DIRENT64.RECLEN);
        records.push({ name: Buffer.from(buf.subarray(at + sys.DIRENT64.NAME, sys.direntNameEnd(buf, at))), reclen });
        at += reclen;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { calls, records };
}

function duplicates(names: string[]): string[] {
  const seen = new Set<string>();
  return names.filter((n) => (seen.has(n) ? true : (seen.add(n), false)));
}

describe('readdir', () => {
  test('a directory of 3000 entries, long names included, lists exactly as the backing dir', async ({ pt }) => {
    await mkdir(join(pt.mnt, 'big'));
    const names = Array.from({ length: 3000 }, (_, i) => (i % 100 === 0 ? `${i}-`.padEnd(255, 'n') : `entry-${i}`));
    for (const n of names) await writeFile(join(pt.mnt, 'big', n), '');
    const viaMount = (await must('ls -f "$1" | LC_ALL=C sort', [join(pt.mnt, 'big')])).split('\n');
    const backing = (await must('ls -f "$1" | LC_ALL=C sort', [join(pt.source, 'big')])).split('\n');
    expect(viaMount).toEqual(backing);
    expect(viaMount.filter((n) => n !== '').length).toBe(3002); // with . and ..
    // find -printf %s stats every entry (READDIRPLUS or a LOOKUP per name); sizes sum to zero.
    const sizes = await must('find "$1" -mindepth 1 -printf "%s\n" | sort | uniq -c', [join(pt.mnt, 'big')]);
    expect(sizes.trim()).toBe('3000 0');
  });

  test('each name reaches getdents as its bytes and nothing after them, in as many calls as on the backing dir', ({ pt }) => {
    // Made behind the mount, so the listing is the kernel's first: every reply comes from READDIR.
    const dir = join(pt.source, 'unseen');
    mkdirSync(dir);
    for (let i = 0; i < 3000; i++) writeFileSync(join(dir, `f${i}`), '');
    const viaMount = rawListing(join(pt.mnt, 'unseen'));
    const backing = rawListing(dir);
    // A record the size its name needs: the bytes the daemon took from its own reused getdents
    // buffer after a name's NUL once travelled as part of the name (a '/' among them made the
    // kernel cut the listing short: 19 calls instead of 4).
    const oversized = viaMount.records.filter((r) => r.reclen !== ((sys.DIRENT64.NAME + r.name.length + 1 + 7) & ~7));
    expect(oversized.map((r) => `${r.name.toString()}: ${r.reclen}`)).toEqual([]);
    expect(viaMount.records.map((r) => r.name).sort(Buffer.compare)).toEqual(backing.records.map((r) => r.name).sort(Buffer.compare));
    // The first reply carries READDIRPLUS records (larger), so it may take one call more.
    expect(viaMount.calls).toBeLessThanOrEqual(backing.calls + 1);
  });

  for (const where of ['bare', 'mount'] as const) {
    test(`entries removed and added mid-listing: no name twice, every untouched name once (${where})`, async ({ pt }) => {
      const dir = where === 'mount' ? join(pt.mnt, 'churn') : join(helpers, 'churn');
      await mkdir(dir);
      const keep = Array.from({ length: 800 }, (_, i) => `keep-${i}`);
      const drop = Array.from({ length: 800 }, (_, i) => `drop-${i}`);
      for (const n of [...keep, ...drop]) await writeFile(join(dir, n), '');
      const listed = await listWhileChanging(dir, 300, async () => {
        for (const n of drop) await unlink(join(dir, n));
        for (let i = 0; i < 400; i++) await writeFile(join(dir, `new-${i}`), '');
      });
      expect(duplicates(listed)).toEqual([]);
      expect(keep.filter((n) => !listed.includes(n))).toEqual([]);
      expect(listed.filter((n) => !/^(keep|drop|new)-\d+$/.test(n) && n !== '.' && n !== '..')).toEqual([]);
    });
  }
});

describe('the kernel\'s listing cache (without --keep-cache)', () => {
  const traced = passthroughTest({ args: ['--debug'] });

  traced('a directory listed once is not cached; listed again it is, until it changes', async ({ pt }) => {
    // Caching costs the reader per entry, so a first listing goes uncached; from the second on the
    // kernel keeps it and the third needs no READDIR at all. A change behind the mount shows once
    // the attribute timeout (1 s) has passed.
    mkdirSync(join(pt.source, 'd'));
    for (let i = 0; i < 500; i++) closeSync(openSync(join(pt.source, 'd', `name-${i}`), 'wx'));
    const readdirs = (): number => (pt.output().match(/rx \d+: READDIR(PLUS)? /g) ?? []).length;
    const listing = async (): Promise<{ names: number; readdirs: number }> => {
      const before = readdirs();
      const names = (await must('ls -f "$1"', [join(pt.mnt, 'd')])).split('\n').filter((n) => n !== '').length;
      return { names, readdirs: readdirs() - before };
    };
    const first = await listing();
    const second = await listing();
    const third = await listing();
    expect(first.names).toBe(502);
    expect(first.readdirs).toBeGreaterThan(0);
    expect(second).toMatchObject({ names: 502 });
    expect(second.readdirs).toBeGreaterThan(0);
    expect(third).toEqual({ names: 502, readdirs: 0 });
    writeFileSync(join(pt.source, 'd', 'late'), '');
    expect(await eventually(async () => (await listing()).names === 503, 5_000, 200)).toBe(true);
  });
});
