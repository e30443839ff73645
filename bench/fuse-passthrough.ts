// Benchmark of the FUSE passthrough beside its baselines, in one run: the bare directory (no FUSE),
// bindfs (libfuse in C) and omfs-passthrough in three modes. Prints one table with every figure, one
// column per target, and the ratios omfs variant / bindfs (target >= 0.7 on each figure) and
// omfs-kpass / bare (target >= 0.9 on sequential and 4 KiB random reads and writes); a ratio below
// its target is marked with '!'.
//
//   node dist/bench/fuse-passthrough.js [--targets bare,bindfs,omfs,omfs-keepcache,omfs-kpass]
//        [--size-mib 512] [--random-file-mib 256] [--random-reads 20000] [--random-writes 20000]
//        [--readers 4] [--files 5000] [--dir-entries 3000] [--listings 10] [--tree DIR]
//        [--rounds 3] [--mount-per-round] [--fdatasync] [--passthrough-args=--debug]
//        [--bindfs-args="-o allow_other"]
//        [--dir /tmp] [--phase-timeout 300]
// (values that start with a dash need the --name=value form)
//
// Targets: bare = the source directory itself; bindfs = bindfs --multithreaded; omfs =
// omfs-passthrough with its defaults; omfs-keepcache = with --keep-cache; omfs-kpass = with
// --kernel-passthrough (the kernel's FUSE passthrough: reads and writes of open files go straight to
// the backing file). --passthrough-args are added to every omfs variant. A target that does not mount
// is reported in one line and skipped; one that fails on the way keeps the figures it had.
//
// Method (each target gets its own empty source dir; everything is root; "cold" means after `sync` and
// `echo 3 > /proc/sys/vm/drop_caches`, which also empties the dentry and inode caches, so every name
// is looked up again through FUSE and every byte comes from the disk):
// - seq write (cold): 1 MiB writes of a --size-mib file, then close. FUSE here has no writeback cache,
//   so each write has crossed /dev/fuse into the daemon when it returns; the backing fs may still hold
//   it in its page cache. That measures the FUSE path rather than the disk; --fdatasync adds an
//   fdatasync before close (dd conv=fdatasync) for a durable figure, which the disk then dominates.
// - seq read (cold): the same file read back with 1 MiB reads.
// - 4 KiB random read / write (cold): --random-reads pread / --random-writes pwrite of 4 KiB at
//   4 KiB-aligned offsets of a --random-file-mib file, from fixed seeds, split over --readers
//   concurrent readers or writers (each with its own descriptor); the writers' close (and fdatasync
//   with --fdatasync) is timed.
// - create / stat / rename / rename across / unlink (each cold): --files empty files made with
//   open(O_CREAT|O_EXCL)+close; lstat each (a LOOKUP each); rename each to a new name in the same
//   directory; rename each into a second directory; unlink each. One at a time.
// - readdir cold / warm: a directory of --dir-entries names (made on the source, untimed) listed with
//   getdents and no stat, like `ls -f` (node's readdir): --listings times, each after a cache drop,
//   then 10 x --listings times in a row (a warm listing takes a millisecond or two).
// - find / grep -r / rm -rf: --tree (default: this repo's node_modules, the same files on every
//   machine after `npm ci`) is copied with `cp -a` into the source dir (untimed). Then, through the
//   target: `find TREE -type f -name '*.json'` cold, then warm (the same command at once, median of
//   3); `grep -r` for a string in no file (every file read to its end) cold, then warm; and `rm -rf`
//   of the tree, cold. These figures are seconds (lower is better); their ratios are still speed
//   ratios: bindfs seconds / omfs seconds.
//
// Memory: on a VM whose virtio balloon does free page reporting (the 2-core CI VM does), pages free
// for two seconds go back to the host, and touching them again costs a fault on the host: the bare
// directory's page-cache writes ran at 300 to 600 MB/s instead of 3 to 5 GB/s, depending on what ran
// before. So the data phases (seq, random, grep) first write and delete, untimed, as much as they
// will fill, in a plain file beside the targets, right after the cache drop: the allocator hands out
// recently freed pages first. Where memory is not given back, that only costs its time.
//
// Rounds: every target is measured once per round, the order turning by one target each round; the
// table gives the median of the rounds for each figure. Each target is mounted once, before its first
// round, and measured on that mount in every round (the cache drops make each phase cold all the
// same, and each round starts from an empty source): a fresh Node daemon runs its first requests
// before V8 has compiled them, and on the 2-vCPU VM its first cold `find` after mounting took
// 300-350 ms, the second 210-250, the third 150-200 (bindfs: 160-200 each). The median of 3 rounds is
// then the daemon's steady state, as it runs for days in a cluster. --mount-per-round mounts each
// target afresh for every round instead, which measures the first minute after mounting.
//
// Cleanup: the omfs daemons run in their own process group, so a Ctrl-C reaches the bench only; the
// first SIGINT/SIGTERM/SIGHUP stops after the current step, unmounts everything, prints what was
// measured and exits 130; a second one (a second later or more) exits at once. Whatever way the
// process exits, an exit hook lazily unmounts what is still mounted and kills every child. A phase
// still running after --phase-timeout seconds has its FUSE connection aborted (fusectl), so a hung
// daemon fails that target instead of hanging the bench.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, lstat, rename, unlink } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  children, copyTree, findTree, grepTree, listDir, makeFlatDir, MIB, randomOffsets, readRandom,
  readSequential, removeTree, treeSize, writeRandom, writeSequential,
} from './fuse-workloads.js';

const PASSTHROUGH_CLI = fileURLToPath(new URL('../bin/omfs-passthrough.js', import.meta.url));
const REPO_NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));

const TARGETS = ['bare', 'bindfs', 'omfs', 'omfs-keepcache', 'omfs-kpass'] as const;
type TargetName = (typeof TARGETS)[number];
const OMFS_FLAGS: Partial<Record<TargetName, string[]>> = {
  omfs: [],
  'omfs-keepcache': ['--keep-cache'],
  'omfs-kpass': ['--kernel-passthrough'],
};
const OMFS_VARIANTS = ['omfs', 'omfs-keepcache', 'omfs-kpass'] as const;
const SHORT: Record<string, string> = { omfs: 'omfs', 'omfs-keepcache': 'keepc', 'omfs-kpass': 'kpass' };
const BINDFS_TARGET = 0.7;
const KPASS_BARE_TARGET = 0.9;
const WARM_RUNS = 3;
const WARM_LISTINGS = 10;

const CLI_CONFIG = {
  options: {
    targets: { type: 'string', default: TARGETS.join(',') },
    'size-mib': { type: 'string', default: '512' },
    'random-file-mib': { type: 'string', default: '256' },
    'random-reads': { type: 'string', default: '20000' },
    'random-writes': { type: 'string', default: '20000' },
    readers: { type: 'string', default: '4' },
    files: { type: 'string', default: '5000' },
    'dir-entries': { type: 'string', default: '3000' },
    // A cold listing on the VM varies from 5 to 16 ms (the disk, a stall of the client): the figure
    // is the total over this many, so that one slow listing moves it by a tenth, not a fifth.
    listings: { type: 'string', default: '10' },
    tree: { type: 'string', default: REPO_NODE_MODULES },
    // The machine is shared: several rounds (targets interleaved in each) and the median per figure
    // tame a neighbour's burst better than one long round.
    rounds: { type: 'string', default: '3' },
    fdatasync: { type: 'boolean', default: false },
    'mount-per-round': { type: 'boolean', default: false },
    'passthrough-args': { type: 'string', default: '' },
    // bindfs serves one request at a time unless --multithreaded; the passthrough serves many at once,
    // so the fair baseline is multithreaded. default_permissions: the passthrough mounts with it too.
    'bindfs-args': { type: 'string', default: '--multithreaded -o allow_other,default_permissions' },
    dir: { type: 'string', default: tmpdir() },
    'phase-timeout': { type: 'string', default: '300' },
  },
} as const;

function badUsage(message: string): never {
  console.error(`fuse-passthrough bench: ${message}`);
  process.exit(2);
}

function parseCli() {
  let values;
  try {
    values = parseArgs(CLI_CONFIG).values;
  } catch (err) {
    badUsage((err as Error).message);
  }
  const positiveInt = (name: keyof typeof values): number => {
    const v = String(values[name]);
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n <= 0) badUsage(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const targets = values.targets.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const t of targets) {
    if (!(TARGETS as readonly string[]).includes(t)) badUsage(`--targets: unknown target "${t}" (known: ${TARGETS.join(', ')})`);
  }
  if (targets.length === 0) badUsage('--targets names no target');
  const tree = resolve(values.tree);
  let treeIsDir = false;
  try {
    treeIsDir = statSync(tree).isDirectory();
  } catch {
    // reported below
  }
  if (!treeIsDir) badUsage(`--tree ${tree} is not a directory${values.tree === REPO_NODE_MODULES ? ' (run npm ci, or pass --tree DIR)' : ''}`);
  return {
    targets: TARGETS.filter((t) => targets.includes(t)),
    sizeMib: positiveInt('size-mib'),
    randomFileMib: positiveInt('random-file-mib'),
    randomReads: positiveInt('random-reads'),
    randomWrites: positiveInt('random-writes'),
    readers: positiveInt('readers'),
    files: positiveInt('files'),
    dirEntries: positiveInt('dir-entries'),
    listings: positiveInt('listings'),
    tree,
    rounds: positiveInt('rounds'),
    fdatasync: values.fdatasync,
    mountPerRound: values['mount-per-round'],
    passthroughArgs: splitArgs(values['passthrough-args']),
    bindfsArgs: splitArgs(values['bindfs-args']),
    dir: values.dir,
    phaseTimeout: positiveInt('phase-timeout'),
  };
}
function splitArgs(s: string): string[] {
  return s.split(/\s+/).filter((a) => a !== '');
}
const opts = parseCli();

// --- the table's rows -------------------------------------------------------------------------

interface Row {
  key: string;
  label: string;
  /** 'rate': higher is better; 'seconds': lower is better. */
  unit: 'rate' | 'seconds';
  /** The kernel passthrough's own figures: omfs-kpass / bare is shown and held to 0.9. */
  io?: true;
}
const ROWS: Row[] = [
  { key: 'seqWrite', label: `seq write ${opts.sizeMib} MiB (MB/s)`, unit: 'rate', io: true },
  { key: 'seqRead', label: `seq read ${opts.sizeMib} MiB (MB/s)`, unit: 'rate', io: true },
  { key: 'randRead', label: `4 KiB random read x${opts.readers} (IOPS)`, unit: 'rate', io: true },
  { key: 'randWrite', label: `4 KiB random write x${opts.readers} (IOPS)`, unit: 'rate', io: true },
  { key: 'create', label: `create ${opts.files} files (/s)`, unit: 'rate' },
  { key: 'stat', label: `stat ${opts.files} files (/s)`, unit: 'rate' },
  { key: 'rename', label: `rename ${opts.files} in a dir (/s)`, unit: 'rate' },
  { key: 'renameAcross', label: `rename ${opts.files} to another dir (/s)`, unit: 'rate' },
  { key: 'unlink', label: `unlink ${opts.files} files (/s)`, unit: 'rate' },
  { key: 'readdirCold', label: `readdir ${opts.dirEntries} names cold (names/s)`, unit: 'rate' },
  { key: 'readdirWarm', label: `readdir ${opts.dirEntries} names warm (names/s)`, unit: 'rate' },
  { key: 'findCold', label: 'find tree cold (s)', unit: 'seconds' },
  { key: 'findWarm', label: 'find tree warm (s)', unit: 'seconds' },
  { key: 'grepCold', label: 'grep -r tree cold (s)', unit: 'seconds' },
  { key: 'grepWarm', label: 'grep -r tree warm (s)', unit: 'seconds' },
  { key: 'rmTree', label: 'rm -rf tree cold (s)', unit: 'seconds' },
];
type Figures = Record<string, number>;

// --- process lifetime: signals and the exit hook ----------------------------------------------

/** Mount points that may still be mounted, and the daemons we started. */
const mounts = new Set<string>();
const daemons = new Set<ChildProcess>();
let benchRoot: string | undefined;
let interrupted = false;
let firstSignalAt = 0;

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

function onSignal(sig: NodeJS.Signals): void {
  if (!interrupted) {
    interrupted = true;
    firstSignalAt = Date.now();
    console.error(`\n${sig}: stopping after the current step, then unmounting (${sig} again to stop at once)`);
    for (const c of children) c.kill('SIGTERM'); // find, grep, cp, rm: their step then fails at once
    return;
  }
  if (Date.now() - firstSignalAt < 1000) return; // one Ctrl-C delivered twice (terminal and npm)
  console.error(`${sig} again: unmounting and exiting now`);
  process.exit(130);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => onSignal(sig));

/** Last resort on any exit: detach what is still mounted, kill every child, remove the scratch dir. */
process.on('exit', () => {
  for (const mnt of mounts) if (mountInfo(mnt)) spawnSync('umount', ['-l', mnt]);
  for (const c of [...children, ...daemons]) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  const stillMounted = [...mounts].some((m) => mountInfo(m));
  if (benchRoot && !stillMounted) rmSync(benchRoot, { recursive: true, force: true });
});

// --- targets --------------------------------------------------------------------------------------

interface Target {
  name: TargetName;
  /** This target's scratch dir: source, mountpoint. */
  dir: string;
  source: string;
  /** Where the benchmark does its I/O: the mountpoint, or the source itself for the bare dir. */
  path: string;
  /** Set once a stuck phase had the FUSE connection aborted. */
  aborted?: string;
  abort(reason: string): void;
  unmount(): Promise<void>;
}

/** The mount at exactly `mnt`, from /proc/self/mountinfo: its device numbers. */
function mountInfo(mnt: string): { major: number; minor: number } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== mnt) continue;
    const [major, minor] = (f[2] ?? '0:0').split(':').map(Number);
    return { major: major ?? 0, minor: minor ?? 0 };
  }
  return undefined;
}

function dropCaches(): void {
  spawnSync('sync');
  const r = spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  if (r.status !== 0) throw new Error(`cannot drop caches (run as root): ${r.stderr.toString()}`);
}

/**
 * Aborts the FUSE connection of `mnt` (every pending and later request fails with ENOTCONN), through
 * fusectl, which it mounts at its usual place if nothing did (systemd does at boot; a VM may not).
 */
function abortConnection(mnt: string): boolean {
  const info = mountInfo(mnt);
  if (!info) return false;
  const dir = '/sys/fs/fuse/connections';
  if (!mountInfo(dir)) spawnSync('mount', ['-t', 'fusectl', 'fusectl', dir]);
  const file = `${dir}/${info.minor}/abort`;
  if (!existsSync(file)) return false;
  try {
    writeFileSync(file, '1');
    return true;
  } catch {
    return false;
  }
}

async function stopDaemon(proc: ChildProcess, mnt: string): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  daemons.delete(proc);
  if (mountInfo(mnt)) spawnSync('umount', ['-l', mnt]);
  if (!mountInfo(mnt)) mounts.delete(mnt);
}

/** Starts omfs-passthrough and waits for its ready line; on failure the first line it printed. */
async function mountOmfs(name: TargetName, source: string, mnt: string): Promise<ChildProcess> {
  const args = [PASSTHROUGH_CLI, ...(OMFS_FLAGS[name] ?? []), ...opts.passthroughArgs, source, mnt];
  // Own process group: a Ctrl-C in the terminal reaches the bench, which unmounts in order.
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  daemons.add(proc);
  mounts.add(mnt);
  let ready = false;
  let errText = '';
  let errPartial = '';
  proc.stderr?.on('data', (c: Buffer) => {
    if (!ready) {
      errText = (errText + c.toString()).slice(-4000);
      return;
    }
    // Once mounted, whatever the daemon says goes to our stderr, line by line, with its name.
    const lines = (errPartial + c.toString()).split('\n');
    errPartial = lines.pop() ?? '';
    for (const l of lines) console.error(`[${name}] ${l}`);
  });
  const started = new Promise<void>((resolveReady, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('omfs-passthrough not ready after 15 s')), 15_000);
    proc.stdout?.on('data', (c: Buffer) => {
      if (ready) return;
      out += c.toString();
      if (out.includes('omfs-passthrough: mounted ')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      const first = errText.trim().split('\n')[0] ?? '';
      reject(new Error(`omfs-passthrough ${signal ? `killed by ${signal}` : `exited ${code}`} before it was ready${first ? `: ${first}` : ''}`));
    });
  });
  try {
    await started;
    if (!mountInfo(mnt)) throw new Error('omfs-passthrough said mounted, but nothing is mounted there');
  } catch (err) {
    await stopDaemon(proc, mnt);
    throw err;
  }
  ready = true;
  const tail = errText.trim();
  if (tail !== '') for (const l of tail.split('\n')) console.error(`[${name}] ${l}`);
  return proc;
}

async function makeTarget(name: TargetName, dir: string): Promise<Target> {
  const source = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  await mkdir(source, { recursive: true });
  const base = { name, dir, source, path: mnt };
  if (name === 'bare') return { ...base, path: source, abort: () => undefined, unmount: async () => undefined };
  await mkdir(mnt);
  if (name === 'bindfs') {
    mounts.add(mnt);
    const r = spawnSync('bindfs', [...opts.bindfsArgs, source, mnt], { encoding: 'utf8' });
    if (r.error || r.status !== 0 || !mountInfo(mnt)) {
      mounts.delete(mnt);
      const why = r.error ? r.error.message : (r.stderr.trim().split('\n')[0] ?? '') || `exit ${r.status}`;
      throw new Error(`bindfs: ${why}${r.error ? ' (apt-get install -y bindfs)' : ''}`);
    }
    const t: Target = {
      ...base,
      abort(reason) {
        t.aborted = reason;
        if (!abortConnection(mnt)) spawnSync('umount', ['-l', mnt]);
      },
      unmount: async () => {
        if (mountInfo(mnt)) spawnSync('umount', [mnt]);
        if (mountInfo(mnt)) spawnSync('umount', ['-l', mnt]);
        if (!mountInfo(mnt)) mounts.delete(mnt);
      },
    };
    return t;
  }
  const proc = await mountOmfs(name, source, mnt);
  const t: Target = {
    ...base,
    abort(reason) {
      t.aborted = reason;
      if (!abortConnection(mnt)) proc.kill('SIGKILL');
    },
    unmount: () => stopDaemon(proc, mnt),
  };
  return t;
}

// --- measuring --------------------------------------------------------------------------------------

/**
 * Seconds taken by `work`, after a cache drop if `cold`. `prefaultMib`: first write and delete that
 * much in a plain file beside the targets (untimed), so that the memory the phase will fill has been
 * touched within the last second (see "Memory" above).
 */
async function seconds(work: () => Promise<unknown>, cold = true, prefaultMib = 0): Promise<number> {
  if (cold) dropCaches();
  if (prefaultMib > 0 && benchRoot) {
    const file = join(benchRoot, 'prefault.bin');
    await writeSequential(file, prefaultMib, false);
    await unlink(file);
  }
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

const fmt = (n: number | undefined, unit: Row['unit'] = 'rate'): string => {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (unit === 'seconds') return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(3);
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
};

/** Fills `f` figure by figure, so a target that fails on the way keeps what it measured. */
async function measure(t: Target, round: number, treeBytes: number, f: Figures): Promise<void> {
  const rowOf = new Map(ROWS.map((r) => [r.key, r]));
  const figure = async (key: string, work: () => Promise<number>): Promise<void> => {
    const row = rowOf.get(key)!;
    await step(row.label, async () => {
      f[key] = await work();
    });
    console.error(`  round ${round} ${t.name}: ${row.label.padEnd(40)} ${fmt(f[key], row.unit)}`);
  };
  // Every step runs under the watchdog; an interrupt takes effect between steps.
  const step = async (what: string, work: () => Promise<void>): Promise<void> => {
    if (interrupted) throw new Interrupted();
    const timer = setTimeout(() => t.abort(`still running after ${opts.phaseTimeout} s, FUSE connection aborted`), opts.phaseTimeout * 1000);
    try {
      await work();
    } catch (err) {
      if (interrupted) throw new Interrupted();
      const msg = t.aborted ?? (err as Error).message;
      throw new Error(`${what}: ${msg}`);
    } finally {
      clearTimeout(timer);
    }
  };
  const p = t.path;

  const big = join(p, 'seq.bin');
  const mb = (opts.sizeMib * MIB) / 1e6;
  await figure('seqWrite', async () => mb / (await seconds(() => writeSequential(big, opts.sizeMib, opts.fdatasync), true, opts.sizeMib)));
  await figure('seqRead', async () => mb / (await seconds(() => readSequential(big), true, opts.sizeMib)));
  await step('removing seq.bin', () => unlink(big));

  const rnd = join(p, 'random.bin');
  await step('writing random.bin', () => writeSequential(rnd, opts.randomFileMib, false));
  const readOffsets = randomOffsets(opts.randomReads, opts.randomFileMib * MIB, 0x9e3779b9);
  const writeOffsets = randomOffsets(opts.randomWrites, opts.randomFileMib * MIB, 0x85ebca6b);
  await figure('randRead', async () =>
    opts.randomReads / (await seconds(() => readRandom(rnd, readOffsets, opts.readers), true, opts.randomFileMib)));
  await figure('randWrite', async () =>
    opts.randomWrites / (await seconds(() => writeRandom(rnd, writeOffsets, opts.readers, opts.fdatasync), true, opts.randomFileMib)));
  await step('removing random.bin', () => unlink(rnd));

  const dirA = join(p, 'files');
  const dirB = join(p, 'files2');
  await step('making the files dirs', async () => {
    await mkdir(dirA);
    await mkdir(dirB);
  });
  const n = opts.files;
  const names = Array.from({ length: n }, (_, i) => `f${i}`);
  await figure('create', async () => n / (await seconds(async () => {
    for (const name of names) await (await open(join(dirA, name), 'wx')).close();
  })));
  await figure('stat', async () => n / (await seconds(async () => {
    for (const name of names) await lstat(join(dirA, name));
  })));
  await figure('rename', async () => n / (await seconds(async () => {
    for (const name of names) await rename(join(dirA, name), join(dirA, `renamed-${name}`));
  })));
  await figure('renameAcross', async () => n / (await seconds(async () => {
    for (const name of names) await rename(join(dirA, `renamed-${name}`), join(dirB, name));
  })));
  await figure('unlink', async () => n / (await seconds(async () => {
    for (const name of names) await unlink(join(dirB, name));
  })));
  await step('removing the files dirs', async () => {
    await rm(dirA, { recursive: true });
    await rm(dirB, { recursive: true });
  });

  // The large directory is made on the source, behind the mount: setup, not a figure.
  const large = 'large-dir';
  await step('making the large dir', async () => makeFlatDir(join(t.source, large), opts.dirEntries));
  const listOnce = async (): Promise<void> => {
    const got = await listDir(join(p, large));
    if (got !== opts.dirEntries) throw new Error(`readdir gave ${got} names, expected ${opts.dirEntries}`);
  };
  await figure('readdirCold', async () => {
    let total = 0;
    for (let i = 0; i < opts.listings; i++) total += await seconds(listOnce);
    return (opts.dirEntries * opts.listings) / total;
  });
  await figure('readdirWarm', async () => {
    let total = 0;
    for (let i = 0; i < WARM_LISTINGS * opts.listings; i++) total += await seconds(listOnce, false);
    return (opts.dirEntries * WARM_LISTINGS * opts.listings) / total;
  });
  await step('removing the large dir', () => rm(join(t.source, large), { recursive: true }));

  // The tree is copied into the source, behind the mount (untimed), and walked through the target.
  const tree = join(p, 'tree');
  await step('copying the tree', () => copyTree(opts.tree, join(t.source, 'tree')));
  const treeMib = Math.ceil(treeBytes / MIB);
  const coldWarm = async (cold: string, warm: string, walk: (root: string) => Promise<void>, prefaultMib: number): Promise<void> => {
    await figure(cold, () => seconds(() => walk(tree), true, prefaultMib));
    await figure(warm, async () => {
      const runs: number[] = [];
      for (let i = 0; i < WARM_RUNS; i++) runs.push(await seconds(() => walk(tree), false));
      return median(runs);
    });
  };
  await coldWarm('findCold', 'findWarm', findTree, 0);
  await coldWarm('grepCold', 'grepWarm', grepTree, treeMib);
  await figure('rmTree', () => seconds(() => removeTree(tree)));
  if (existsSync(join(t.source, 'tree'))) throw new Error('rm -rf tree: the tree is still there in the source');
}

// --- the table -------------------------------------------------------------------------------------

function mediansOf(list: Figures[]): Figures {
  const out: Figures = {};
  for (const { key } of ROWS) {
    const values = list.map((f) => f[key]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (values.length > 0) out[key] = median(values);
  }
  return out;
}

/** How much faster `a` is than `b` on this row (> 1: a is faster); undefined if either is missing. */
function speedRatio(row: Row, a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || a <= 0 || b <= 0) return undefined;
  return row.unit === 'rate' ? a / b : b / a;
}

function printTable(results: Map<TargetName, Figures>): void {
  const cols = TARGETS.filter((t) => results.has(t));
  interface RatioCol { header: string; of: TargetName; to: TargetName; target: number; rows?: (r: Row) => boolean }
  const ratioCols: RatioCol[] = [];
  if (results.has('bindfs')) {
    for (const v of OMFS_VARIANTS) {
      if (results.has(v)) ratioCols.push({ header: `${SHORT[v]}/bindfs`, of: v, to: 'bindfs', target: BINDFS_TARGET });
    }
  }
  if (results.has('omfs-kpass') && results.has('bare')) {
    ratioCols.push({ header: 'kpass/bare', of: 'omfs-kpass', to: 'bare', target: KPASS_BARE_TARGET, rows: (r) => r.io === true });
  }
  const below: string[] = [];
  let ratioCount = 0;
  const header = ['figure', ...cols, ...ratioCols.map((c) => c.header)];
  const lines = ROWS.map((row) => {
    const cells = [row.label, ...cols.map((c) => fmt(results.get(c)?.[row.key], row.unit))];
    for (const rc of ratioCols) {
      const applies = rc.rows?.(row) ?? true;
      const r = applies ? speedRatio(row, results.get(rc.of)?.[row.key], results.get(rc.to)?.[row.key]) : undefined;
      if (r === undefined) {
        cells.push(applies ? '-' : '');
        continue;
      }
      ratioCount++;
      const low = r < rc.target;
      if (low) below.push(`${rc.header} ${row.label}`);
      cells.push(`${r.toFixed(2)}${low ? ' !' : '  '}`);
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(row(header));
  for (const l of lines) console.log(row(l));
  if (ratioCols.length > 0) {
    console.log(
      `ratios: speed of the omfs variant / the baseline (for the seconds rows: baseline s / variant s); ` +
        `keepc = omfs-keepcache, kpass = omfs-kpass.`,
    );
    console.log(
      `! = below target: >= ${BINDFS_TARGET} against bindfs on every figure; >= ${KPASS_BARE_TARGET} kpass/bare ` +
        `on seq write, seq read, 4 KiB random read and write. ${below.length} of ${ratioCount} ratios below target.`,
    );
  }
}

async function main(): Promise<number> {
  dropCaches(); // fails early without root
  const root = await mkdtemp(join(opts.dir, 'omfs-bench-'));
  benchRoot = root;
  const size = treeSize(opts.tree);
  console.log(
    `targets ${opts.targets.join(',')} | bindfs ${opts.bindfsArgs.join(' ')} | omfs-passthrough extra args: ` +
      `${opts.passthroughArgs.join(' ') || '(none)'} | ${opts.fdatasync ? 'fdatasync' : 'no fdatasync'} | ` +
      `${opts.rounds} round(s), median | kernel ${release()} | in ${root}`,
  );
  console.log(
    `tree ${opts.tree}: ${size.files} files, ${size.dirs} dirs, ${size.others} others, ${(size.bytes / 1e6).toFixed(0)} MB`,
  );
  const samples = new Map<TargetName, Figures[]>();
  const skipped = new Map<TargetName, string>();
  const notes: string[] = [];
  let failed = false;
  /** Targets mounted and kept for the next round (all of them, unless --mount-per-round). */
  const live = new Map<TargetName, Target>();
  const drop = async (t: Target): Promise<void> => {
    live.delete(t.name);
    await t.unmount();
    if (!mountInfo(join(t.dir, 'mnt'))) await rm(t.dir, { recursive: true, force: true });
  };
  try {
    for (let round = 1; round <= opts.rounds && !interrupted; round++) {
      // Each round starts one target further, so no target is always first or always after another.
      const shift = (round - 1) % opts.targets.length;
      for (const name of [...opts.targets.slice(shift), ...opts.targets.slice(0, shift)]) {
        if (interrupted) break;
        if (skipped.has(name)) continue;
        let t = live.get(name);
        if (!t) {
          try {
            t = await makeTarget(name, join(root, opts.mountPerRound ? `r${round}` : 'all', name));
            live.set(name, t);
          } catch (err) {
            const msg = `${name}: did not mount, skipped: ${(err as Error).message}`;
            skipped.set(name, msg);
            console.error(msg);
            continue;
          }
        }
        const f: Figures = {};
        samples.set(name, [...(samples.get(name) ?? []), f]);
        let ok = false;
        try {
          await measure(t, round, size.bytes, f);
          ok = true;
          console.error(`round ${round}: ${name} done`);
        } catch (err) {
          if (!(err instanceof Interrupted)) {
            failed = true;
            const msg = `${name}, round ${round}: failed in ${(err as Error).message}`;
            notes.push(msg);
            console.error(msg);
          }
        } finally {
          // A target that failed may hold leftovers (or a dead daemon): the next round mounts afresh.
          if (!ok || opts.mountPerRound || round === opts.rounds) await drop(t);
        }
      }
    }
  } finally {
    for (const t of [...live.values()]) await drop(t);
    for (const mnt of mounts) if (mountInfo(mnt)) spawnSync('umount', ['-l', mnt]);
  }
  const results = new Map<TargetName, Figures>();
  for (const [name, list] of samples) results.set(name, mediansOf(list));
  if (results.size > 0) printTable(results);
  for (const msg of [...skipped.values(), ...notes]) console.log(msg);
  if (interrupted) {
    console.log('interrupted: the figures above are what was measured before the signal');
    return 130;
  }
  return failed || results.size === 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code), // the exit hook removes the scratch dir
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
