// Issue 10: openMosix's special directories through a real /mfs mount. Three real mfsd daemons
// (nodes 1-3) and a real mfs-mount as node 1 (root: it has proc events); every caller is a real
// process (shells, ls, cat, pwd), and each must see its own answer, also while others ask at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { listedNodes, SPECIAL_ENTRIES, startMfsMount, type MfsMount } from '../harness/mfs-mount.js';

let tmp: string;
let ca: TestCa;
const daemons: MfsdHandle[] = [];
let m: MfsMount | undefined;
let mnt: string;
let control: string;
const exportOf = (node: number): string => daemons[node - 1]!.exports[0]!.path;

interface ShResult { code: number | null; stdout: string; stderr: string }

/** Runs a sh script to its end in a process of its own (so it is a stranger to the test runner), $M being the mount. */
function sh(script: string, timeoutMs = 60_000): Promise<ShResult> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, M: mnt, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const errnoOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'OK';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-mfs-special-'));
  ca = await makeTestCa(tmp);
  for (const nodeId of [1, 2, 3]) daemons.push(await startMfsd({ ca, nodeId }));
  // Node 9 is in the map but nothing listens there.
  m = await startMfsMount({ ca, node: 1, daemons, extraMapLines: ['9 127.0.0.1:1 1'], args: process.env.MFS_DEBUG ? ['--debug'] : [] });
  mnt = m.mnt;
  control = join(mnt, '.control', 'selected');
  // Each node's export says which node it is, and has a directory to cd into.
  for (const node of [1, 2, 3]) {
    fs.writeFileSync(join(exportOf(node), 'who'), `node ${node}\n`);
    fs.writeFileSync(join(exportOf(node), `only-on-${node}`), '');
    fs.mkdirSync(join(exportOf(node), 'dir', 'sub'), { recursive: true });
  }
}, 120_000);

afterAll(async () => {
  await m?.unmount();
  for (const d of daemons) await d.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

describe('the root of /mfs', () => {
  it('lists the special directories and the control directory beside the node numbers', () => {
    expect(fs.readdirSync(mnt).sort()).toEqual(['.control', '1', '2', '3', '9', 'here', 'home', 'lastexec', 'magic', 'selected']);
    expect(listedNodes(mnt)).toEqual(['1', '2', '3', '9']);
    expect(fs.readdirSync(mnt).filter((n) => !listedNodes(mnt).includes(n)).sort()).toEqual([...SPECIAL_ENTRIES]);
    const types = Object.fromEntries(fs.readdirSync(mnt, { withFileTypes: true }).map((e) => [e.name, e.isDirectory()]));
    expect(Object.values(types).every(Boolean)).toBe(true);
    expect(fs.readdirSync(join(mnt, '.control'))).toEqual(['selected']);
  });
});

describe('here, home, lastexec', () => {
  it('/mfs/here/x is this node\'s /x (the mount\'s node), the same file as /mfs/1/x', async () => {
    expect(fs.readFileSync(join(mnt, 'here', 'who'), 'utf8')).toBe('node 1\n');
    expect(fs.statSync(join(mnt, 'here', 'who'), { bigint: true }).ino).toBe(fs.statSync(join(mnt, '1', 'who'), { bigint: true }).ino);
    fs.writeFileSync(join(mnt, 'here', 'written-via-here'), 'h');
    expect(fs.readFileSync(join(exportOf(1), 'written-via-here'), 'utf8')).toBe('h');
    const r = await sh('ls "$M/here/"');
    expect(r.stdout.split('\n')).toContain('only-on-1');
  });

  it('home and lastexec are this node by default', async () => {
    const r = await sh('cat "$M/home/who" "$M/lastexec/who"');
    expect(r).toMatchObject({ code: 0, stdout: 'node 1\nnode 1\n' });
  });
});

describe('selected', () => {
  it('never set: ENOENT, for any process, and not cached negatively once another process has one', async () => {
    expect(errnoOf(() => fs.statSync(join(mnt, 'selected')))).toBe('ENOENT');
    expect(fs.readFileSync(control, 'utf8')).toBe('0\n');
    // A process with a selected node walks the name, then one without asks again.
    expect((await sh('echo 2 > "$M/.control/selected" && cat "$M/selected/who"')).stdout).toBe('node 2\n');
    expect(errnoOf(() => fs.statSync(join(mnt, 'selected')))).toBe('ENOENT');
    const r = await sh('ls "$M/selected/"');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No such file or directory/);
  });

  it('the control file: set and read back by a process, inherited by its children, refused values with their errno', async () => {
    const st = fs.statSync(control);
    expect({ file: st.isFile(), mode: st.mode & 0o777, size: st.size }).toEqual({ file: true, mode: 0o666, size: 0 });
    const r = await sh([
      'echo 3 > "$M/.control/selected"',
      'cat "$M/.control/selected"', // cat is a child: inherited
      'sh -c \'sh -c "cat \\"$M/selected/who\\""\'', // a grandchild through a shell that never asked
      'echo 0 > "$M/.control/selected"',
      'cat "$M/.control/selected"',
    ].join('; '));
    expect(r).toMatchObject({ code: 0, stdout: '3\nnode 3\n0\n' });
    // The test runner never set one: its own value is still none.
    expect(fs.readFileSync(control, 'utf8')).toBe('0\n');
    // Refused writes, seen by a real process's write(2).
    const bad = await sh([
      'echo banana > "$M/.control/selected" 2>/dev/null || echo "refused nonnumber"',
      'echo 7 > "$M/.control/selected" 2>/dev/null || echo "refused 7"',
      'echo 70000 > "$M/.control/selected" 2>/dev/null || echo "refused 70000"',
      'cat "$M/.control/selected"',
    ].join('; '));
    expect(bad.stdout).toBe('refused nonnumber\nrefused 7\nrefused 70000\n0\n');
    expect(errnoOf(() => fs.writeFileSync(control, 'banana'))).toBe('EINVAL');
    expect(errnoOf(() => fs.writeFileSync(control, '7'))).toBe('EHOSTUNREACH'); // node 7 is not in the map
  });

  it('a node of the map that is down can be selected, and /mfs/selected then fails as /mfs/9 does', async () => {
    const r = await sh('echo 9 > "$M/.control/selected" && cat "$M/.control/selected" && ls "$M/selected/"; ls "$M/9/"');
    expect(r.stdout).toBe('9\n');
    const errors = r.stderr.trim().split('\n');
    expect(errors).toHaveLength(2);
    // EHOSTDOWN as the node's session says; EHOSTUNREACH while fuse/kernel cannot carry that errno.
    for (const line of errors) expect(line).toMatch(/Host is down|No route to host/);
  });

  it('a process that changes its selected node sees the new node at once (no dentry of the old one kept)', async () => {
    const r = await sh([
      'echo 2 > "$M/.control/selected"', 'ls "$M/selected/" | grep only-on', 'cat "$M/selected/dir/../who" 2>/dev/null; cat "$M/selected/who"',
      'echo 3 > "$M/.control/selected"', 'ls "$M/selected/" | grep only-on', 'cat "$M/selected/who"',
    ].join('; '));
    expect(r.stdout).toBe('only-on-2\nnode 2\nnode 2\nonly-on-3\nnode 3\n');
  });

  it('shells with different selected nodes (and one with none) list /mfs/selected/ at the same time, each its own node, over rounds', async () => {
    const rounds = 40;
    const loop = (body: string): string => `i=0; while [ $i -lt ${rounds} ]; do ${body}; i=$((i+1)); done`;
    // ls and cat are children of the shell, started after its set: each inherits it.
    const shell = (node: number): Promise<ShResult> => sh(`echo ${node} > "$M/.control/selected"; ${loop('ls "$M/selected/" | grep only-on; cat "$M/selected/who"')}`);
    const none = sh(loop('if [ -e "$M/selected" ]; then echo "has one"; else echo none; fi'));
    const [a, b, c, d] = await Promise.all([shell(2), shell(3), shell(1), none]);
    expect(a.stdout).toBe('only-on-2\nnode 2\n'.repeat(rounds));
    expect(b.stdout).toBe('only-on-3\nnode 3\n'.repeat(rounds));
    expect(c.stdout).toBe('only-on-1\nnode 1\n'.repeat(rounds));
    expect(d.stdout).toBe('none\n'.repeat(rounds));
  });

  it('getcwd stays right: shells in /mfs/selected/dir, /mfs/2/dir, /mfs/here/dir and /mfs/1/dir each see their own path', async () => {
    const rounds = 30;
    // Each shell walks the other paths of the same directory between its pwds, so a shared node id
    // would move its cwd's dentry under another name.
    const inDir = (pre: string, dir: string, others: string[]): Promise<ShResult> => sh(
      `${pre} cd "$M/${dir}/dir/sub" || exit 9; i=0; while [ $i -lt ${rounds} ]; do /bin/pwd -P; ${others.map((o) => `ls "$M/${o}/dir" > /dev/null 2>&1;`).join(' ')} i=$((i+1)); done`,
    );
    const [viaSelected, viaTwo, viaHere, viaOne] = await Promise.all([
      inDir('echo 2 > "$M/.control/selected";', 'selected', ['2']),
      inDir('', '2', ['selected']),
      inDir('', 'here', ['1']),
      inDir('', '1', ['here']),
    ]);
    expect(viaSelected.stdout).toBe(`${join(mnt, 'selected', 'dir', 'sub')}\n`.repeat(rounds));
    expect(viaTwo.stdout).toBe(`${join(mnt, '2', 'dir', 'sub')}\n`.repeat(rounds));
    expect(viaHere.stdout).toBe(`${join(mnt, 'here', 'dir', 'sub')}\n`.repeat(rounds));
    expect(viaOne.stdout).toBe(`${join(mnt, '1', 'dir', 'sub')}\n`.repeat(rounds));
  });
});

describe('magic', () => {
  it('a create through magic/ goes to this node, and the same process opens, reads and unlinks it there', async () => {
    const r = await sh([
      'echo temp > "$M/magic/tmp-magic"',
      `test -f "${join(exportOf(1), 'tmp-magic')}" && echo "on node 1"`,
      'cat "$M/magic/tmp-magic"',
      'rm "$M/magic/tmp-magic"',
      `test -e "${join(exportOf(1), 'tmp-magic')}" || echo "gone"`,
    ].join('; '));
    expect(r).toMatchObject({ code: 0, stdout: 'on node 1\ntemp\ngone\n' });
  });
});

describe('caches below a special directory', () => {
  it('a change made through /mfs/2 shows at once through /mfs/selected (selected 2), and the other way round', async () => {
    const r = await sh([
      'echo 2 > "$M/.control/selected"',
      'echo one > "$M/2/cached"', 'cat "$M/selected/cached"', 'stat -c %s "$M/selected/cached"',
      'echo second > "$M/2/cached"', 'cat "$M/selected/cached"', 'stat -c %s "$M/selected/cached"',
      'echo third-one > "$M/selected/cached"', 'cat "$M/2/cached"', 'stat -c %s "$M/2/cached"',
      'ls "$M/selected/" | grep -c cached', 'rm "$M/2/cached"', 'ls "$M/selected/" | grep -c cached',
    ].join('; '));
    expect(r.stdout).toBe('one\n4\nsecond\n7\nthird-one\n10\n1\n0\n');
    // The same size: nothing but an invalidation can tell the kernel the pages changed.
    const same = await sh([
      'echo 2 > "$M/.control/selected"',
      'echo aaaa > "$M/2/same"', 'cat "$M/selected/same"', 'echo bbbb > "$M/2/same"', 'cat "$M/selected/same"',
      'echo cccc > "$M/selected/same"', 'cat "$M/2/same"', 'chmod 600 "$M/2/same"', 'stat -c %a "$M/selected/same"',
    ].join('; '));
    expect(same).toMatchObject({ stderr: '', stdout: 'aaaa\nbbbb\ncccc\n600\n' });
  });
});
