// --keep-cache keeps file pages and attributes in the kernel across opens, so a change made to the
// backing directory behind the kernel's back is only seen if the passthrough notices it and sends the
// kernel an invalidation. Each check polls the mount with a deadline: it is about content, not speed.
import { appendFile, open, readFile, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { eventually, passthroughTest, startPassthrough } from '../harness/passthrough-mount.js';
import { must, seededBytes } from './tools.js';

const test = passthroughTest({ args: ['--keep-cache'] });
const DEADLINE_MS = 5_000;

async function mountShows(path: string, expected: Buffer): Promise<boolean> {
  return eventually(async () => {
    try {
      return (await readFile(path)).equals(expected);
    } catch {
      return false;
    }
  }, DEADLINE_MS);
}

/** Bytes of `path` resident in the page cache, measured by fincore (mincore over its own open). */
async function residentBytes(path: string): Promise<number> {
  return Number((await must('fincore --bytes --noheadings --output RES "$1"', [path])).trim());
}

describe('with --keep-cache', () => {
  test('pages stay cached across opens (the mode these tests rely on is really on)', async ({ pt }) => {
    const data = seededBytes(1, 256 * 1024);
    await writeFile(join(pt.source, 'cached'), data);
    // fincore opens the file again; without keep-cache that open would drop every cached page, so it
    // could never see them all. Retried only because another process may drop_caches meanwhile.
    const keptAcrossOpen = await eventually(async () => {
      expect((await readFile(join(pt.mnt, 'cached'))).equals(data)).toBe(true);
      return (await residentBytes(join(pt.mnt, 'cached'))) === data.length;
    }, DEADLINE_MS);
    expect(keptAcrossOpen).toBe(true);
  });

  test('a write through the mount keeps the other cached pages (our own change is no news)', async ({ pt }) => {
    const data = seededBytes(3, 256 * 1024);
    // Made through the mount too: no change behind the mount whose late events could drop pages.
    const path = join(pt.mnt, 'own');
    await writeFile(path, data);
    expect(await eventually(async () => {
      await readFile(path);
      return (await residentBytes(path)) === data.length;
    }, DEADLINE_MS)).toBe(true);
    await must('printf X | dd of="$1" bs=1 seek=100 conv=notrunc status=none', [path]);
    await new Promise((r) => setTimeout(r, 300)); // the inotify events of that write have come and gone
    expect(await residentBytes(path)).toBe(data.length);
    expect((await readFile(path))[100]).toBe(0x58);
  });

  test('a same-size rewrite of the backing file shows on the next read through the mount', async ({ pt }) => {
    const before = seededBytes(2, 200_000);
    const after = seededBytes(3, 200_000);
    await writeFile(join(pt.source, 'f'), before);
    expect((await readFile(join(pt.mnt, 'f'))).equals(before)).toBe(true);
    expect((await readFile(join(pt.mnt, 'f'))).equals(before)).toBe(true);
    const fh = await open(join(pt.source, 'f'), 'r+'); // in place: the size never changes
    try {
      await fh.write(after, 0, after.length, 0);
    } finally {
      await fh.close();
    }
    expect(await mountShows(join(pt.mnt, 'f'), after)).toBe(true);
  });

  test('growing, shrinking and replacing the backing file show through the mount', async ({ pt }) => {
    const first = Buffer.from('first version\n');
    await writeFile(join(pt.source, 'g'), first);
    expect((await readFile(join(pt.mnt, 'g'))).equals(first)).toBe(true);

    await appendFile(join(pt.source, 'g'), 'appended behind the kernel\n');
    const grown = Buffer.from('first version\nappended behind the kernel\n');
    expect(await mountShows(join(pt.mnt, 'g'), grown)).toBe(true);
    expect((await stat(join(pt.mnt, 'g'))).size).toBe(grown.length);

    await truncate(join(pt.source, 'g'), 5);
    expect(await mountShows(join(pt.mnt, 'g'), Buffer.from('first'))).toBe(true);

    // Editors save by writing a new file and renaming it over the old one: a new inode behind the name.
    await writeFile(join(pt.source, 'g.tmp'), 'replaced by rename\n');
    await rename(join(pt.source, 'g.tmp'), join(pt.source, 'g'));
    expect(await mountShows(join(pt.mnt, 'g'), Buffer.from('replaced by rename\n'))).toBe(true);
  });

  test('a file held open on the mount reads the new backing data through the same descriptor', async ({ pt }) => {
    const before = Buffer.alloc(64 * 1024, 'a');
    const after = Buffer.alloc(64 * 1024, 'b');
    await writeFile(join(pt.source, 'held'), before);
    const fh = await open(join(pt.mnt, 'held'), 'r');
    try {
      const buf = Buffer.alloc(before.length);
      await fh.read(buf, 0, buf.length, 0);
      expect(buf.equals(before)).toBe(true);
      await writeFile(join(pt.source, 'held'), after);
      const fresh = await eventually(async () => {
        await fh.read(buf, 0, buf.length, 0);
        return buf.equals(after);
      }, DEADLINE_MS);
      expect(fresh).toBe(true);
    } finally {
      await fh.close();
    }
  });

  test('files created and removed in the source appear and vanish on the mount', async ({ pt }) => {
    await writeFile(join(pt.source, 'old'), 'x');
    expect((await must('ls "$1"', [pt.mnt])).trim()).toBe('old');
    await expect(stat(join(pt.mnt, 'new'))).rejects.toMatchObject({ code: 'ENOENT' });

    await writeFile(join(pt.source, 'new'), 'made behind the kernel\n');
    const listed = await eventually(async () => (await must('ls "$1"', [pt.mnt])).trim() === 'new\nold', DEADLINE_MS);
    expect(listed).toBe(true);
    expect(await readFile(join(pt.mnt, 'new'), 'utf8')).toBe('made behind the kernel\n');

    await unlink(join(pt.source, 'old'));
    const gone = await eventually(async () => {
      try {
        await stat(join(pt.mnt, 'old'));
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ENOENT';
      }
    }, DEADLINE_MS);
    expect(gone).toBe(true);
    expect((await must('ls "$1"', [pt.mnt])).trim()).toBe('new');
  });

  test('mode, owner and times changed in the source show on the mount, in a subdirectory too', async ({ pt }) => {
    await must('mkdir -p "$1/sub" && echo x > "$1/sub/f" && chmod 0644 "$1/sub/f"', [pt.source]);
    const seen = async (): Promise<string> => (await must("stat -c '%a %u %Y' \"$1\"", [join(pt.mnt, 'sub/f')])).trim();
    const before = await seen();
    expect(before.startsWith('644 0 ')).toBe(true);
    await must('chmod 0600 "$1" && chown 1000 "$1" && touch -m -d @1000000000 "$1"', [join(pt.source, 'sub/f')]);
    expect(await eventually(async () => (await seen()) === '600 1000 1000000000', DEADLINE_MS)).toBe(true);
  });

  test('a directory the kernel forgot loses its watch, and one looked up again is watched again', async ({ pt }) => {
    // inotify watches of the daemon: one "inotify wd:" line each in the fdinfo of its inotify fds.
    const watches = async (): Promise<number> =>
      Number((await must('cat /proc/"$1"/fdinfo/* 2>/dev/null | grep -c "^inotify wd:" || true', [String(pt.proc.pid)])).trim());
    await must('for i in $(seq 1 40); do mkdir "$1/d$i"; echo old > "$1/d$i/f"; done', [pt.source]);
    await must('cat "$1"/d*/f > /dev/null', [pt.mnt]);
    expect(await watches()).toBeGreaterThanOrEqual(40);
    // The kernel drops what is unused (dentries and inodes: FORGET for each node); retried since
    // something else may hold a dentry for a moment.
    const dropped = await eventually(async () => {
      await must('sync; echo 2 > /proc/sys/vm/drop_caches');
      return (await watches()) < 10;
    }, DEADLINE_MS);
    expect(dropped).toBe(true);
    // Looked up again, a directory is watched again: a change behind the mount shows.
    expect((await readFile(join(pt.mnt, 'd7/f'), 'utf8'))).toBe('old\n');
    await writeFile(join(pt.source, 'd7/f'), 'new\n');
    expect(await mountShows(join(pt.mnt, 'd7/f'), Buffer.from('new\n'))).toBe(true);
  });

  test('changes whose events a full inotify queue dropped still show on the mount', async () => {
    // The queue's size is fixed when the daemon creates its inotify descriptor: make it small for
    // this daemon only (test files run one at a time), then stop the daemon so the queue fills.
    const limit = '/proc/sys/fs/inotify/max_queued_events';
    const saved = await readFile(limit, 'utf8');
    await writeFile(limit, '32');
    let pt;
    try {
      pt = await startPassthrough({ args: ['--keep-cache'] });
    } finally {
      await writeFile(limit, saved);
    }
    try {
      await writeFile(join(pt.source, 'f'), 'old\n');
      expect(await readFile(join(pt.mnt, 'f'), 'utf8')).toBe('old\n');
      // Once this change shows, the daemon has read every event before it: the queue is empty.
      await writeFile(join(pt.source, 'f'), 'mid\n');
      expect(await mountShows(join(pt.mnt, 'f'), Buffer.from('mid\n'))).toBe(true);
      process.kill(pt.proc.pid!, 'SIGSTOP');
      try {
        for (let i = 0; i < 100; i++) await writeFile(join(pt.source, `x${i}`), 'x');
        await writeFile(join(pt.source, 'f'), 'new\n'); // same size: only an invalidation shows it
      } finally {
        process.kill(pt.proc.pid!, 'SIGCONT');
      }
      expect(await mountShows(join(pt.mnt, 'f'), Buffer.from('new\n'))).toBe(true);
    } finally {
      await pt.unmount();
    }
  });
});
