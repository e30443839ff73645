// Names and metadata through the passthrough with coreutils: each change made on the mount must be
// seen the same way on the mount and in the backing directory (the source of truth).
import { lstat, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { passthroughTest } from '../harness/passthrough-mount.js';
import { must, seededBytes, sha256 } from './tools.js';

const test = passthroughTest();

describe('mv', () => {
  test('renames files and directories in place, across directories and over existing targets', async ({ pt }) => {
    const m = pt.mnt;
    await mkdir(join(m, 'd1/sub'), { recursive: true });
    await mkdir(join(m, 'd2'));
    await mkdir(join(m, 'empty-target'));
    await writeFile(join(m, 'd1/a'), 'A');
    await writeFile(join(m, 'd1/sub/deep'), 'deep');
    await writeFile(join(m, 'd2/victim'), 'old contents');
    await writeFile(join(m, 'd1/winner'), 'new contents');
    const winnerIno = (await stat(join(pt.source, 'd1/winner'))).ino;

    await must('mv "$1/d1/a" "$1/d1/b"', [m]); // same directory
    await must('mv "$1/d1/b" "$1/d2/c"', [m]); // across directories
    await must('mv -f "$1/d1/winner" "$1/d2/victim"', [m]); // over an existing file
    await must('mv "$1/d1/sub" "$1/d2/"', [m]); // a directory with contents into another
    await must('mv -T "$1/d2/sub" "$1/empty-target"', [m]); // a directory over an empty directory

    for (const root of [m, pt.source]) {
      expect(await readFile(join(root, 'd2/c'), 'utf8')).toBe('A');
      expect(await readFile(join(root, 'd2/victim'), 'utf8')).toBe('new contents');
      expect(await readFile(join(root, 'empty-target/deep'), 'utf8')).toBe('deep');
      await expect(stat(join(root, 'd1/a'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(stat(join(root, 'd1/winner'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(stat(join(root, 'd2/sub'))).rejects.toMatchObject({ code: 'ENOENT' });
    }
    // rename moves the inode: the overwritten name now names the old file's inode in the backing dir.
    expect((await stat(join(pt.source, 'd2/victim'))).ino).toBe(winnerIno);
    expect((await must('ls -A "$1/d1"', [m])).trim()).toBe('');
  });
});

describe('links', () => {
  test('ln makes one inode with nlink 2, seen alike through the mount and in the backing dir', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'orig'), 'shared');
    await must('ln "$1/orig" "$1/alias"', [pt.mnt]);
    const [a, b] = [await stat(join(pt.mnt, 'orig')), await stat(join(pt.mnt, 'alias'))];
    expect(a.ino).toBe(b.ino);
    expect(a.nlink).toBe(2);
    expect(b.nlink).toBe(2);
    const [sa, sb] = [await stat(join(pt.source, 'orig')), await stat(join(pt.source, 'alias'))];
    expect(sa.ino).toBe(sb.ino);
    expect(sa.nlink).toBe(2);
    // A write through one name is read through the other (same inode, same page cache).
    await writeFile(join(pt.mnt, 'alias'), 'changed via alias');
    expect(await readFile(join(pt.mnt, 'orig'), 'utf8')).toBe('changed via alias');
    await must('rm "$1/orig"', [pt.mnt]);
    expect((await stat(join(pt.mnt, 'alias'))).nlink).toBe(1);
  });

  test('ln -s makes symlinks whose targets readlink returns unchanged, dangling ones included', async ({ pt }) => {
    await mkdir(join(pt.mnt, 'dir'));
    await writeFile(join(pt.mnt, 'dir/file'), 'through the link');
    await must('ln -s dir/file "$1/rel"; ln -s /no/such/place "$1/dangling"; ln -s "$1/dir" "$1/abs"', [pt.mnt]);
    expect((await must('readlink "$1/rel"', [pt.mnt])).trim()).toBe('dir/file');
    expect(await readlink(join(pt.source, 'rel'))).toBe('dir/file');
    expect(await readlink(join(pt.mnt, 'dangling'))).toBe('/no/such/place');
    expect(await readFile(join(pt.mnt, 'rel'), 'utf8')).toBe('through the link');
    expect(await readFile(join(pt.mnt, 'abs/file'), 'utf8')).toBe('through the link');
    expect((await lstat(join(pt.mnt, 'rel'))).isSymbolicLink()).toBe(true);
    expect((await lstat(join(pt.mnt, 'rel'))).size).toBe('dir/file'.length);
    await expect(readFile(join(pt.mnt, 'dangling'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('metadata', () => {
  test('chmod, chown and touch -d land in the backing dir (times to the nanosecond, before 1970 too)', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'f'), 'x');
    await mkdir(join(pt.mnt, 'd'));
    await must('chmod 0640 "$1/f" && chmod 2751 "$1/d"', [pt.mnt]);
    await must('chown 1000:1000 "$1/f" && chown :1000 "$1/d"', [pt.mnt]);
    await must('touch -d "2001-02-03 04:05:06.123456789 UTC" "$1/f"', [pt.mnt]);
    await must('touch -a -d "1999-12-31 23:59:59.5 UTC" "$1/d"', [pt.mnt]);
    await must('touch "$1/old" && touch -m -d "1960-05-06 07:08:09.654321 UTC" "$1/old"', [pt.mnt]);
    const fmt = '%a %u %g %y %x';
    const backing = (await must(`TZ=UTC stat -c '${fmt}' "$1/f" "$1/d" "$1/old"`, [pt.source])).trim().split('\n');
    // Every nanosecond arrives (utimensat through sys/, not Node's microsecond utimes).
    expect(backing[0]).toMatch(/^640 1000 1000 2001-02-03 04:05:06\.123456789 \+0000 /);
    expect(backing[1]).toMatch(/^2751 0 1000 .* 1999-12-31 23:59:59\.500000000 \+0000$/);
    expect(backing[2]).toMatch(/ 1960-05-06 07:08:09\.654321000 \+0000 /); // before 1970 too
    const viaMount = (await must(`TZ=UTC stat -c '${fmt}' "$1/f" "$1/d" "$1/old"`, [pt.mnt])).trim().split('\n');
    expect(viaMount).toEqual(backing);
  });

  test('truncate grows with zeros and shrinks, keeping the head', async ({ pt }) => {
    const head = seededBytes(3, 300_000);
    await writeFile(join(pt.mnt, 't'), head);
    await must('truncate -s 10M "$1/t"', [pt.mnt]);
    const grown = await readFile(join(pt.mnt, 't'));
    expect(grown.length).toBe(10 * 1_048_576);
    expect(sha256(grown)).toBe(sha256(Buffer.concat([head, Buffer.alloc(10 * 1_048_576 - head.length)])));
    expect((await stat(join(pt.source, 't'))).size).toBe(10 * 1_048_576);
    await must('truncate -s 4097 "$1/t"', [pt.mnt]);
    expect(sha256(await readFile(join(pt.mnt, 't')))).toBe(sha256(head.subarray(0, 4097)));
    expect(sha256(await readFile(join(pt.source, 't')))).toBe(sha256(head.subarray(0, 4097)));
    await must('truncate -s 0 "$1/t"', [pt.mnt]);
    expect((await stat(join(pt.mnt, 't'))).size).toBe(0);
  });

  test('mkfifo makes a FIFO in the backing dir that carries data between two processes on the mount', async ({ pt }) => {
    await must('mkfifo -m 0620 "$1/pipe"', [pt.mnt]);
    expect((await lstat(join(pt.source, 'pipe'))).isFIFO()).toBe(true);
    expect((await lstat(join(pt.mnt, 'pipe'))).mode & 0o777).toBe(0o620);
    const out = await must('(echo "through the fifo" > "$1/pipe") & cat "$1/pipe"; wait', [pt.mnt]);
    expect(out).toBe('through the fifo\n');
  });

  test('extended attributes set on the mount are stored on the backing file', async ({ pt }) => {
    await writeFile(join(pt.mnt, 'x'), 'x');
    await must('setfattr -n user.colour -v blue "$1/x" && setfattr -n user.empty "$1/x"', [pt.mnt]);
    expect(await must('getfattr --only-values -n user.colour "$1/x"', [pt.source])).toBe('blue');
    const listed = await must('getfattr -d --absolute-names "$1/x"', [pt.mnt]);
    expect(listed).toContain('user.colour="blue"');
    expect(listed).toContain('user.empty');
    await must('setfattr -x user.colour "$1/x"', [pt.mnt]);
    const r = await must('getfattr -d --absolute-names "$1/x"', [pt.source]);
    expect(r).not.toContain('user.colour');
  });
});
