// Issue 9: "locks persisted with their session, so a daemon restart within the lease keeps them";
// "daemon restart: ... handles and open files keep working". A real mfsd over mutual TLS is
// stopped (SIGTERM) and started again on the same port and state dir: a session resumed with its
// node, session id and boot id is resumed=true, its fh still reads and writes, its lock still
// excludes others; a session that does not come back loses its lock when its fresh lease expires.
// A session that expired before the restart stays expired.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { nodeCredentials, type RawSession } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { LeaseClient, identity, type Identity } from './session-lease-client.js';

const { O_RDWR, O_CREAT, O_APPEND, O_TRUNC } = fs.constants;
const WRITE = 1;
const UNLOCK = 2;
/** Covers a restart with room to spare; the expiry case waits it out once. */
const LEASE_MS = 8000;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;
const raws: RawSession[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-restart-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1, config: { sessions: { leaseMs: LEASE_MS } } });
}, 120_000);

afterEach(() => {
  for (const r of raws.splice(0)) r.close();
});

afterAll(async () => {
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

async function open(who: Identity, resume = false): Promise<LeaseClient> {
  return LeaseClient.open(d!.address, await nodeCredentials(ca, who.node), who, resume, raws);
}


interface Made { handle: Buffer; fh: number | string }

async function made(s: LeaseClient, name: string, flags: number, data: string): Promise<Made> {
  const top = await s.call<{ handle: Buffer }>('root', { caller: root, export_path: d!.exports[0]!.path });
  const c = await s.call<{ entry: { handle: Buffer }; fh: number | string }>('create', { caller: root, dir: top.handle, name: Buffer.from(name), flags: O_RDWR | O_CREAT | flags, mode: 0o644, umask: 0o022 });
  await s.call('write', { caller: root, handle: c.entry.handle, fh: c.fh, flags: O_RDWR, offset: 0, data: Buffer.from(data) });
  return { handle: c.entry.handle, fh: c.fh };
}

const lock = (handle: Buffer, owner: string, type = WRITE) => ({ caller: root, handle, client_id: owner, lock_owner: 1, start: 0, end: 9, type });
const readVia = async (s: LeaseClient, f: Made): Promise<string> =>
  (await s.call<{ data: Buffer }>('read', { caller: root, handle: f.handle, fh: f.fh, flags: O_RDWR, offset: 0, size: 100 })).data.toString();

describe('sessions across a daemon restart', () => {
  it('a resumed session keeps its fhs and locks; one that does not come back loses them after its lease; an expired one stays expired', async () => {
    const stayer = identity(3);
    const a = await open(stayer);
    // O_TRUNC must not be applied again by the reopen; O_APPEND must be kept.
    const f = await made(a, 'kept', O_TRUNC, 'hello');
    const g = await made(a, 'appended', O_APPEND, 'one,');
    await a.call('set_lk', lock(f.handle, 'a'));
    const leaver = identity(4);
    const b = await open(leaver);
    const h = await made(b, 'abandoned', 0, 'x');
    await b.call('set_lk', lock(h.handle, 'b'));
    // Expired before the restart: must not come back with it.
    const gone = identity(5);
    const c = await open(gone);

    const cLocked = (await made(c, 'expired2', 0, 'z')).handle;
    await c.call('set_lk', lock(cLocked, 'c'));
    c.close();
    // Node 5 restarted (another boot id): its away session expires at once, and is deleted from the store.
    await waitFor('the old session of node 5 away and expired', async () => {
      const reborn = await open(identity(5));
      reborn.close();
      const check = await open(identity(6));
      const free = !(await check.call<{ conflict: boolean }>('get_lk', lock(cLocked, 'check'))).conflict;
      check.close();
      return free;
    });

    await d!.restart();
    expect(await a.raw.ended).toMatchObject({ code: 'ESHUTDOWN' });

    const observer = await open(identity(7));
    const conflict = async (m: Made): Promise<boolean> => (await observer.call<{ conflict: boolean }>('get_lk', lock(m.handle, 'observer'))).conflict;
    expect(await conflict(f)).toBe(true);
    expect(await conflict(h)).toBe(true);
    await expect(observer.call('set_lk', lock(f.handle, 'observer'))).rejects.toMatchObject({ code: 'EAGAIN' });

    const back = await open(stayer, true);
    expect(back.welcome).toMatchObject({ resumed: true, lease_ms: LEASE_MS });
    expect(await readVia(back, f)).toBe('hello');
    await back.call('write', { caller: root, handle: g.handle, fh: g.fh, flags: O_RDWR, offset: 0, data: Buffer.from('two') });
    expect(await readVia(back, g)).toBe('one,two');
    // Its lock is its own: it converts and releases it.
    await back.call('set_lk', lock(f.handle, 'a', UNLOCK));
    expect(await conflict(f)).toBe(false);
    await back.call('release', { caller: root, fh: f.fh, client_id: 'a', lock_owner: 1, flush_locks: true });
    await expect(readVia(back, f)).rejects.toMatchObject({ code: 'EBADF' });

    // A client whose session the daemon lost (or never had) is told to start over.
    await expect(open(gone, true)).rejects.toMatchObject({ code: 'ESTALE' });
    // The abandoned session: its lock holds for the fresh lease, then goes.
    await waitFor('the abandoned lock released', async () => !(await conflict(h)), LEASE_MS * 4);
    await expect(open(leaver, true)).rejects.toMatchObject({ code: 'ESTALE' });
  }, 120_000);
});
