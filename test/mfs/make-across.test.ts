// Issue 10: a real workload across nodes. A small C project (made here: sources, headers, a
// Makefile with header dependencies) is tarred, unpacked with `tar -x` into /mfs/2/ through node
// 1's mount, and built with `make` through node 3's mount (its view of the same directory); the
// same tarball is built in a plain local directory. The two builds must produce the same files and
// byte-identical objects and program, and the program must run from /mfs. Then a header is touched
// through node 1 and `make` runs again through node 3: exactly the objects that include it are
// rebuilt (make decides by the mtimes one node wrote and another reads), and a make with nothing
// changed does nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../harness/passthrough-mount.js';
import { startCluster, type Cluster } from '../harness/mfs-cluster3.js';

const SOURCES: Record<string, string> = {
  'config.h': '#define GREETING "hello from omfs"\n#define ROUNDS 7\n',
  'util.h': '#include "config.h"\nint checksum(const char *s);\n',
  'mathx.h': 'long fib(int n);\n',
  'util.c': '#include "util.h"\nint checksum(const char *s) { int c = 0; while (*s) c = c * 31 + *s++; return c & 0xffff; }\n',
  'mathx.c': '#include "mathx.h"\nlong fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }\n',
  'main.c': [
    '#include <stdio.h>', '#include "util.h"', '#include "mathx.h"',
    'int main(void) {', '  for (int i = 0; i < ROUNDS; i++) printf("%d %ld\\n", i, fib(i * 3));',
    '  printf("%s %d\\n", GREETING, checksum(GREETING));', '  return 0;', '}', '',
  ].join('\n'),
  // No -g: objects then carry no build path, so the two builds can be compared byte for byte.
  Makefile: [
    'CC = cc', 'CFLAGS = -O2 -Wall', 'OBJS = main.o util.o mathx.o', '',
    'prog: $(OBJS)', '\t$(CC) -o $@ $(OBJS)', '',
    'main.o: main.c util.h mathx.h config.h', 'util.o: util.c util.h config.h', 'mathx.o: mathx.c mathx.h', '',
    '%.o: %.c', '\t$(CC) $(CFLAGS) -c -o $@ $<', '',
  ].join('\n'),
};

let c: Cluster | undefined;
let tmp: string;
let tarball: string;

beforeAll(async () => {
  tmp = await makeTempDir('omfs-make-');
  const src = join(tmp, 'proj');
  fs.mkdirSync(join(src, 'include'), { recursive: true });
  for (const [name, text] of Object.entries(SOURCES)) fs.writeFileSync(join(src, name), text);
  tarball = join(tmp, 'proj.tar');
  execFileSync('tar', ['-cf', tarball, '-C', tmp, 'proj']);
  c = await startCluster({ nodes: 3 });
}, 120_000);

afterAll(async () => {
  await c?.cleanup();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

/** `make` in dir: the commands it ran, one per line. */
const make = (dir: string): string[] => execFileSync('make', ['-C', dir, '--no-print-directory'], { encoding: 'utf8', timeout: 60_000 })
  .split('\n').filter((l) => l && !l.startsWith('make'));
/** Which sources a make run compiled and whether it linked. */
const compiled = (lines: string[]): string[] => lines.map((l) => / -c -o \S+ (\S+\.c)$/.exec(l)?.[1] ?? (/ -o prog /.test(l) ? 'link' : l)).sort();

/** Every name under dir with its type, sorted (what the build left there). */
function filesIn(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(`${p} ${e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other'}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('');
  return out.sort();
}

const mtimeNs = (p: string): bigint => fs.statSync(p, { bigint: true }).mtimeNs;

describe('unpack on node 1, build on node 3, in /mfs/2', () => {
  let local: string;
  let onNode1: string;
  let onNode3: string;

  it('tar -x through node 1, make through node 3: the same files and bytes as a local build, and the program runs from /mfs', () => {
    local = join(tmp, 'local');
    fs.mkdirSync(local);
    execFileSync('tar', ['-xf', tarball, '-C', local]);
    const localMake = compiled(make(join(local, 'proj')));

    fs.mkdirSync(join(c!.mount(1), '2', 'build'));
    execFileSync('tar', ['-xf', tarball, '-C', join(c!.mount(1), '2', 'build')]);
    onNode1 = join(c!.mount(1), '2', 'build', 'proj');
    onNode3 = join(c!.mount(3), '2', 'build', 'proj');
    // tar set the archive's mtimes through node 1; node 3 and the node itself see them.
    for (const name of Object.keys(SOURCES)) {
      expect(mtimeNs(join(onNode3, name)), name).toBe(mtimeNs(join(local, 'proj', name)));
      expect(mtimeNs(join(c!.exportOf(2), 'build', 'proj', name)), name).toBe(mtimeNs(join(local, 'proj', name)));
    }
    const mfsMake = compiled(make(onNode3));
    expect(mfsMake).toEqual(['link', 'main.c', 'mathx.c', 'util.c']);
    expect(mfsMake).toEqual(localMake);

    expect(filesIn(onNode3)).toEqual(filesIn(join(local, 'proj')));
    expect(filesIn(onNode1)).toEqual(filesIn(join(local, 'proj')));
    for (const out of ['main.o', 'util.o', 'mathx.o', 'prog']) {
      const want = fs.readFileSync(join(local, 'proj', out));
      expect(fs.readFileSync(join(onNode3, out)).equals(want), `${out} through node 3`).toBe(true);
      expect(fs.readFileSync(join(onNode1, out)).equals(want), `${out} through node 1`).toBe(true);
      expect(fs.readFileSync(join(c!.exportOf(2), 'build', 'proj', out)).equals(want), `${out} on node 2`).toBe(true);
    }
    const expected = execFileSync(join(local, 'proj', 'prog'), { encoding: 'utf8' });
    expect(expected).toContain('hello from omfs');
    expect(execFileSync(join(onNode3, 'prog'), { encoding: 'utf8' })).toBe(expected);
    expect(execFileSync(join(onNode1, 'prog'), { encoding: 'utf8' })).toBe(expected);
  }, 90_000);

  it('make again through node 3 with nothing changed does nothing', () => {
    expect(make(onNode3)).toEqual([]);
  });

  it('a header touched through node 1: make through node 3 rebuilds exactly the objects that include it', async () => {
    const before = Object.fromEntries(['main.o', 'util.o', 'mathx.o', 'prog'].map((o) => [o, mtimeNs(join(onNode3, o))]));
    // ext4 stamps mtimes from a clock that ticks every few ms: wait, so that the header's new mtime
    // is later than the objects' whatever the tick (make would otherwise rightly see no change).
    await new Promise((r) => setTimeout(r, 1_100));
    execFileSync('touch', [join(onNode1, 'util.h')]);
    expect(compiled(make(onNode3))).toEqual(['link', 'main.c', 'util.c']);
    expect(mtimeNs(join(onNode3, 'mathx.o'))).toBe(before['mathx.o']);
    for (const o of ['main.o', 'util.o', 'prog']) expect(mtimeNs(join(onNode3, o)) > before[o]!, o).toBe(true);
    // Node 1 sees node 3's new objects, and make through node 1 agrees that all is built.
    for (const o of ['main.o', 'util.o', 'mathx.o', 'prog']) expect(mtimeNs(join(onNode1, o)), o).toBe(mtimeNs(join(onNode3, o)));
    expect(make(onNode1)).toEqual([]);
    // The same on the local copy rebuilds the same set.
    await new Promise((r) => setTimeout(r, 1_100));
    execFileSync('touch', [join(local, 'proj', 'util.h')]);
    expect(compiled(make(join(local, 'proj')))).toEqual(['link', 'main.c', 'util.c']);
  }, 60_000);
});
