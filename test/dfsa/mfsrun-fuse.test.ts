// mfsrun over real /mfs mounts: 2 mfsd daemons (mutual TLS, one map), each hosting the cluster at
// its own mount point, as on a real cluster with /mfs. A command naming a large file of node 2,
// typed on node 1, is placed by the advisor on node 2, reads it there through node 2's own /mfs,
// and prints what a local run on node 1 prints.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MFSRUN_JS, startRunCluster, type RunCluster } from './mfsrun-cluster.js';

let c: RunCluster;
beforeAll(async () => {
  c = await startRunCluster(2, { fuse: true });
}, 120_000);
afterAll(async () => {
  await c?.cleanup();
});

function mfsrun(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '--mount', c.mount(1), ...args], {
      cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MFSRUN_VERBOSE: '1' },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('runs a command where the data it names is, with the output of a local run', async () => {
  const data = Buffer.alloc(32 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  writeFileSync(join(c.daemons[1]!.exports[0]!.path, 'big'), data);
  const path = join(c.mount(1), '2', 'big');
  const here = spawnSync('sha256sum', [path]);
  const r = await mfsrun(['sha256sum', path], c.root);
  expect(r.stderr).toMatch(/running on node 2 /);
  expect(r.code).toBe(0);
  // The same file, named by node 2's mount there: sha256sum prints the name it was given.
  expect(r.stdout).toBe(here.stdout.toString().replace(path, join(c.mount(2), '2', 'big')));
  // Its working directory under /mfs comes along, translated.
  const pwd = await mfsrun(['-N', '2', 'pwd'], join(c.mount(1), '1'));
  expect(pwd.stdout).toBe(`${join(c.mount(2), '1')}\n`);
});

it('a job started for node 1 on node 2 sees node 1 as its home (/mfs/home), and so do its children; here stays node 2', async () => {
  // Inode numbers of the node roots as node 2's mount shows them: /mfs/home is /mfs/<home node>.
  const ino = (p: string): string => spawnSync('stat', ['-c', '%i', p]).stdout.toString().trim();
  const root1 = ino(join(c.mount(2), '1'));
  const root2 = ino(join(c.mount(2), '2'));
  expect(root1).not.toBe(root2);
  const r = await mfsrun(['-N', '2', 'sh', '-c', `stat -c %i ${join(c.mount(2), 'home')}; sh -c 'stat -c %i ${join(c.mount(2), 'home')}'; stat -c %i ${join(c.mount(2), 'here')}`], c.root);
  expect(r.code).toBe(0);
  expect(r.stdout.trim().split('\n')).toEqual([root1, root1, root2]);
  // A process of node 2's own has node 2 as its home.
  expect(ino(join(c.mount(2), 'home'))).toBe(root2);
});
