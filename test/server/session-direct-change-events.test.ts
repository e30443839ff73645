// The direct-change watcher's reading of the kernel (sys/fanotify.ts, server/direct-changes-events.ts)
// on a real fanotify group, in this process, without mfsd: a child shell changes a temp directory
// and each kind of change must come out as exactly the Changes the callback table expects (inode
// numbers here are the files' own st_ino; the watcher maps them to cluster numbers). Events of
// other processes on the same filesystem (the machine is busy) resolve to nothing and drop out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fan from '../../sys/fanotify.js';
import { ChangeBatch, changesOf, inPlaceHandleType, type ResolveFid } from '../../server/direct-changes-events.js';
import type { Change } from '../../server/callbacks.js';

const MASK = fan.FAN_CREATE | fan.FAN_DELETE | fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO | fan.FAN_ATTRIB | fan.FAN_MODIFY
  | fan.FAN_DELETE_SELF | fan.FAN_MOVE_SELF | fan.FAN_ONDIR;

let dir: string;
let dirFd: number;
let group: number;
let fsid: bigint;
let inPlaceType: number | undefined;
/**
 * Inodes the test cares about (as a session would hold callbacks on them). A file's number leaves
 * the set when the file is removed: the filesystem is shared with the rest of the machine, and a
 * freed number may at once belong to someone else's file, whose events would then count.
 */
const known = new Set<bigint>();
const buf = Buffer.alloc(64 * 1024);

beforeAll(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'omfs-fanotify-'));
  dirFd = fs.openSync(dir, 'r');
  group = fan.fanotifyInit(fan.FAN_CLASS_NOTIF | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_UNLIMITED_QUEUE
    | fan.FAN_REPORT_FID | fan.FAN_REPORT_DFID_NAME | fan.FAN_REPORT_TARGET_FID);
  fan.fanotifyMark(group, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, MASK, dirFd, null);
  fsid = fan.fsidOf(dirFd);
  const dirIno = fs.statSync(dir, { bigint: true }).ino;
  inPlaceType = inPlaceHandleType(dirFd, dirIno);
  known.add(dirIno);
});

afterAll(() => {
  if (group !== undefined) fan.closeFd(group);
  if (dirFd !== undefined) fs.closeSync(dirFd);
  fs.rmSync(dir, { recursive: true, force: true });
});

const resolve: ResolveFid = (rec) => {
  if (rec.fsid !== fsid) return undefined;
  const ino = (rec.handleType === inPlaceType ? fan.inoOfHandle(rec.handleType, rec.handle) : undefined)
    ?? fan.statByHandle(dirFd, rec.handleType, rec.handle)?.ino;
  return ino !== undefined && known.has(ino) ? ino : undefined;
};

/** Runs `script` in a child shell inside the directory (another pid), then reads what the kernel queued. */
function changesBy(script: string): Change[] {
  execFileSync('sh', ['-c', script], { cwd: dir });
  const batch = new ChangeBatch();
  for (let n = fan.readEvents(group, buf); n > 0; n = fan.readEvents(group, buf)) {
    for (const ev of fan.parseEvents(buf, n, process.pid)) batch.add(changesOf(ev, resolve));
  }
  return batch.take();
}

const inoOf = (name: string): bigint => fs.statSync(join(dir, name), { bigint: true }).ino;
const attr = (ino: bigint): Change => ({ kind: 'attr', ino });
const data = (ino: bigint): Change => ({ kind: 'data', ino, offset: 0n, length: 0n });
const name = (d: bigint, n: string): Change => ({ kind: 'name', dir: d, name: Buffer.from(n) });
const sorted = (cs: Change[]): string[] => cs.map((c) => JSON.stringify(c, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString() : v))).sort();

describe('fanotify events as Changes', () => {
  it('each kind of direct change names exactly what a cache must drop', () => {
    const d = fs.statSync(dir, { bigint: true }).ino;
    fs.writeFileSync(join(dir, 'f'), 'x');
    fs.mkdirSync(join(dir, 'sub'));
    const f = inoOf('f');
    const sub = inoOf('sub');
    // Held open, a removed file keeps its inode number: the machine's other processes on this
    // filesystem cannot be handed it (ext4 reuses a freed number at once) while we still count it.
    const held = [fs.openSync(join(dir, 'f'), 'r'), fs.openSync(join(dir, 'sub'), 'r')];
    known.add(f).add(sub);
    try {
      changesBy('true'); // drain what this process did above (skipped by pid anyway)

      expect(sorted(changesBy('echo more >> f'))).toEqual(sorted([data(f), attr(f)]));
      expect(sorted(changesBy('chmod 600 f'))).toEqual(sorted([attr(f)]));
      expect(sorted(changesBy(': > g'))).toEqual(sorted([name(d, 'g'), attr(d)]));
      expect(sorted(changesBy('ln f h'))).toEqual(sorted([name(d, 'h'), attr(d), attr(f)]));
      expect(sorted(changesBy('rm h'))).toEqual(sorted([name(d, 'h'), attr(d), attr(f)]));
      expect(sorted(changesBy('mv f f2'))).toEqual(sorted([name(d, 'f'), name(d, 'f2'), attr(d), attr(f)]));
      expect(sorted(changesBy('chmod 750 sub'))).toEqual(sorted([attr(sub)]));
      // A subdirectory removed: its name, its parent (nlink, times), and the directory itself (gone).
      expect(sorted(changesBy('rmdir sub'))).toEqual(sorted([name(d, 'sub'), attr(d), attr(sub)]));
      // Removing the last name of a cached file: the name, the directory, and the file's attributes.
      expect(sorted(changesBy('rm f2'))).toEqual(sorted([name(d, 'f2'), attr(d), attr(f)]));
    } finally {
      known.delete(f);
      known.delete(sub);
      for (const fd of held) fs.closeSync(fd);
    }
  });

  it('changes made by the watching process itself are left out', () => {
    const f = join(dir, 'mine');
    fs.writeFileSync(f, 'x');
    const mine = inoOf('mine');
    known.add(mine);
    try {
      fs.chmodSync(f, 0o600);
      fs.appendFileSync(f, 'y');
      expect(changesBy('true')).toEqual([]);
      expect(changesBy('chmod 644 mine')).toEqual([attr(mine)]);
    } finally {
      known.delete(mine);
    }
  });

  it('a batch sends each change once', () => {
    const b = new ChangeBatch();
    b.add([attr(1n), name(1n, 'a'), data(2n)]);
    b.add([attr(1n), name(1n, 'a'), name(1n, 'b'), attr(2n)]);
    expect(b.size).toBe(5);
    expect(sorted(b.take())).toEqual(sorted([attr(1n), name(1n, 'a'), name(1n, 'b'), data(2n), attr(2n)]));
    expect(b.size).toBe(0);
  });

  it('the in-place inode number is trusted only where it checks out: ext4 yes, tmpfs no (opened by handle there)', () => {
    const onExt4 = fs.statfsSync(dir).type === 0xef53;
    if (onExt4) expect(inPlaceType).toBe(1);
    const shm = '/dev/shm';
    if (!fs.existsSync(shm) || fs.statfsSync(shm).type !== 0x01021994) return;
    const t = fs.mkdtempSync(join(shm, 'omfs-fanotify-'));
    const tFd = fs.openSync(t, 'r');
    try {
      fs.writeFileSync(join(t, 'x'), '');
      expect(inPlaceHandleType(tFd, fs.statSync(t, { bigint: true }).ino)).toBeUndefined();
      const xFd = fs.openSync(join(t, 'x'), 'r');
      try {
        const { handleType, handle } = fan.handleOf(xFd);
        expect(fan.statByHandle(tFd, handleType, handle)?.ino).toBe(fs.statSync(join(t, 'x'), { bigint: true }).ino);
      } finally {
        fs.closeSync(xFd);
      }
    } finally {
      fs.closeSync(tFd);
      fs.rmSync(t, { recursive: true, force: true });
    }
  });

  it('an inode number stored in the handle is decoded without opening the file', () => {
    // ext4 and xfs handles (FILEID_INO32_GEN) carry it in place; the fallback opens by handle.
    fs.writeFileSync(join(dir, 'h1'), '');
    const ino = inoOf('h1');
    known.add(ino);
    execFileSync('sh', ['-c', 'chmod 600 h1'], { cwd: dir });
    const seen: bigint[] = [];
    for (let n = fan.readEvents(group, buf); n > 0; n = fan.readEvents(group, buf)) {
      for (const ev of fan.parseEvents(buf, n, process.pid)) {
        for (const r of ev.records) {
          if (r.type !== fan.FAN_EVENT_INFO_TYPE_FID || r.fsid !== fsid) continue;
          const opened = fan.statByHandle(dirFd, r.handleType, r.handle)?.ino;
          const inPlace = fan.inoOfHandle(r.handleType, r.handle);
          // (Another process's file may be gone by now: only a file still there can be compared.)
          if (r.handleType === inPlaceType && opened !== undefined) expect(inPlace).toBe(opened);
          if (opened === ino) seen.push(opened);
        }
      }
    }
    expect(seen).toContain(ino);
  });
});
