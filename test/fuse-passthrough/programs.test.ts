// Programs that lean on the filesystem in ways tools like cp do not: git, make, exec of files on the
// mount, shared mmap and POSIX record locks between processes.
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { eventually, makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { compileC, inSyscall, must, seededBytes, sh } from './tools.js';

const test = passthroughTest();

// C helpers are built once, outside the mount, so a broken mount cannot break the helpers themselves.
let helpers = '';
beforeAll(async () => {
  helpers = await makeTempDir('omfs-pt-bin-');
  await compileC(helpers, 'mapwrite', MAPWRITE_C);
  await compileC(helpers, 'lock', LOCK_C);
});
afterAll(async () => {
  if (helpers) await rm(helpers, { recursive: true, force: true });
});

/** mapwrite FILE OFFSET TEXT: map FILE shared, copy TEXT in at OFFSET through the map, msync, unmap. */
const MAPWRITE_C = String.raw`
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) { perror("open"); return 1; }
  struct stat st;
  if (fstat(fd, &st) < 0) { perror("fstat"); return 1; }
  char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  long off = atol(argv[2]);
  memcpy(p + off, argv[3], strlen(argv[3]));
  if (msync(p, st.st_size, MS_SYNC) < 0) { perror("msync"); return 1; }
  if (munmap(p, st.st_size) < 0) { perror("munmap"); return 1; }
  return close(fd) < 0;
}
`;

/**
 * lock FILE hold|try|wait: a write lock on bytes 0..99 with fcntl. "hold" takes it with F_SETLK, prints
 * "locked" and keeps it until stdin closes; "try" prints "EAGAIN" or "acquired" for F_SETLK; "wait"
 * prints "waiting", blocks in F_SETLKW and prints "acquired".
 */
const LOCK_C = String.raw`
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  setvbuf(stdout, NULL, _IONBF, 0);
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) { perror("open"); return 1; }
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
  if (strcmp(argv[2], "wait") == 0) {
    printf("waiting\n");
    if (fcntl(fd, F_SETLKW, &fl) < 0) { perror("F_SETLKW"); return 1; }
    printf("acquired\n");
    return 0;
  }
  if (fcntl(fd, F_SETLK, &fl) < 0) {
    if (errno == EAGAIN || errno == EACCES) { printf("EAGAIN\n"); return 0; }
    perror("F_SETLK");
    return 1;
  }
  printf(strcmp(argv[2], "hold") == 0 ? "locked\n" : "acquired\n");
  if (strcmp(argv[2], "hold") == 0) { char c; while (read(0, &c, 1) > 0) {} }
  return 0;
}
`;

describe('git', () => {
  test('git init, add, commit, log and fsck on the mount; the backing repository is valid too', async ({ pt }) => {
    const repo = join(pt.mnt, 'repo');
    const git = 'git -c user.name=T -c user.email=t@example.invalid -c init.defaultBranch=main';
    await must(`${git} init -q "$1"`, [repo]);
    await writeFile(join(repo, 'README'), 'hello\n');
    await writeFile(join(repo, 'blob.bin'), seededBytes(11, 200_000));
    await must(`cd "$1" && ${git} add -A && ${git} commit -q -m first`, [repo]);
    await writeFile(join(repo, 'README'), 'hello again\n');
    await must(`cd "$1" && mkdir sub && echo x > sub/y && ${git} add -A && ${git} commit -q -m second`, [repo]);
    await must(`cd "$1" && ${git} mv sub/y sub/z && ${git} commit -q -m rename && ${git} gc -q`, [repo]);

    const log = await must(`${git} -C "$1" log --format=%s`, [repo]);
    expect(log.trim().split('\n')).toEqual(['rename', 'second', 'first']);
    await must(`${git} -C "$1" fsck --full --strict`, [repo]);
    await must(`${git} -C "$1" fsck --full --strict`, [join(pt.source, 'repo')]);
    expect((await must(`${git} -C "$1" status --porcelain`, [repo])).trim()).toBe('');
    expect(await must(`${git} -C "$1" show HEAD~1:README`, [join(pt.source, 'repo')])).toBe('hello again\n');
  });
});

describe('make and exec', () => {
  test('make builds a small C project on the mount; its binary and a script run from the mount', async ({ pt }) => {
    const proj = join(pt.mnt, 'proj');
    await must('mkdir "$1"', [proj]);
    await writeFile(join(proj, 'greet.h'), 'const char *greeting(void);\n');
    await writeFile(join(proj, 'greet.c'), '#include "greet.h"\nconst char *greeting(void) { return "built on omfs"; }\n');
    await writeFile(join(proj, 'main.c'), '#include <stdio.h>\n#include "greet.h"\nint main(void) { puts(greeting()); return 0; }\n');
    await writeFile(
      join(proj, 'Makefile'),
      'hello: main.o greet.o\n\tcc -o $@ $^\n%.o: %.c greet.h\n\tcc -c -o $@ $<\nclean:\n\trm -f hello *.o\n',
    );
    await must('make -s -C "$1"', [proj]);
    expect(await must('"$1/hello"', [proj])).toBe('built on omfs\n');
    // make trusts mtimes: nothing is stale right after a build, and a touched source is.
    expect((await sh('make -q -C "$1"', [proj])).code).toBe(0);
    await must('touch -d "now + 2 seconds" "$1/greet.c"', [proj]);
    expect((await sh('make -q -C "$1"', [proj])).code).toBe(1);
    await must('make -s -C "$1"', [proj]);
    expect(await must('"$1/hello"', [join(pt.source, 'proj')])).toBe('built on omfs\n');

    await writeFile(join(pt.mnt, 'run.sh'), '#!/bin/sh\necho "script says $1"\n', { mode: 0o755 });
    expect(await must('"$1/run.sh" hi', [pt.mnt])).toBe('script says hi\n');
    await must('chmod -x "$1/run.sh"', [pt.mnt]);
    const denied = await sh('"$1/run.sh" hi', [pt.mnt]);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toContain('Permission denied');
  });
});

describe('mmap', () => {
  test('a write through a shared mapping reaches the backing file and later reads', async ({ pt }) => {
    const content = seededBytes(5, 3 * 4096 + 100);
    await writeFile(join(pt.mnt, 'mapped'), content);
    await must('"$1" "$2" 5000 "written through the map"', [join(helpers, 'mapwrite'), join(pt.mnt, 'mapped')]);
    const expected = Buffer.from(content);
    expected.write('written through the map', 5000, 'latin1');
    expect((await readFile(join(pt.source, 'mapped'))).equals(expected)).toBe(true);
    expect((await readFile(join(pt.mnt, 'mapped'))).equals(expected)).toBe(true);
  });
});

describe('fcntl locks', () => {
  test('a conflicting F_SETLK gets EAGAIN and F_SETLKW waits until the holder unlocks', async ({ pt }) => {
    const file = join(pt.mnt, 'locked');
    await writeFile(file, 'x'.repeat(200));
    const lockBin = join(helpers, 'lock');
    const holder = spawn(lockBin, [file, 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const waiter: { proc?: ReturnType<typeof spawn> } = {};
    try {
      let holderOut = '';
      holder.stdout.on('data', (c: Buffer) => (holderOut += c.toString()));
      expect(await eventually(() => holderOut.includes('locked'), 10_000)).toBe(true);

      expect((await must('"$1" "$2" try', [lockBin, file])).trim()).toBe('EAGAIN');

      const w = spawn(lockBin, [file, 'wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
      waiter.proc = w;
      let waiterOut = '';
      w.stdout?.on('data', (c: Buffer) => (waiterOut += c.toString()));
      // 'close', not 'exit': only then has all of the waiter's output been read.
      const waiterExit = new Promise<number | null>((r) => w.once('close', (code) => r(code)));
      // The waiter is provably blocked inside fcntl (x86_64 syscall 72), not merely slow.
      const blocked = (): boolean => waiterOut === 'waiting\n' && w.pid !== undefined && inSyscall(w.pid, 72);
      expect(await eventually(blocked, 10_000)).toBe(true);

      holder.stdin.end(); // the holder exits, which releases its lock
      expect(await waiterExit).toBe(0);
      expect(waiterOut).toBe('waiting\nacquired\n');
      expect((await must('"$1" "$2" try', [lockBin, file])).trim()).toBe('acquired');
    } finally {
      holder.kill('SIGKILL');
      waiter.proc?.kill('SIGKILL');
    }
  });
});
