// One real mount of the compiled omfs-passthrough: mount, read and write through it, compare with
// the source directory, unmount with SIGTERM. Cleanup runs even when an assertion fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, test } from 'vitest';

const CLI = fileURLToPath(new URL('../../dist/bin/omfs-passthrough.js', import.meta.url));

let root: string;
let src: string;
let mnt: string;
let proc: ChildProcess | undefined;
let exited: Promise<number | null>;

const mounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);

beforeEach(async () => {
  expect(existsSync(CLI), 'build first: npx tsc -p tsconfig.json').toBe(true);
  root = await mkdtemp(join(tmpdir(), 'omfs-f1-'));
  src = join(root, 'src');
  mnt = join(root, 'mnt');
  await mkdir(src);
  await mkdir(mnt);
  await writeFile(join(src, 'hello.txt'), 'hello from the source\n');
  await mkdir(join(src, 'sub'));
  await writeFile(join(src, 'sub', 'inner'), Buffer.alloc(300_000, 7));
  proc = spawn(process.execPath, [CLI, src, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((r) => proc!.once('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc!.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(`omfs-passthrough: mounted ${src} on ${mnt}\n`)) resolve();
    });
    void exited.then((code) => reject(new Error(`exited ${code} before mounting`)));
  });
});

afterEach(async () => {
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  if (mounted(mnt)) spawnSync('umount', ['-l', mnt]);
  if (!mounted(mnt)) await rm(root, { recursive: true, force: true });
});

test('a mounted passthrough mirrors the source and unmounts on SIGTERM', async () => {
  expect(mounted(mnt)).toBe(true);
  expect(await readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello from the source\n');
  expect((await readdir(mnt)).sort()).toEqual(['hello.txt', 'sub']);
  // Buffer.equals: vitest's deep equality walks large buffers byte by byte and takes seconds.
  expect((await readFile(join(mnt, 'sub', 'inner'))).equals(await readFile(join(src, 'sub', 'inner')))).toBe(true);

  await writeFile(join(mnt, 'new.bin'), Buffer.alloc(2_500_000, 9));
  expect((await readFile(join(src, 'new.bin'))).equals(Buffer.alloc(2_500_000, 9))).toBe(true);
  const [a, b] = await Promise.all([stat(join(mnt, 'new.bin')), stat(join(src, 'new.bin'))]);
  expect([a.size, a.mode, a.ino, a.mtimeMs]).toEqual([b.size, b.mode, b.ino, b.mtimeMs]);

  proc!.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(mounted(mnt)).toBe(false);
});

test('`umount` by an admin ends the session with exit 0', async () => {
  expect(spawnSync('umount', [mnt]).status).toBe(0);
  expect(await exited).toBe(0);
});
