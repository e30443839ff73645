// copy_file_range(2) through /mfs: within one node the node copies (the data never crosses the
// network); across nodes the kernel copies through read and write. Either way the bytes are the
// bare directory's, copy_file_range's own rules hold (an O_APPEND output is EBADF, short counts
// at the end of the input), and a copy through one mount is seen at once through another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle } from '../harness/mfsd.js';
import { startMfsMount, type MfsMount } from '../harness/mfs-mount.js';

let tmp: string;
let d1: MfsdHandle | undefined;
let d2: MfsdHandle | undefined;
let m: MfsMount | undefined;
let other: MfsMount | undefined;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-mfs-copy-'));
  const ca = await makeTestCa(tmp);
  d1 = await startMfsd({ ca, nodeId: 1 });
  d2 = await startMfsd({ ca, nodeId: 2 });
  m = await startMfsMount({ ca, node: 3, daemons: [d1, d2] });
  other = await startMfsMount({ ca, node: 4, daemons: [d1, d2], args: ['-o', 'cache=3600'] });
}, 120_000);

afterAll(async () => {
  await other?.unmount();
  await m?.unmount();
  await d1?.cleanup();
  await d2?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

/** copy_file_range(2) as a program makes it, through python (node has no binding). */
function copyRange(src: string, dst: string, len: number, offIn: number, offOut: number, dstFlags = 'os.O_WRONLY|os.O_CREAT'): string {
  const py = `import os
a = os.open(${JSON.stringify(src)}, os.O_RDONLY)
b = os.open(${JSON.stringify(dst)}, ${dstFlags}, 0o644)
try:
    print(os.copy_file_range(a, b, ${len}, ${offIn}, ${offOut}))
except OSError as e:
    print('errno', e.errno)`;
  return execFileSync('python3', ['-c', py]).toString().trim();
}

describe('copy_file_range through /mfs', () => {
  it('cp within a node and across nodes gives the source\'s bytes, on the bare export too', () => {
    const data = randomBytes(9 * 1024 * 1024 + 123);
    fs.writeFileSync(join(m!.mnt, '2', 'src'), data);
    execFileSync('cp', [join(m!.mnt, '2', 'src'), join(m!.mnt, '2', 'same-node')]);
    execFileSync('cp', [join(m!.mnt, '2', 'src'), join(m!.mnt, '1', 'other-node')]);
    expect(fs.readFileSync(join(d2!.exports[0]!.path, 'same-node')).equals(data)).toBe(true);
    expect(fs.readFileSync(join(d1!.exports[0]!.path, 'other-node')).equals(data)).toBe(true);
    // Another mount that had read the target before sees the copy at once.
    fs.writeFileSync(join(m!.mnt, '2', 'target'), 'old');
    expect(fs.readFileSync(join(other!.mnt, '2', 'target'), 'utf8')).toBe('old');
    expect(copyRange(join(m!.mnt, '2', 'src'), join(m!.mnt, '2', 'target'), 4096, 0, 0)).toBe('4096');
    expect(fs.readFileSync(join(other!.mnt, '2', 'target')).equals(data.subarray(0, 4096))).toBe(true);
    expect(fs.statSync(join(other!.mnt, '2', 'target')).size).toBe(4096);
  });

  it('offsets, a short count at the end of the input, and EBADF for an O_APPEND output, as on the bare directory', () => {
    const bare = d2!.exports[0]!.path;
    fs.writeFileSync(join(bare, 'in'), randomBytes(5000));
    const on = (dir: string): string[] => [
      copyRange(join(dir, 'in'), join(dir, 'out'), 1000, 17, 3),
      copyRange(join(dir, 'in'), join(dir, 'out'), 1000, 4500, 0),
      copyRange(join(dir, 'in'), join(dir, 'out'), 10, 0, 0, 'os.O_WRONLY|os.O_APPEND'),
      copyRange(join(dir, 'in'), join(dir, 'out'), 10, 0, 0, 'os.O_RDONLY'),
      fs.readFileSync(join(dir, 'out')).toString('hex'),
    ];
    const local = join(tmp, 'local');
    fs.mkdirSync(local);
    fs.copyFileSync(join(bare, 'in'), join(local, 'in'));
    expect(on(join(m!.mnt, '2'))).toEqual(on(local));
  });
});
