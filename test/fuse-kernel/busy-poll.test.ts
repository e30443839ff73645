// Busy polling of /dev/fuse (BusyPoll in fuse/kernel/device.ts) against a real kernel: requests
// read by the spin are answered like any other, an answer still pending on the event loop stops
// the spin (no deadlock), the event loop keeps running while a client hammers the mount, and an
// idle mount does not spin. Callers are child processes: a synchronous call from this thread into
// our own mount would wait on the thread that must answer it.
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Attr, type FileSystem, OpenFlag } from '../../fuse/kernel/index.js';
import { type InProcessMount, mountInProcess } from '../harness/in-process-fuse.js';
import { readNow, yieldCpu } from '../../sys/index.js';

const when = { sec: 1_700_000_000, nsec: 0 };
const attrOf = (ino: number, mode: number, size: number): Attr => ({
  ino, size, blocks: 0, atime: when, mtime: when, ctime: when, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096,
});
const TEXT = 'answered later\n';
const SINK = 3;
const MIB = 1_048_576;
/** WRITEs to "sink" whose data was not what the client wrote, before or after the handler's wait; bytes of those that were. */
let badWrites = 0;
let goodBytes = 0;
/**
 * A large WRITE's data (the device's own read buffer, handed over) must stay ours until we answer:
 * the client's write i is MIB bytes of i & 0xff at i * MIB. Like the /mfs mount, the handler scribbles over the request's
 * own headers in front of the payload; then it waits a little, so later requests arrive meanwhile.
 */
async function checkWrite(data: Buffer, offset: number): Promise<number> {
  // The kernel may split a write(2) in pieces (max_write), never across two of the client's writes.
  const expected = Math.floor(offset / MIB) & 0xff;
  const intact = (): boolean => data.length > 0 && data.every((b) => b === expected);
  let ok = intact();
  if (data.byteOffset >= 80) new Uint8Array(data.buffer, data.byteOffset - 80, 80).fill(0xee);
  await sleep(Math.random() * 3);
  ok = ok && intact();
  if (ok) goodBytes += data.length;
  else badWrites++;
  return data.length;
}
/** Names f0, f1, ... are files of i bytes (node id 100 + i), "late" is read asynchronously; nothing is cached by the kernel. */
const fs: FileSystem = {
  lookup(_ctx, r) {
    const name = r.name.toString();
    if (name === 'sink') return { nodeId: SINK, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: attrOf(SINK, 0o100644, 0) };
    if (name === 'late') return { nodeId: 2, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: attrOf(2, 0o100644, TEXT.length) };
    const m = /^f(\d+)$/.exec(name);
    if (!m) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const i = Number(m[1]);
    return { nodeId: 100 + i, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: attrOf(100 + i, 0o100644, i) };
  },
  getattr(_ctx, r) {
    const id = r.header.nodeId;
    return { attr: id === 1 ? attrOf(1, 0o040755, 0) : attrOf(id, 0o100644, id >= 100 ? id - 100 : TEXT.length), attrTimeout: 0 };
  },
  // "sink" takes writes straight (DIRECT_IO: one WRITE per write(2)), each checked by checkWrite.
  open: (_ctx, r) => ({ fh: 1, openFlags: r.header.nodeId === SINK ? OpenFlag.DIRECT_IO : 0 }),
  write: (_ctx, r) => checkWrite(r.data, r.offset),
  async read(_ctx, r) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    return Buffer.from(TEXT).subarray(r.offset, r.offset + r.size);
  },
};

let mount: InProcessMount;
let mnt: string;
/** readNow calls that found a request, all calls, and the spin's yields between empty ones. */
const reads = { found: 0, all: 0, idle: 0 };

const node = (code: string): Promise<{ code: number; out: string; err: string }> =>
  new Promise((resolve) => execFile(process.execPath, ['-e', code], { timeout: 30_000 }, (e, out, err) => resolve({ code: e ? Number(e.code ?? 1) : 0, out, err })));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  mount = await mountInProcess(fs, 'omfs-busy-poll-', {
    reuseWriteBuffers: true,
    // A budget far above a client's time between two calls, so the spin finds requests even on a busy machine.
    busyPoll: {
      microseconds: 2000,
      readNow: (f, into) => {
        const n = readNow(f, into);
        reads.all++;
        if (n > 0) reads.found++;
        return n;
      },
      idle: () => {
        reads.idle++;
        yieldCpu();
      },
    },
  });
  mnt = mount.mnt;
});

afterAll(async () => {
  await mount?.unmount();
});

test('requests read by the spin are answered, and the event loop runs while a client keeps calling', async () => {
  // The longest the event loop went without running a timer while the client was calling.
  let last = Date.now();
  let longestGap = 0;
  const timer = setInterval(() => {
    longestGap = Math.max(longestGap, Date.now() - last);
    last = Date.now();
  }, 5);
  // 40 000 lookups back to back (a second or two), each checked against the size the filesystem gives that name.
  const r = await node(`const fs = require('node:fs'); let bad = 0;
    for (let i = 0; i < 40000; i++) if (fs.lstatSync(${JSON.stringify(mnt)} + '/f' + (i % 500)).size !== i % 500) bad++;
    let missing = 0; try { fs.lstatSync(${JSON.stringify(mnt)} + '/nope'); } catch (e) { if (e.code === 'ENOENT') missing = 1; }
    console.log(bad, missing);`);
  clearInterval(timer);
  expect(r).toMatchObject({ code: 0, out: '0 1\n' });
  expect(reads.found).toBeGreaterThan(0);
  // Between two reads that found nothing, the spin yields the CPU (to a client woken on it).
  expect(reads.idle).toBeGreaterThan(0);
  expect(reads.idle).toBeLessThan(reads.all);
  // A spin that never yielded would hold the loop for the whole run; yielding, it is held for
  // milliseconds (a loaded machine may stretch that, not to half a second).
  expect(longestGap).toBeLessThan(500);
});

test('an answer still pending on the event loop is not held up by the spin', async () => {
  const r = await node(`const fs = require('node:fs'); const out = [];
    for (let i = 0; i < 50; i++) out.push(fs.readFileSync(${JSON.stringify(mnt)} + '/late', 'utf8'));
    console.log(out.every((t) => t === ${JSON.stringify(TEXT)}) ? 'ok' : 'bad');`);
  expect(r).toMatchObject({ code: 0, out: 'ok\n' });
});

test('large WRITEs read by the spin or by the event loop keep their data until answered, with read buffers reused', async () => {
  // The client pauses 0-4 ms between writes, so some WRITEs are read by a spin and some, after a
  // spin gave up, by the event loop: a buffer must never be read into while a WRITE holds it.
  const r = await node(`const fs = require('node:fs'); const fd = fs.openSync(${JSON.stringify(mnt)} + '/sink', 'w');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 200; i++) {
      if (fs.writeSync(fd, Buffer.alloc(${MIB}, i & 0xff), 0, ${MIB}, i * ${MIB}) !== ${MIB}) throw new Error('short write');
      Atomics.wait(pause, 0, 0, Math.random() * 4);
    }
    fs.closeSync(fd); console.log('written');`);
  expect(r).toMatchObject({ code: 0, out: 'written\n' });
  expect({ goodBytes, badWrites }).toEqual({ goodBytes: 200 * MIB, badWrites: 0 });
});

test('an idle mount does not spin', async () => {
  await node(`require('node:fs').lstatSync(${JSON.stringify(mnt)} + '/f1')`);
  await sleep(100); // the last spin ends 2 ms after the last answer
  const before = reads.all;
  await sleep(300);
  expect(reads.all).toBe(before);
});

test('a client a little slower than the budget is caught once the budget has grown', async () => {
  // Base budget 300 us; the client pauses 600 us between calls: every spin at the base budget
  // gives up just before the next call comes, which the event loop then reads. The budget doubles
  // on such a near miss (up to 4x), so the spin then reads most calls' first request.
  const seen = { bySpin: 0, all: 0 };
  const counted: FileSystem = {
    ...fs,
    lookup(ctx, r) {
      seen.all++;
      return fs.lookup!(ctx, r);
    },
    getattr(ctx, r) {
      seen.all++;
      return fs.getattr!(ctx, r);
    },
  };
  const slow = await mountInProcess(counted, 'omfs-busy-poll-grow-', {
    busyPoll: {
      microseconds: 300,
      readNow: (f, into) => {
        const n = readNow(f, into);
        if (n > 0) seen.bySpin++;
        return n;
      },
      idle: yieldCpu,
    },
  });
  try {
    const calls = 400;
    const r = await node(`const fs = require('node:fs'); const pause = new Int32Array(new SharedArrayBuffer(4));
      let bad = 0;
      for (let i = 0; i < ${calls}; i++) {
        if (fs.lstatSync(${JSON.stringify(slow.mnt)} + '/f' + (i % 50)).size !== i % 50) bad++;
        const until = process.hrtime.bigint() + 600000n;
        while (process.hrtime.bigint() < until) Atomics.wait(pause, 0, 0, 0.05);
      }
      console.log(bad);`);
    expect(r).toMatchObject({ code: 0, out: '0\n' });
    const byEventLoop = seen.all - seen.bySpin;
    expect(byEventLoop).toBeLessThan(calls / 2);
  } finally {
    await slow.unmount();
  }
});
