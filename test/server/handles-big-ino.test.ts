// Issue 9, "st_ino handled as a 64-bit integer with the overflow counter checked": HandleStore on a
// temp LevelDB. An inode number past 2^53 (where a JS number would round it) and past 2^40 (where it
// no longer fits beside the device index) gets a counter id that survives a reopen; two of them
// that differ only in the low bits stay apart; concurrent first sightings never share an id; and the
// counter at its 40-bit limit refuses with EOVERFLOW instead of wrapping into another id.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { BIG_ID_LIMIT, HandleStore } from '../../server/handles.js';
import { code } from '../harness/outcome.js';

const DEV = 2049;
const HUGE = (1n << 63n) + 5n;
const LOCAL_ID_BITS = 48n;

let dir: string;
let store: HandleStore | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'omfs-handles-'));
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function reopen(): Promise<HandleStore> {
  await store?.close();
  store = await HandleStore.open(dir);
  return store;
}

/** Sets the persisted big-id counter (the store must be closed). */
async function setBigNext(value: bigint): Promise<void> {
  const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
  await db.open();
  await db.put('big-next', value.toString());
  await db.close();
}

describe('64-bit st_ino', () => {
  it('maps an inode number of 2^63+5 to a stable 48-bit id across a reopen', async () => {
    const s = await reopen();
    const id = await s.localId(DEV, HUGE);
    expect(id >> LOCAL_ID_BITS).toBe(0n);
    // Not the truncated or rounded number, and not the 2^63+4 neighbour's id.
    const neighbour = await s.localId(DEV, HUGE - 1n);
    expect(neighbour).not.toBe(id);
    expect(await s.localId(DEV, HUGE)).toBe(id);
    expect(s.knownLocalId(DEV, HUGE)).toBe(id);

    const again = await reopen();
    // Not looked up since this start: the watcher's lookup does not read LevelDB or allocate.
    expect(again.knownLocalId(DEV, HUGE)).toBeUndefined();
    expect(await again.localId(DEV, HUGE)).toBe(id);
    expect(again.knownLocalId(DEV, HUGE)).toBe(id);
    expect(await again.localId(DEV, HUGE - 1n)).toBe(neighbour);
  });

  it('small inode numbers keep their own bits, and knownLocalId never allocates a device', async () => {
    const s = await reopen();
    expect(s.knownLocalId(DEV, 12n)).toBeUndefined();
    const id = await s.localId(DEV, 12n);
    expect(id & ((1n << 40n) - 1n)).toBe(12n);
    expect(s.knownLocalId(DEV, 12n)).toBe(id);
    expect(s.knownLocalId(DEV + 1, 12n)).toBeUndefined();
  });

  it('concurrent first sightings of big inode numbers get distinct ids', async () => {
    const s = await reopen();
    const inos = Array.from({ length: 50 }, (_, i) => (1n << 41n) + BigInt(i));
    const ids = await Promise.all([...inos, ...inos].map((ino) => s.localId(DEV, ino)));
    expect(new Set(ids.slice(0, 50)).size).toBe(50);
    expect(ids.slice(50)).toEqual(ids.slice(0, 50));
  });

  it('refuses cleanly with EOVERFLOW when the counter is at its 40-bit limit', async () => {
    await reopen();
    await store!.localId(DEV, 1n); // the device gets its index
    await store!.close();
    store = undefined;
    await setBigNext(BIG_ID_LIMIT - 1n);
    const s = await reopen();
    const last = await s.localId(DEV, HUGE);
    expect(last & (BIG_ID_LIMIT - 1n)).toBe(BIG_ID_LIMIT - 1n);
    const refused = await code(s.localId(DEV, HUGE + 1n));
    expect(refused).toBe('EOVERFLOW');
    await expect(s.localId(DEV, HUGE + 1n)).rejects.toThrow(/40-bit id/);
    // What was mapped stays mapped, small inodes are unaffected, and nothing was written past the limit.
    expect(await s.localId(DEV, HUGE)).toBe(last);
    expect((await s.localId(DEV, 7n)) & 0xffn).toBe(7n);
    const again = await reopen();
    expect(await again.localId(DEV, HUGE)).toBe(last);
    expect(await code(again.localId(DEV, HUGE + 2n))).toBe('EOVERFLOW');
  });
});
