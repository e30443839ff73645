// npm run bench:dfsa [-- --size-mib N] [--runs R]: issue 11's benchmark. Three nodes in network
// namespaces on 1 Gbit tc tbf ports (bench/dfsa-cluster.ts), the same I/O-heavy job (sha256sum of
// a file of N MiB, default 1024, stored on node 3), launched from node 1, timed wall to wall:
//   (a) run on node 1, reading through /mfs/3 (every byte crosses the link);
//   (b) typed on node 1 as `mfsrun sha256sum /mfs/3/big`: the advisor places it (on node 3);
//   (c) run directly on node 3 (its own /mfs/3: the daemon's local file).
// Targets: b/c <= 1.2 (placement costs little over starting on the right node) and a/b >= 2.
// The page cache is dropped before every run: the namespaces share one kernel, so a file node 3
// read would otherwise be served from memory to the next run on any node. Dropping it also drops
// the programs' files (node's modules, mfsrun, sha256sum, setpriv): read again from disk, they
// cost (b) about a second that has nothing to do with where the data is. So after each drop the
// programs, not the data, are warmed: `sha256sum --version` on node 1 and, through the whole mfsrun
// path, `mfsrun -N 3 sha256sum --version` (--cold-programs: no warming).
// With --runs R each case runs R times (interleaved) and the median is reported.
// Exit 0 whatever the ratios; 1 when something broke (a wrong checksum, the job not placed on
// node 3, a daemon that would not start). Namespaces and daemons are removed on every exit,
// Ctrl-C included.
import { parseArgs } from 'node:util';
import { MFSRUN_JS, dfsaClusterUnavailable, dropCaches, startDfsaCluster, type DfsaCluster, type ExecResult } from './dfsa-cluster.js';

interface Case { name: string; label: string; times: number[] }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

class Broke extends Error {}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: {
    'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '1' }, 'cold-programs': { type: 'boolean', default: false },
  } });
  const sizeMib = Number(values['size-mib']);
  const runs = Number(values.runs);
  if (!Number.isInteger(sizeMib) || sizeMib < 1 || !Number.isInteger(runs) || runs < 1) {
    process.stderr.write('usage: dfsa-placement [--size-mib N] [--runs R] [--cold-programs]   (N, R positive integers)\n');
    return 2;
  }
  const why = dfsaClusterUnavailable();
  if (why) throw new Broke(`cannot run: ${why}`);

  let c: DfsaCluster | undefined;
  const cleanup = async () => {
    const cl = c;
    c = undefined;
    await cl?.destroy();
  };
  // Ctrl-C / kill: remove namespaces and daemons, then end as the signal would.
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      void cleanup().finally(() => process.exit(128 + n));
    });
  }
  try {
    process.stdout.write(`starting 3 nodes in network namespaces, 1 Gbit tc tbf ports...\n`);
    c = await startDfsaCluster();
    process.stdout.write(`writing ${sizeMib} MiB to node 3's export...\n`);
    const sha = c.writeFile(3, 'big', sizeMib);
    const big = `${c.mnt}/3/big`;
    const expected = `${sha}  ${big}\n`;
    const cl = c;

    const check = (what: string, r: ExecResult, stdout: string): void => {
      if (r.status !== 0 || r.stdout !== stdout) {
        throw new Broke(`${what}: status ${r.status}${r.signal ? ` (${r.signal})` : ''}, stdout ${JSON.stringify(r.stdout)}, expected ${JSON.stringify(stdout)}; stderr: ${r.stderr.trim()}`);
      }
    };
    const timeout = { timeoutMs: Math.max(120_000, sizeMib * 1000) };
    const mfsrun = [MFSRUN_JS, '--socket', cl.node(1).socket, '--mount', cl.mnt];
    const warmPrograms = async (): Promise<void> => {
      const version = await cl.run(1, 'sha256sum', ['--version']);
      const remote = await cl.run(1, process.execPath, [...mfsrun, '-N', '3', 'sha256sum', '--version']);
      if (version.status !== 0 || remote.status !== 0) throw new Broke(`warming the programs: ${version.stderr}${remote.stderr}`);
    };
    const cases: Array<Case & { run: () => Promise<number> }> = [
      {
        name: 'a', label: 'node 1 reads /mfs/3', times: [],
        run: async () => {
          const r = await cl.run(1, 'sha256sum', [big], timeout);
          check('(a) on node 1', r, expected);
          return r.ms;
        },
      },
      {
        name: 'b', label: 'mfsrun from node 1', times: [],
        run: async () => {
          const r = await cl.run(1, process.execPath, [...mfsrun, 'sha256sum', big], {
            ...timeout, env: { ...process.env, MFSRUN_VERBOSE: '1' },
          });
          check('(b) mfsrun', r, expected);
          const where = /running on node (\d+) /.exec(r.stderr)?.[1];
          if (where !== '3') throw new Broke(`(b) the advisor placed the job on node ${where ?? '?'}, not node 3: ${r.stderr.trim()}`);
          return r.ms;
        },
      },
      {
        name: 'c', label: 'directly on node 3', times: [],
        run: async () => {
          const r = await cl.run(3, 'sha256sum', [big], timeout);
          check('(c) on node 3', r, expected);
          return r.ms;
        },
      },
    ];
    for (let i = 1; i <= runs; i++) {
      for (const k of cases) {
        dropCaches();
        if (!values['cold-programs']) await warmPrograms();
        const ms = await k.run();
        k.times.push(ms);
        process.stdout.write(`  run ${i}/${runs} (${k.name}) ${k.label}: ${(ms / 1000).toFixed(2)} s\n`);
      }
    }
    const [a, b, cc] = cases.map((k) => median(k.times)) as [number, number, number];
    const row = (k: Case, ms: number) => `  (${k.name}) ${k.label.padEnd(22)} ${(ms / 1000).toFixed(2).padStart(8)} s ${((sizeMib * 1048576) / (ms / 1000) / 1e6).toFixed(1).padStart(8)} MB/s`;
    const verdict = (ok: boolean) => (ok ? 'pass' : 'FAIL');
    const lines = [
      '',
      `sha256sum of ${sizeMib} MiB stored on node 3, launched from node 1, 1 Gbit tc tbf links, page cache dropped before each run`
        + `${values['cold-programs'] ? '' : ' (then the programs, not the data, read back)'}${runs > 1 ? `, median of ${runs}` : ''}:`,
      ...cases.map((k, i) => row(k, [a, b, cc][i]!)),
      `  b/c = ${(b / cc).toFixed(2)}  (target <= 1.2)  ${verdict(b / cc <= 1.2)}`,
      `  a/b = ${(a / b).toFixed(2)}  (target >= 2)    ${verdict(a / b >= 2)}`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
    return 0;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`dfsa-placement: ${err instanceof Broke ? '' : 'error: '}${err.stack && !(err instanceof Broke) ? err.stack : err.message}\n`);
  process.exit(1);
});
