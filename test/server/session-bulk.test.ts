// Issue 9, step 1: 1 MiB reads and writes are one request each on the session, many in flight, each
// reply carrying its own range; a small request sent while several 1 MiB reads are in flight
// completes (its latency under load is printed by bench/server-rpc.ts, not asserted here).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Session } from '../../proto/session-client.js';

const { O_RDWR, O_CREAT } = fs.constants;
const MiB = 1 << 20;
const CHUNKS = 16;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
let s: Session | undefined;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-bulk-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1 });
  s = await openSession(d.address, await nodeCredentials(ca, 2), 2);
}, 120_000);

afterAll(async () => {
  s?.close();
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

/** Chunk i: every 4-byte word holds i * 2^20 + its offset, so a chunk read from the wrong place shows. */
function chunk(i: number): Buffer {
  const b = Buffer.alloc(MiB);
  for (let o = 0; o < MiB; o += 4) b.writeUInt32LE(i * MiB + o, o);
  return b;
}

describe('bulk data on a session', () => {
  it('16 one-MiB writes and then 16 one-MiB reads in flight together, each its own range; a getattr completes meanwhile', async () => {
    const top = await s!.root(root, d!.exports[0]!.path);
    const { entry, fh } = await s!.create(root, top.handle, 'bulk', O_RDWR | O_CREAT);
    const written = await Promise.all(Array.from({ length: CHUNKS }, (_, i) => s!.writeChunk(root, entry.handle, fh, i * MiB, chunk(i))));
    expect(written).toEqual(Array(CHUNKS).fill(MiB));
    const onDisk = fs.readFileSync(join(d!.exports[0]!.path, 'bulk'));
    for (let i = 0; i < CHUNKS; i++) expect(onDisk.subarray(i * MiB, (i + 1) * MiB).equals(chunk(i))).toBe(true);

    // Reads in reverse order of issue would still each carry their own range.
    const reads = Array.from({ length: CHUNKS }, (_, i) => s!.readChunk(root, entry.handle, fh, (CHUNKS - 1 - i) * MiB, MiB));
    const started = performance.now();
    const attr = await s!.getAttr(root, entry.handle, fh);
    const getattrMs = performance.now() - started;
    expect(Number(attr.size)).toBe(CHUNKS * MiB);
    const got = await Promise.all(reads);
    got.forEach((b, i) => expect(b.equals(chunk(CHUNKS - 1 - i))).toBe(true));
    // Informational only (no timing assertion): how long a getattr waited behind 16 MiB of replies.
    console.log(`getattr behind ${CHUNKS} x 1 MiB reads (reads on the bulk stream): ${getattrMs.toFixed(1)} ms`);
    // One read() of the whole file and more: 1 MiB requests, cut at end of file.
    expect((await s!.read(root, entry.handle, fh, 0, CHUNKS * MiB + 5)).equals(onDisk)).toBe(true);
    await s!.release(root, fh);
  });

  it('without a bulk stream (everything on one stream) the same works; a getattr then queues behind the reads', async () => {
    const one = await openSession(d!.address, await nodeCredentials(ca, 2), 2, undefined, false);
    try {
      const top = await one.root(root, d!.exports[0]!.path);
      const f = await one.lookup(root, top.handle, 'bulk');
      const reads = Array.from({ length: CHUNKS }, (_, i) => one.readChunk(root, f.handle, 0, i * MiB, MiB));
      const started = performance.now();
      await one.getAttr(root, f.handle);
      const getattrMs = performance.now() - started;
      (await Promise.all(reads)).forEach((b, i) => expect(b.equals(chunk(i))).toBe(true));
      console.log(`getattr behind ${CHUNKS} x 1 MiB reads (one stream): ${getattrMs.toFixed(1)} ms`);
    } finally {
      one.close();
    }
  });
});
