// Benchmark of the FUSE passthrough beside its baselines, in one run: the bare directory (no FUSE),
// bindfs (libfuse in C) and omfs-passthrough. Prints one table with every figure and the ratio
// passthrough/bindfs (issue 3 asks for >= 0.7 on each).
//
//   node dist/bench/fuse-passthrough.js [--size-mib 1024] [--files 5000] [--random-reads 20000]
//        [--random-file-mib 256] [--readers 4] [--fdatasync] [--passthrough-args=--keep-cache]
//        [--bindfs-args="-o allow_other"] [--dir /var/tmp] [--targets bare,passthrough,bindfs] [--rounds 3]
// (values that start with a dash need the --name=value form)
//
// Method (each target gets its own empty source dir; everything is root; the page cache is dropped
// with `echo 3 > /proc/sys/vm/drop_caches` before every phase, so reads really cross FUSE and the disk):
// - seq write: 1 MiB writes of a --size-mib file, then close. FUSE here has no writeback cache, so each
//   write has crossed /dev/fuse into the daemon when it returns; the backing fs may still hold it in its
//   page cache. That measures the FUSE path rather than the disk; --fdatasync adds an fdatasync before
//   close (dd conv=fdatasync) for a durable figure, which the disk then dominates.
// - seq read: the same file read back with 1 MiB reads.
// - random read: --random-reads 4 KiB reads at 4 KiB-aligned offsets of a --random-file-mib file, from a
//   fixed seed, split over --readers concurrent readers (each with its own descriptor).
// - create / stat / unlink: --files empty files made with open(O_CREAT|O_EXCL)+close, then lstat each
//   (after the cache drop, so each is a LOOKUP), then unlink each; one at a time, in one directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, lstat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const PASSTHROUGH_CLI = fileURLToPath(new URL('../bin/omfs-passthrough.js', import.meta.url));
const MIB = 1_048_576;

const CLI_CONFIG = {
  options: {
    'size-mib': { type: 'string', default: '1024' },
    files: { type: 'string', default: '5000' },
    'random-reads': { type: 'string', default: '20000' },
    'random-file-mib': { type: 'string', default: '256' },
    readers: { type: 'string', default: '4' },
    fdatasync: { type: 'boolean', default: false },
    'passthrough-args': { type: 'string', default: '' },
    // bindfs serves one request at a time unless --multithreaded; the passthrough serves many at once,
    // so the fair baseline is multithreaded. default_permissions: the passthrough mounts with it too.
    'bindfs-args': { type: 'string', default: '--multithreaded -o allow_other,default_permissions' },
    dir: { type: 'string', default: tmpdir() },
    targets: { type: 'string', default: 'bare,passthrough,bindfs' },
    // The machine is shared: several rounds (targets interleaved in each) and the median per figure
    // tame a neighbour's burst better than one long round.
    rounds: { type: 'string', default: '1' },
  },
} as const;

function parseCli() {
  try {
    return parseArgs(CLI_CONFIG);
  } catch (err) {
    console.error(`fuse-passthrough bench: ${(err as Error).message}`);
    process.exit(2);
  }
}
const { values: opts } = parseCli();
const positiveInt = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
};
const sizeMib = positiveInt('size-mib', opts['size-mib']);
const fileCount = positiveInt('files', opts.files);
const randomReads = positiveInt('random-reads', opts['random-reads']);
const randomFileMib = positiveInt('random-file-mib', opts['random-file-mib']);
const readers = positiveInt('readers', opts.readers);
const rounds = positiveInt('rounds', opts.rounds);
const splitArgs = (s: string): string[] => s.split(/\s+/).filter((a) => a !== '');

interface Target {
  name: 'bare' | 'passthrough' | 'bindfs';
  source: string;
  /** Where the benchmark does its I/O: the mountpoint, or the source itself for the bare dir. */
  path: string;
  unmount(): Promise<void>;
}

function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

function dropCaches(): void {
  spawnSync('sync');
  const r = spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  if (r.status !== 0) throw new Error(`cannot drop caches (run as root): ${r.stderr.toString()}`);
}

async function mountPassthrough(source: string, mnt: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [PASSTHROUGH_CLI, ...splitArgs(opts['passthrough-args']), source, mnt], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('omfs-passthrough not ready after 15 s')), 15_000);
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('omfs-passthrough: mounted ')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`omfs-passthrough exited (${code}) before it was ready`));
    });
  });
  try {
    await ready;
  } catch (err) {
    await stopProcess(proc, mnt);
    throw err;
  }
  return proc;
}

async function stopProcess(proc: ChildProcess, mnt: string): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
}

async function makeTarget(name: Target['name'], root: string): Promise<Target> {
  await mkdir(root, { recursive: true });
  const source = join(root, `${name}-src`);
  const mnt = join(root, `${name}-mnt`);
  await mkdir(source);
  if (name === 'bare') return { name, source, path: source, unmount: async () => undefined };
  await mkdir(mnt);
  if (name === 'passthrough') {
    const proc = await mountPassthrough(source, mnt);
    return { name, source, path: mnt, unmount: () => stopProcess(proc, mnt) };
  }
  const r = spawnSync('bindfs', [...splitArgs(opts['bindfs-args']), source, mnt], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bindfs failed (apt-get install -y bindfs?): ${r.stderr}`);
  return {
    name,
    source,
    path: mnt,
    unmount: async () => {
      if (isMounted(mnt)) spawnSync('umount', [mnt]);
      if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    },
  };
}

/** Seconds taken by `work`, after the page cache has been dropped. */
async function timed(work: () => Promise<void>): Promise<number> {
  dropCaches();
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function writeSequential(path: string, mib: number, sync: boolean): Promise<void> {
  const block = Buffer.alloc(MIB, 0x5a);
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < mib; i++) await fh.write(block, 0, MIB, i * MIB);
    if (sync) await fh.datasync();
  } finally {
    await fh.close();
  }
}

async function readSequential(path: string): Promise<void> {
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

/** The same offsets for every target: xorshift32 from a fixed seed. */
function randomOffsets(count: number, fileBytes: number): number[] {
  const pages = fileBytes / 4096;
  let x = 0x9e3779b9;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push((x % pages) * 4096);
  }
  return out;
}

async function readRandom(path: string, offsets: number[], concurrency: number): Promise<void> {
  const one = async (slice: number[]): Promise<void> => {
    const fh = await open(path, 'r');
    const buf = Buffer.alloc(4096);
    try {
      for (const off of slice) await fh.read(buf, 0, 4096, off);
    } finally {
      await fh.close();
    }
  };
  const per = Math.ceil(offsets.length / concurrency);
  await Promise.all(Array.from({ length: concurrency }, (_, i) => one(offsets.slice(i * per, (i + 1) * per))));
}

type Figures = Record<string, number>;
const ROWS: Array<[string, string]> = [
  ['seqWrite', `seq write ${sizeMib} MiB (MB/s)`],
  ['seqRead', `seq read ${sizeMib} MiB (MB/s)`],
  ['randRead', `4 KiB random read x${readers} (IOPS)`],
  ['create', `create ${fileCount} files (/s)`],
  ['stat', `stat ${fileCount} files (/s)`],
  ['unlink', `unlink ${fileCount} files (/s)`],
];

async function measure(t: Target): Promise<Figures> {
  const f: Figures = {};
  const big = join(t.path, 'seq.bin');
  const mb = (sizeMib * MIB) / 1e6;
  f.seqWrite = mb / (await timed(() => writeSequential(big, sizeMib, opts.fdatasync)));
  f.seqRead = mb / (await timed(() => readSequential(big)));
  await unlink(big);

  const rnd = join(t.path, 'random.bin');
  await writeSequential(rnd, randomFileMib, false);
  const offsets = randomOffsets(randomReads, randomFileMib * MIB);
  f.randRead = randomReads / (await timed(() => readRandom(rnd, offsets, readers)));
  await unlink(rnd);

  const dir = join(t.path, 'files');
  await mkdir(dir);
  const names = Array.from({ length: fileCount }, (_, i) => join(dir, `f${i}`));
  f.create = fileCount / (await timed(async () => {
    for (const n of names) await (await open(n, 'wx')).close();
  }));
  f.stat = fileCount / (await timed(async () => {
    for (const n of names) await lstat(n);
  }));
  f.unlink = fileCount / (await timed(async () => {
    for (const n of names) await unlink(n);
  }));
  await rm(dir, { recursive: true });
  return f;
}

function medianFigures(list: Figures[]): Figures {
  const out: Figures = {};
  for (const [key] of ROWS) {
    const sorted = list.map((f) => f[key] ?? 0).sort((a, b) => a - b);
    out[key] = sorted[Math.floor(sorted.length / 2)] ?? 0;
  }
  return out;
}

function printTable(results: Map<Target['name'], Figures>): void {
  const cols = ['bare', 'passthrough', 'bindfs'] as const;
  const fmt = (n: number | undefined): string => (n === undefined ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const header = ['figure', ...cols, 'pt/bindfs'];
  const lines = ROWS.map(([key, label]) => {
    const pt = results.get('passthrough')?.[key];
    const bf = results.get('bindfs')?.[key];
    return [label, ...cols.map((c) => fmt(results.get(c)?.[key])), pt && bf ? (pt / bf).toFixed(2) : '-'];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(row(header));
  for (const l of lines) console.log(row(l));
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(opts.dir, 'omfs-bench-'));
  const targets: Target[] = [];
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal); // finish the current step, then unmount in `finally`
  const samples = new Map<Target['name'], Figures[]>();
  try {
    console.log(
      `bindfs ${opts['bindfs-args']} | omfs-passthrough ${opts['passthrough-args'] || '(defaults)'} | ` +
        `${opts.fdatasync ? 'fdatasync' : 'no fdatasync'} | ${rounds} round(s), median | in ${root}`,
    );
    for (let round = 1; round <= rounds && !interrupted; round++) {
      for (const name of ['bare', 'passthrough', 'bindfs'] as const) {
        if (interrupted) break;
        if (!opts.targets.split(',').includes(name)) continue;
        const t = await makeTarget(name, join(root, `r${round}`));
        targets.push(t);
        samples.set(name, [...(samples.get(name) ?? []), await measure(t)]);
        await t.unmount();
        console.error(`round ${round}: ${name} done`);
      }
    }
    const results = new Map<Target['name'], Figures>();
    for (const [name, list] of samples) results.set(name, medianFigures(list));
    printTable(results);
  } finally {
    for (const t of targets) await t.unmount();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
