// Session dispatch without a kernel: frames go in through handle(), replies land in a temp file
// standing in for /dev/fuse, so each reply can be read back byte for byte.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { type FileSystem, Opcode, Session } from '../../fuse/kernel/index.js';
import { bytes, cstr, inHeader, u32, u64 } from './bytes.js';

let dir: string;
let fd: number;
let logged: string[];
const forgotten: Array<[number, number]> = [];

const fs: FileSystem = {
  lookup() {
    throw Object.assign(new Error('nope'), { code: 'ENOENT' });
  },
  forget(nodeId, nlookup) {
    forgotten.push([nodeId, nlookup]);
  },
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omfs-f1-dispatch-'));
  fd = openSync(join(dir, 'replies'), 'w+');
  logged = [];
  forgotten.length = 0;
});

afterEach(async () => {
  closeSync(fd);
  await rm(dir, { recursive: true, force: true });
});

/** Replies written so far, split by their length field: [unique, error] pairs. */
function replies(): Array<[bigint, number]> {
  const all = readFileSync(join(dir, 'replies'));
  const out: Array<[bigint, number]> = [];
  for (let at = 0; at < all.length; at += all.readUInt32LE(at)) out.push([all.readBigUInt64LE(at + 8), all.readInt32LE(at + 4)]);
  // Replies may leave in any order (requests run concurrently); compare them by unique.
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

test('every request is answered once; FORGET and BATCH_FORGET never', async () => {
  const s = new Session(fd, fs, { log: (l) => logged.push(l) });
  s.handle(bytes(...inHeader(Opcode.LOOKUP, 2, 1, 2), cstr('a'))); // fs throws ENOENT
  s.handle(bytes(...inHeader(Opcode.MKDIR, 4, 1, 10), u32(0o755), u32(0), cstr('d'))); // no method: ENOSYS
  s.handle(bytes(...inHeader(4000, 6, 1, 0))); // unknown opcode: ENOSYS
  s.handle(bytes(...inHeader(Opcode.FORGET, 8, 5, 8), u64(3))); // no reply
  s.handle(bytes(...inHeader(Opcode.BATCH_FORGET, 10, 0, 24), u32(1), u32(0), u64(6), u64(2))); // no reply
  await settle();
  expect(replies()).toEqual([[2n, -2], [4n, -38], [6n, -38]]);
  expect(forgotten).toEqual([[5, 3], [6, 2]]);
});

test('malformed frames get EIO when they have a unique, and the session carries on', async () => {
  const s = new Session(fd, fs, { log: (l) => logged.push(l) });
  s.handle(Buffer.alloc(10)); // short header: no unique to answer
  s.handle(bytes(...inHeader(Opcode.LOOKUP, 12, 1, 1), [65])); // name without NUL
  s.handle(bytes(...inHeader(Opcode.READ, 14, 1, 8), u64(0))); // short body
  s.handle(bytes(...inHeader(Opcode.LOOKUP, 16, 1, 2), cstr('b'))); // a good one after them
  await settle();
  expect(replies()).toEqual([[12n, -5], [14n, -5], [16n, -2]]);
  expect(logged.join('\n')).toMatch(/short-header/);
  expect(logged.join('\n')).toMatch(/missing-nul/);
});

test('--debug traces one rx and one tx line per request', async () => {
  const s = new Session(fd, fs, { debug: true, log: (l) => logged.push(l) });
  const h = inHeader(Opcode.LOOKUP, 12, 1, 2);
  s.handle(bytes(...h, cstr('a')));
  await settle();
  expect(logged).toEqual(['rx 12: LOOKUP n1 "a" p4242', 'tx 12: ENOENT 16B']);
});
