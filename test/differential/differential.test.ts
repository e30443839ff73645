// The differential test against the bare directory, the project's oracle: the same long random
// sequence of filesystem calls (ops.ts) on the mount and on a plain directory of the same ext4,
// every answer and errno compared, and after every step the whole tree and every open fd.
//
//   DIFF_SEEDS=3,7 DIFF_OPS=120 npx vitest run test/differential/differential.test.ts
// replays seeds 3 and 7 up to step 119 (what a failure message says to run). DIFF_MOUNT_ARGS adds
// options to the mount (e.g. "--kernel-passthrough" or "--keep-cache"); DIFF_TRACE=1 prints every step.
//
// "bare vs bare" runs the same sequences on two plain directories: the harness's self-check, which
// must always pass (if it fails, the comparison is too strict or a pin rule in driver.ts is wrong).
import { describe, expect, test } from 'vitest';
import { runSequence, withSides } from './driver.js';

const SEEDS = (process.env.DIFF_SEEDS ?? '1,2,3,4,5,6,7,8,9,10,11,12').split(',').map((s) => Number(s.trim()));
/** The self-check runs the first 6 seeds by default (to keep the suite near 2 minutes), all given ones when asked. */
const SELF_CHECK_SEEDS = process.env.DIFF_SEEDS ? SEEDS : SEEDS.slice(0, 6);
const OPS = Number(process.env.DIFF_OPS ?? 250);
const MOUNT_ARGS = (process.env.DIFF_MOUNT_ARGS ?? '').split(/\s+/).filter(Boolean);
const TIMEOUT_MS = 180_000;

if (SEEDS.some((s) => !Number.isInteger(s)) || !Number.isInteger(OPS) || OPS < 0) {
  throw new Error(`DIFF_SEEDS must be integers separated by commas and DIFF_OPS a count (got ${process.env.DIFF_SEEDS}, ${process.env.DIFF_OPS})`);
}

/**
 * --keep-cache answers OPEN with ENOSYS (openless: the kernel opens files on its own and all I/O
 * comes with fh 0), a path of its own through the passthrough: checked on seeds of its own by
 * default. With DIFF_SEEDS or DIFF_MOUNT_ARGS given, only the suite above runs them.
 */
const KEEP_CACHE_SEEDS = process.env.DIFF_SEEDS || MOUNT_ARGS.length ? [] : [13, 14, 15, 16, 17, 18];
const KEEP_CACHE_ARGS = ['--keep-cache'];

const replay = (seed: number, which: string, args = MOUNT_ARGS) => (i: number): string =>
  `${args.length ? `DIFF_MOUNT_ARGS='${args.join(' ')}' ` : ''}DIFF_SEEDS=${seed} DIFF_OPS=${i + 1} npx vitest run test/differential/differential.test.ts -t '${which}'`;

describe('bare vs bare (the harness checks itself: must always pass)', () => {
  for (const seed of SELF_CHECK_SEEDS) {
    test(`seed ${seed}, ${OPS} ops`, async () => {
      await withSides({ mount: false }, async (a, b) => {
        const stats = await runSequence({ seed, ops: OPS, a, b, replay: replay(seed, 'bare vs bare') });
        if (process.env.DIFF_TRACE) process.stderr.write(`seed ${seed}: ${JSON.stringify(stats)}\n`);
        // The self-check must have compared something: times to the nanosecond among it.
        expect(stats.names).toBeGreaterThan(0);
        if (OPS >= 100) expect(stats.pinnedTimes).toBeGreaterThan(0);
      });
    }, TIMEOUT_MS);
  }
});

describe('mount vs bare directory', () => {
  for (const seed of SEEDS) {
    test(`seed ${seed}, ${OPS} ops`, async () => {
      await withSides({ mount: true, mountArgs: MOUNT_ARGS }, async (a, b) => {
        const stats = await runSequence({ seed, ops: OPS, a, b, replay: replay(seed, 'mount vs bare') });
        if (process.env.DIFF_TRACE) process.stderr.write(`seed ${seed}: ${JSON.stringify(stats)}\n`);
      });
    }, TIMEOUT_MS);
  }
});

describe.runIf(KEEP_CACHE_SEEDS.length > 0)('mount --keep-cache vs bare directory', () => {
  for (const seed of KEEP_CACHE_SEEDS) {
    test(`seed ${seed}, ${OPS} ops`, async () => {
      await withSides({ mount: true, mountArgs: KEEP_CACHE_ARGS }, async (a, b) => {
        await runSequence({ seed, ops: OPS, a, b, replay: replay(seed, 'mount vs bare', KEEP_CACHE_ARGS) });
      });
    }, TIMEOUT_MS);
  }
});
