// The /mfs benchmark of issue 10, in one go on this machine: node 1 working in /mfs/2 (two mfsd
// with mutual TLS, the cluster mounted as node 1 by mfs-mount), sshfs of node 2's export over
// loopback (our own sshd on 127.0.0.1, default sshfs options), and node 2's bare export directory.
// Prints one table: each figure for mfs, sshfs and bare, the ratios mfs/sshfs and mfs/bare, the
// target and pass or FAIL. A benchmark, not a test: it exits 0 whatever the ratios, 1 if something
// broke (setup, a workload), 130 when interrupted.
//
//   npm run bench:mfs -- [--size-mib 1024] [--files 5000] [--rounds 3] [--random-reads 20000]
//        [--readers 4] [--targets mfs,sshfs,bare] [--dir /tmp] [--phase-timeout 600]
//
// Must run as root (FUSE mounts, sshd, cache drops); installs sshfs and openssh-server with apt-get
// if missing. Never touches /etc/ssh or ~/.ssh (see bench/mfs-ssh.ts); everything else lives in a
// scratch dir under --dir, removed at the end.
//
// Method (every target works in its own directory inside node 2's export; "cold" = `sync` and
// `echo 3 > /proc/sys/vm/drop_caches` right before, which also empties the dentry and inode caches):
// - seq write (cold): --size-mib MiB in 1 MiB writes, then close. No fsync: /mfs writes through to
//   node 2 and sshfs sends each write to its sftp server, both into node 2's page cache, the same
//   place the bare write lands; that measures the path, not the disk.
// - seq read (cold): the file read back in 1 MiB reads; every byte comes from the disk.
// - re-read (cached): the same read again at once: the page cache of the mount (or of the bare dir).
// - 4 KiB random read (cold): --random-reads preads of 4 KiB at 4 KiB-aligned offsets of that file
//   (fixed seed), split over --readers concurrent readers, each with its own descriptor.
// - create / stat / rename / unlink (each cold): --files empty files made with open(O_CREAT|O_EXCL)
//   and close; lstat each; rename each to a new name in the same directory; unlink each. One at a
//   time, as a shell script or make would.
// Memory: a VM whose balloon gives free pages back to the host makes the first touch of memory slow,
// so the data phases first write and delete (untimed) as much as they will fill, in a plain file
// beside the targets (the reasoning is in bench/fuse-passthrough.ts).
// Rounds: every target once per round, the order turning by one each round; the table gives the
// median of the rounds for each figure. Default 3 rounds: the machine is shared, and a median of
// three interleaved rounds tames a neighbour's burst better than one long round.
// Cleanup: the daemons run in their own process group, so a Ctrl-C reaches the bench only; the first
// SIGINT/SIGTERM/SIGHUP stops after the current step, unmounts, stops the daemons, prints what was
// measured; a second one exits at once. Whatever way it exits, the exit hook detaches the mounts,
// kills the daemons and removes the scratch dir. A step still running after --phase-timeout
// seconds has its FUSE connection aborted (fusectl), so a hung mount fails the run instead of hanging.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { lstat, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MIB, randomOffsets, readRandom, readSequential, writeSequential } from './fuse-workloads.js';
import { startMfsCluster, type MfsCluster } from './mfs-nodes.js';
import { cpuMeter } from './mfs-cpu.js';
import { abortFuse, cleanupNow, stopDaemon, trackScratch, type Daemon } from './mfs-procs.js';
import { ensureSshPackages, mountSshfs, startSshd, type Sshd, type SshfsMount } from './mfs-ssh.js';

const TARGETS = ['mfs', 'sshfs', 'bare'] as const;
type TargetName = (typeof TARGETS)[number];

function badUsage(message: string): never {
  console.error(`mfs-vs-sshfs bench: ${message}`);
  process.exit(2);
}

function parseCli() {
  let values;
  try {
    values = parseArgs({
      options: {
        'size-mib': { type: 'string', default: '1024' },
        files: { type: 'string', default: '5000' },
        rounds: { type: 'string', default: '3' },
        'random-reads': { type: 'string', default: '20000' },
        readers: { type: 'string', default: '4' },
        targets: { type: 'string', default: TARGETS.join(',') },
        dir: { type: 'string', default: tmpdir() },
        'phase-timeout': { type: 'string', default: '600' },
      },
    }).values;
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
  for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) badUsage(`--targets: unknown "${t}" (known: ${TARGETS.join(', ')})`);
  if (targets.length === 0) badUsage('--targets names no target');
  return {
    sizeMib: positiveInt('size-mib'),
    files: positiveInt('files'),
    rounds: positiveInt('rounds'),
    randomReads: positiveInt('random-reads'),
    readers: positiveInt('readers'),
    targets: TARGETS.filter((t) => targets.includes(t)),
    dir: values.dir,
    phaseTimeout: positiveInt('phase-timeout'),
  };
}
const opts = parseCli();

// --- the table's rows -------------------------------------------------------------------------

interface Row {
  key: string;
  label: string;
  /** The issue's target for this figure: mfs / `against` >= `min`. */
  target?: { against: 'sshfs' | 'bare'; min: number };
}
const ROWS: Row[] = [
  { key: 'seqWrite', label: `seq write ${opts.sizeMib} MiB (MB/s)`, target: { against: 'sshfs', min: 1.5 } },
  { key: 'seqRead', label: `seq read ${opts.sizeMib} MiB cold (MB/s)`, target: { against: 'sshfs', min: 1.5 } },
  { key: 'reread', label: `re-read ${opts.sizeMib} MiB cached (MB/s)`, target: { against: 'bare', min: 0.9 } },
  { key: 'randRead', label: `4 KiB random read x${opts.readers} cold (IOPS)` },
  { key: 'create', label: `create ${opts.files} files (/s)`, target: { against: 'sshfs', min: 2 } },
  { key: 'stat', label: `stat ${opts.files} files (/s)`, target: { against: 'sshfs', min: 2 } },
  { key: 'rename', label: `rename ${opts.files} files (/s)`, target: { against: 'sshfs', min: 2 } },
  { key: 'unlink', label: `unlink ${opts.files} files (/s)`, target: { against: 'sshfs', min: 2 } },
];
type Figures = Record<string, number>;
/**
 * The two sides that serve a FUSE target: the client (mfs-mount; sshfs and its ssh) on node 1 and
 * the server (node 2's mfsd; sshd's session and sftp-server) on node 2.
 */
const SIDES = ['client', 'server'] as const;
type Side = (typeof SIDES)[number];
/** Where a figure's CPU of one side is kept: CPU seconds per wall second (cores). */
const cpuKey = (key: string, side: Side): string => `${key}:${side}-cores`;

// --- signals and the exit hook ----------------------------------------------------------------

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
    return;
  }
  if (Date.now() - firstSignalAt < 1000) return; // one Ctrl-C delivered twice (terminal and npm)
  console.error(`${sig} again: unmounting and exiting now`);
  process.exit(130);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => onSignal(sig));
process.on('exit', cleanupNow);

// --- measuring ----------------------------------------------------------------------------------

let scratch = '';

function dropCaches(): void {
  spawnSync('sync');
  const r = spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  if (r.status !== 0) throw new Error(`cannot drop caches (run as root): ${r.stderr.toString().trim()}`);
}

/** The serving processes of the target being measured, and what the last timed work cost them. */
const phase = { servers: { client: [] as number[], server: [] as number[] }, wall: 0, cpu: { client: 0, server: 0 } };

/**
 * Seconds taken by `work`, after a cache drop if `cold`, after touching `prefaultMib` MiB of memory.
 * Leaves its wall time and the CPU seconds of the target's serving processes in `phase`.
 */
async function seconds(work: () => Promise<unknown>, cold = true, prefaultMib = 0): Promise<number> {
  if (cold) dropCaches();
  if (prefaultMib > 0) {
    const file = join(scratch, 'prefault.bin');
    await writeSequential(file, prefaultMib, false);
    await unlink(file);
  }
  const client = cpuMeter(phase.servers.client);
  const server = cpuMeter(phase.servers.server);
  const start = process.hrtime.bigint();
  await work();
  phase.wall = Number(process.hrtime.bigint() - start) / 1e9;
  phase.cpu = { client: client(), server: server() };
  return phase.wall;
}

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

const fmt = (n: number | undefined): string => {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
};

interface Target {
  name: TargetName;
  /** Where this target's workloads run. */
  path: string;
  /** The FUSE mount to abort when a step hangs (none for the bare dir). */
  mount?: string;
  /** Pids of the processes that serve it, per side (with their descendants): their CPU is shown per figure. */
  servers: Record<Side, number[]>;
}

/** Fills `f` figure by figure, so a target that fails on the way keeps what it measured. */
async function measure(t: Target, round: number, f: Figures): Promise<void> {
  phase.servers = t.servers;
  let aborted: string | undefined;
  const step = async (what: string, work: () => Promise<void>): Promise<void> => {
    if (interrupted) throw new Interrupted();
    const timer = setTimeout(() => {
      aborted = `still running after ${opts.phaseTimeout} s, FUSE connection aborted`;
      if (t.mount) abortFuse(t.mount);
    }, opts.phaseTimeout * 1000);
    try {
      await work();
    } catch (err) {
      if (interrupted) throw new Interrupted();
      throw new Error(`${what}: ${aborted ?? (err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  };
  const rowOf = new Map(ROWS.map((r) => [r.key, r]));
  const figure = async (key: string, work: () => Promise<number>): Promise<void> => {
    const row = rowOf.get(key)!;
    await step(row.label, async () => {
      f[key] = await work();
    });
    let cores = '';
    if (t.servers.client.length > 0 && phase.wall > 0) {
      for (const side of SIDES) f[cpuKey(key, side)] = phase.cpu[side] / phase.wall;
      cores = ` (cores: client ${fmt(f[cpuKey(key, 'client')])}, server ${fmt(f[cpuKey(key, 'server')])})`;
    }
    console.error(`  round ${round} ${t.name.padEnd(5)}: ${row.label.padEnd(36)} ${fmt(f[key])}${cores}`);
  };

  await step('making the work dir', () => mkdir(t.path));
  const big = join(t.path, 'seq.bin');
  const bytes = opts.sizeMib * MIB;
  const mb = bytes / 1e6;
  await figure('seqWrite', async () => mb / (await seconds(() => writeSequential(big, opts.sizeMib, false), true, opts.sizeMib)));
  await step('checking seq.bin', async () => {
    const { size } = await lstat(big);
    if (size !== bytes) throw new Error(`seq.bin has ${size} bytes, expected ${bytes}`);
  });
  await figure('seqRead', async () => mb / (await seconds(() => readSequential(big), true, opts.sizeMib)));
  await figure('reread', async () => mb / (await seconds(() => readSequential(big), false)));
  const offsets = randomOffsets(opts.randomReads, bytes, 0x9e3779b9);
  await figure('randRead', async () => opts.randomReads / (await seconds(() => readRandom(big, offsets, opts.readers))));
  await step('removing seq.bin', () => unlink(big));

  const dir = join(t.path, 'files');
  await step('making the files dir', () => mkdir(dir));
  const n = opts.files;
  const names = Array.from({ length: n }, (_, i) => `f${i}`);
  await figure('create', async () => n / (await seconds(async () => {
    for (const name of names) await (await open(join(dir, name), 'wx')).close();
  })));
  await figure('stat', async () => n / (await seconds(async () => {
    for (const name of names) await lstat(join(dir, name));
  })));
  await figure('rename', async () => n / (await seconds(async () => {
    for (const name of names) await rename(join(dir, name), join(dir, `renamed-${name}`));
  })));
  await figure('unlink', async () => n / (await seconds(async () => {
    for (const name of names) await unlink(join(dir, `renamed-${name}`));
  })));
  await step('removing the work dir', () => rm(t.path, { recursive: true }));
}

// --- the table -------------------------------------------------------------------------------------

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || !(a > 0) || !(b > 0) ? undefined : a / b;
}

function printTable(results: Map<TargetName, Figures>): void {
  const header = ['figure', 'mfs', 'sshfs', 'bare', 'mfs/sshfs', 'mfs/bare', 'target', ''];
  let passed = 0;
  let judged = 0;
  const lines = ROWS.map((row) => {
    const v = (t: TargetName): number | undefined => results.get(t)?.[row.key];
    const toSshfs = ratio(v('mfs'), v('sshfs'));
    const toBare = ratio(v('mfs'), v('bare'));
    let target = '';
    let mark = '';
    if (row.target) {
      target = `>= ${row.target.min}x ${row.target.against}`;
      const r = row.target.against === 'sshfs' ? toSshfs : toBare;
      if (r !== undefined) {
        judged++;
        const ok = r >= row.target.min;
        if (ok) passed++;
        mark = ok ? 'pass' : 'FAIL';
      } else mark = '-';
    }
    const r2 = (r: number | undefined): string => (r === undefined ? '-' : r.toFixed(2));
    return [row.label, fmt(v('mfs')), fmt(v('sshfs')), fmt(v('bare')), r2(toSshfs), r2(toBare), target, mark];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 || i >= 6 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  console.log(line(header));
  for (const l of lines) console.log(line(l));
  console.log(`ratios: mfs figure / the other's (all figures: higher is faster). ${passed} of ${judged} targets met.`);
  if (results.has('sshfs')) {
    // What the sshfs figures are, so that nobody reads them as the same guarantees as /mfs's.
    console.log(
      'sshfs with its defaults answers stat from names and attributes it cached itself (20 s, no invalidation), ' +
        'returns from write before the server has the data (errors surface at close), and drops the page cache at each open; ' +
        '/mfs does a round trip to node 2 for each of these and keeps its pages while callbacks say they are valid.',
    );
  }
  const cpuCols = [
    { target: 'mfs', side: 'client', header: 'mfs-mount' }, { target: 'mfs', side: 'server', header: 'mfsd 2' },
    { target: 'sshfs', side: 'client', header: 'sshfs+ssh' }, { target: 'sshfs', side: 'server', header: 'sshd+sftp' },
  ].filter((c) => results.has(c.target as TargetName)) as { target: TargetName; side: Side; header: string }[];
  if (cpuCols.length === 0) return;
  console.log(
    `\nCPU of the processes serving each figure, in cores (their CPU s / wall s; this machine has ${availableParallelism()}): ` +
      `mfs-mount; node 2's mfsd; sshfs and its ssh; sshd's session process and sftp-server`,
  );
  const cpuHeader = ['figure', ...cpuCols.map((c) => c.header)];
  const cpuLines = ROWS.map((row) => [row.label, ...cpuCols.map((c) => fmt(results.get(c.target)?.[cpuKey(row.key, c.side)]))]);
  const cw = cpuHeader.map((h, i) => Math.max(h.length, ...cpuLines.map((l) => (l[i] ?? '').length)));
  const cpuLine = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(cw[i] ?? 0) : c.padStart(cw[i] ?? 0))).join('  ');
  console.log(cpuLine(cpuHeader));
  for (const l of cpuLines) console.log(cpuLine(l));
}

function versions(): string {
  // The line naming the program: sshfs --version starts with fusermount3's line.
  const line = (cmd: string, args: string[], name: RegExp): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => name.test(l))?.trim() ?? `${cmd} ?`;
  };
  return `${line('sshfs', ['--version'], /^SSHFS version/)}; ${line('ssh', ['-V'], /^OpenSSH/)}`;
}

async function main(): Promise<number> {
  dropCaches(); // fails early without root
  if (opts.targets.includes('sshfs')) ensureSshPackages();
  scratch = mkdtempSync(join(opts.dir, 'omfs-mfs-bench-'));
  trackScratch(scratch);
  console.log(
    `mfs vs sshfs vs bare | ${opts.sizeMib} MiB, ${opts.randomReads} random reads x${opts.readers}, ${opts.files} files | ` +
      `${opts.rounds} round(s), median | kernel ${release()}, ${availableParallelism()} CPUs, load ${loadavg().map((l) => l.toFixed(1)).join(' ')} | ${opts.targets.includes('sshfs') ? versions() : 'no sshfs'} | in ${scratch}`,
  );
  let cluster: MfsCluster | undefined;
  let sshd: Sshd | undefined;
  let sshfs: SshfsMount | undefined;
  const samples = new Map<TargetName, Figures[]>();
  const notes: string[] = [];
  let failed = false;
  try {
    // The cluster is always started: the bare target is node 2's export.
    cluster = await startMfsCluster(join(scratch, 'cluster'));
    const export2 = cluster.exportOf(2);
    if (opts.targets.includes('sshfs')) {
      sshd = await startSshd(join(scratch, 'ssh'));
      sshfs = await mountSshfs(sshd, export2, join(scratch, 'sshfs'), join(scratch, 'sshfs.log'));
    }
    console.log(`node 2's export ${export2}; /mfs of node 1 at ${cluster.mnt}${sshfs ? `; sshfs at ${sshfs.mnt}` : ''}`);
    const targetOf = (name: TargetName): Target => {
      const pids = (...ds: (Daemon | undefined)[]): number[] => ds.map((d) => d?.proc.pid).filter((p): p is number => p !== undefined);
      if (name === 'mfs') return { name, path: join(cluster!.mnt, '2', 'bench-mfs'), mount: cluster!.mnt, servers: { client: pids(cluster!.mount), server: pids(cluster!.mfsdOf(2)) } };
      if (name === 'sshfs') return { name, path: join(sshfs!.mnt, 'bench-sshfs'), mount: sshfs!.mnt, servers: { client: pids(sshfs!.daemon), server: pids(sshd!.daemon) } };
      return { name, path: join(export2, 'bench-bare'), servers: { client: [], server: [] } };
    };
    for (let round = 1; round <= opts.rounds && !interrupted; round++) {
      // Each round starts one target further, so no target is always first or always after another.
      const shift = (round - 1) % opts.targets.length;
      for (const name of [...opts.targets.slice(shift), ...opts.targets.slice(0, shift)]) {
        if (interrupted) break;
        const f: Figures = {};
        samples.set(name, [...(samples.get(name) ?? []), f]);
        try {
          await measure(targetOf(name), round, f);
        } catch (err) {
          if (err instanceof Interrupted) break;
          failed = true;
          const msg = `${name}, round ${round}: failed in ${(err as Error).message}`;
          notes.push(msg);
          console.error(msg);
          // Leave no half-done work dir for the next round of this target.
          await rm(targetOf(name).path, { recursive: true, force: true }).catch(() => undefined);
        }
      }
    }
  } catch (err) {
    failed = true;
    notes.push(`setup failed: ${(err as Error).message}`);
  } finally {
    await sshfs?.stop();
    if (sshd) await stopDaemon(sshd.daemon, 5_000);
    await cluster?.stop();
  }
  const results = new Map<TargetName, Figures>();
  for (const [name, list] of samples) {
    const out: Figures = {};
    for (const key of ROWS.flatMap((r) => [r.key, ...SIDES.map((side) => cpuKey(r.key, side))])) {
      const values = list.map((f) => f[key]).filter((v): v is number => v !== undefined && Number.isFinite(v));
      if (values.length > 0) out[key] = median(values);
    }
    results.set(name, out);
  }
  if (results.size > 0) printTable(results);
  for (const msg of notes) console.log(msg);
  if (interrupted) {
    console.log('interrupted: the figures above are what was measured before the signal');
    return 130;
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code), // the exit hook removes the scratch dir
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
