// Issue 10: the FUSE layer's POSIX suite on /mfs. The differential driver (test/differential/)
// runs the same seeded random syscall sequences, as root, uid 1000 and uid 1001, on a plain
// directory (the oracle) and on a directory under /mfs, and compares every answer and errno, the
// whole tree after each step (types, modes, owners, sizes, contents, xattrs, hard links, pinned
// times) and every open fd. The /mfs sides:
// - /mfs/1 through node 1's mfs-mount: this node's own export, reached through a session;
// - /mfs/2 through node 1's mfs-mount: another node's export;
// - /mfs/3 through the mount that node 3's mfsd hosts itself: its own export in process (the
//   local link, DFSA's short-circuit).
// A difference fails with the seed, the step, the operation, both answers and the last steps.
//
// The operations are the differential suite's own generator's, minus what /mfs documents as not
// served (fuse/mfs/mfs-fs.ts, the header): nothing else of the comparison is relaxed.
// - mknod of character and block devices: not served by /mfs by design, as in oMFS (EPERM; a
//   device would be this machine's driver, not the node's).
//
//   POSIX_SEEDS=3 POSIX_OPS=42 npx vitest run test/mfs/posix-on-mfs.test.ts -t '/mfs/2'
// replays seed 3 up to step 41 (what a failure message says to run); DIFF_TRACE=1 prints every step.
import { afterAll, beforeAll, describe, test } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Differ, removeTree, Side } from '../differential/driver.js';
import { Generator, initialTree, S_IFBLK, S_IFCHR, type Step } from '../differential/ops.js';
import { makeTempDir } from '../harness/passthrough-mount.js';
import { startCluster, type Cluster } from '../harness/mfs-cluster3.js';
import { startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';

const SEEDS = (process.env.POSIX_SEEDS ?? '1,2,3').split(',').map((s) => Number(s.trim()));
const OPS = Number(process.env.POSIX_OPS ?? 120);
const TIMEOUT_MS = 180_000;

let c: Cluster | undefined;
let hosting: HostingMfsd | undefined;

beforeAll(async () => {
  c = await startCluster({ nodes: 2 });
  hosting = await startHostingMfsd({ ca: c.ca, nodeId: 3, others: c.daemons });
}, 120_000);

afterAll(async () => {
  await hosting?.cleanup();
  await c?.cleanup();
}, 60_000);

interface Target {
  /** How the test names it (-t). */
  name: string;
  /** The directory under /mfs to run in. */
  mfs: () => string;
  /** The same directory on the node's disk (the cleanup's fallback). */
  disk: () => string;
}

const TARGETS: Target[] = [
  { name: '/mfs/1 (this node, mfs-mount)', mfs: () => join(c!.mount(1), '1'), disk: () => c!.exportOf(1) },
  { name: '/mfs/2 (other node, mfs-mount)', mfs: () => join(c!.mount(1), '2'), disk: () => c!.exportOf(2) },
  { name: '/mfs/3 (this node, mfsd-hosted)', mfs: () => hosting!.own, disk: () => hosting!.daemon.exports[0]!.path },
];

const replay = (t: Target, seed: number) => (i: number): string =>
  `POSIX_SEEDS=${seed} POSIX_OPS=${i + 1} npx vitest run test/mfs/posix-on-mfs.test.ts -t '${t.name}'`;

/** The step as /mfs is asked it (see the top of this file), or null when /mfs does not serve it. */
function onMfs(step: Step): Step | null {
  const op = step.op;
  if (op.op === 'mknod' && [S_IFCHR, S_IFBLK].includes(op.mode & 0o170000)) return null;
  return step;
}

/** The suite's runSequence with the ops set of onMfs: the initial tree, then `ops` random steps. */
async function runOnMfs(t: Target, seed: number, ops: number, a: Side, b: Side): Promise<Differ['stats']> {
  const differ = new Differ(a, b);
  for (const [i, step] of initialTree().entries()) await differ.step(step, { where: `seed ${seed}, setup ${i}`, replay: replay(t, seed)(0) });
  const gen = new Generator(seed);
  for (let i = 0; i < ops; i++) {
    const generated = gen.next();
    const step = onMfs(generated);
    // A step left out is neither run nor observed: the generator's stream does not depend on it.
    if (!step) continue;
    const rb = await differ.step(step, { where: `seed ${seed}, step ${i}`, replay: replay(t, seed)(i) });
    gen.observe(step, rb);
  }
  return differ.stats;
}

/** Runs fn with a fresh directory under the target and a fresh bare one, then removes both. */
async function withMfsSides(t: Target, seed: number, fn: (a: Side, b: Side) => Promise<unknown>): Promise<void> {
  const name = `posix-seed-${seed}`;
  fs.mkdirSync(join(t.mfs(), name), { mode: 0o755 });
  const bare = await makeTempDir('omfs-posix-bare-');
  const sides: Side[] = [];
  try {
    sides.push(new Side('mfs', join(t.mfs(), name)));
    sides.push(new Side('bare', bare));
    await fn(sides[0]!, sides[1]!);
  } finally {
    await Promise.all(sides.map((s) => s.close(5_000)));
    removeTree(bare);
    // Through the mount (GNU rm walks with directory fds: paths over PATH_MAX go too), as a user
    // would; only if that fails, on the node's disk, so the next seed still starts clean.
    try {
      removeTree(join(t.mfs(), name));
    } catch {
      removeTree(join(t.disk(), name));
    }
  }
}

for (const t of TARGETS) {
  describe(`${t.name} vs a bare directory`, () => {
    for (const seed of SEEDS) {
      test(`seed ${seed}, ${OPS} ops`, async () => {
        await withMfsSides(t, seed, async (a, b) => {
          const stats = await runOnMfs(t, seed, OPS, a, b);
          if (process.env.DIFF_TRACE) process.stderr.write(`${t.name} seed ${seed}: ${JSON.stringify(stats)}\n`);
        });
      }, TIMEOUT_MS);
    }
  });
}
