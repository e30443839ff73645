// The workloads of bench/fuse-passthrough.ts: each one does its I/O under a path and knows nothing of
// targets, mounts or cache drops. Child processes (find, grep, rm, cp) are registered in `children`
// so the bench can kill whatever is still running when it exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const MIB = 1_048_576;
const PAGE = 4096;

/** Child processes still running; the bench kills them at exit. */
export const children = new Set<ChildProcess>();

export async function writeSequential(path: string, mib: number, sync: boolean): Promise<void> {
  const block = Buffer.alloc(MIB, 0x5a);
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < mib; i++) await fh.write(block, 0, MIB, i * MIB);
    if (sync) await fh.datasync();
  } finally {
    await fh.close();
  }
}

export async function readSequential(path: string): Promise<void> {
  const block = Buffer.alloc(MIB);
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(block, 0, MIB, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** 4 KiB-aligned offsets below fileBytes, the same for every target: xorshift32 from `seed`. */
export function randomOffsets(count: number, fileBytes: number, seed: number): number[] {
  const pages = Math.floor(fileBytes / PAGE);
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push((x % pages) * PAGE);
  }
  return out;
}

/** Splits `offsets` over `concurrency` workers, each with its own descriptor, all at once. */
async function splitOver(offsets: number[], concurrency: number, worker: (slice: number[]) => Promise<void>): Promise<void> {
  const per = Math.ceil(offsets.length / concurrency);
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(offsets.slice(i * per, (i + 1) * per))));
}

export async function readRandom(path: string, offsets: number[], concurrency: number): Promise<void> {
  await splitOver(offsets, concurrency, async (slice) => {
    const fh = await open(path, 'r');
    const buf = Buffer.alloc(PAGE);
    try {
      for (const off of slice) await fh.read(buf, 0, PAGE, off);
    } finally {
      await fh.close();
    }
  });
}

/** 4 KiB pwrites at `offsets` of an existing file (no truncation); fdatasync before close if `sync`. */
export async function writeRandom(path: string, offsets: number[], concurrency: number, sync: boolean): Promise<void> {
  await splitOver(offsets, concurrency, async (slice) => {
    const fh = await open(path, 'r+');
    const buf = Buffer.alloc(PAGE, 0xa5);
    try {
      for (const off of slice) await fh.write(buf, 0, PAGE, off);
      if (sync) await fh.datasync();
    } finally {
      await fh.close();
    }
  });
}

/** Names of a large directory: realistic lengths (about 30 bytes), not f1, f2... */
export function entryName(i: number): string {
  return `entry-${String(i).padStart(6, '0')}-of-a-large-dir.txt`;
}

/** Makes `dir` with `count` empty files, directly (this is setup, done on the source, not timed). */
export function makeFlatDir(dir: string, count: number): void {
  mkdirSync(dir);
  for (let i = 0; i < count; i++) closeSync(openSync(join(dir, entryName(i)), 'wx'));
}

/** One listing of `dir` the way `ls -f` does it (getdents, no stat); the number of names. */
export async function listDir(dir: string): Promise<number> {
  return (await readdir(dir)).length;
}

export interface TreeSize { files: number; dirs: number; others: number; bytes: number }

/** What `cp -a` of `root` will copy (untimed, on the original). */
export function treeSize(root: string): TreeSize {
  const size: TreeSize = { files: 0, dirs: 0, others: 0, bytes: 0 };
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        size.dirs++;
        walk(p);
      } else if (st.isFile()) {
        size.files++;
        size.bytes += st.size;
      } else size.others++;
    }
  };
  walk(root);
  return size;
}

/**
 * Runs a command to completion, its output discarded; rejects on a signal or an exit code outside
 * `okCodes`, with the end of its stderr.
 */
export function run(cmd: string, args: string[], okCodes: number[] = [0]): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(proc);
    let err = '';
    proc.stderr?.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-2000);
    });
    proc.once('error', (e) => {
      children.delete(proc);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    proc.once('close', (code, signal) => {
      children.delete(proc);
      if (code !== null && okCodes.includes(code)) resolve();
      else {
        const last = err.trim().split('\n').pop() ?? '';
        reject(new Error(`${cmd} ${signal ? `killed by ${signal}` : `exited ${code}`}${last ? `: ${last}` : ''}`));
      }
    });
  });
}

/** `find` over a tree: a name match, the usual use; needs readdir and a lookup per directory. */
export const findTree = (root: string): Promise<void> => run('find', [root, '-type', 'f', '-name', '*.json']);

/** `grep -r` for a string found nowhere: opens and reads every file of the tree to its end. */
export const grepTree = (root: string): Promise<void> =>
  run('grep', ['-r', '-F', '-e', 'omfs bench: a string in no file', root], [0, 1]);

export const copyTree = (from: string, to: string): Promise<void> => run('cp', ['-a', from, to]);
export const removeTree = (root: string): Promise<void> => run('rm', ['-rf', root]);
