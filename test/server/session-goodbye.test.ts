// Session.close() says goodbye: the server ends the session at once (its locks released, its files
// closed), while a session whose stream merely breaks keeps both for its lease. Long lease here, so
// "at once" and "after the lease" cannot be confused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { RawSession, nodeCredentials, openSession } from '../harness/session-peer.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import type { Session } from '../../proto/session-client.js';

const LEASE_MS = 60_000;
const WRITE = 1;
let tmp: string;
let ca: TestCa;
let d: MfsdHandle | undefined;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omfs-session-goodbye-'));
  ca = await makeTestCa(tmp);
  d = await startMfsd({ ca, nodeId: 1, config: { sessions: { leaseMs: LEASE_MS } } });
}, 120_000);

afterAll(async () => {
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

const session = async (node: number): Promise<Session> => openSession(d!.address, await nodeCredentials(ca, node), node);
const lock = (owner: string) => ({ clientId: owner, lockOwner: 1, start: 0, end: 99, type: WRITE });
/** mfsd's fds open on the file at `path`. */
function fdsOn(path: string): number {
  const dir = `/proc/${d!.proc.pid!}/fd`;
  return readdirSync(dir).filter((fd) => {
    try {
      return fs.readlinkSync(join(dir, fd)) === path;
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}


describe('goodbye', () => {
  it('close() releases the lock and the open file at once, far inside the lease; a broken stream does not', async () => {
    const observer = await session(2);
    try {
      const top = await observer.root(root, d!.exports[0]!.path);
      const made = await observer.create(root, top.handle, 'bye', fs.constants.O_RDWR | fs.constants.O_CREAT);
      await observer.release(root, made.fh, made.entry.handle);
      const f = made.entry.handle;
      const polite = await session(3);
      const fh = await polite.open(root, f, fs.constants.O_RDWR);
      await polite.setLk(root, f, lock('polite'));
      expect(fh).toBeDefined();
      const path = join(d!.exports[0]!.path, 'bye');
      expect(fdsOn(path)).toBe(1);
      polite.close();
      await waitFor('lock released after goodbye', async () => !(await observer.getLk(root, f, lock('observer'))).conflict, 10_000, 20);
      await waitFor('fd closed after goodbye', () => fdsOn(path) === 0, 10_000, 20);

      // The same through a raw stream that is cancelled without a Goodbye: held for the lease.
      const raw = new RawSession(d!.address, await nodeCredentials(ca, 4));
      raw.hello(4, 1);
      expect((await raw.reply(1)).kind).toBe('welcome');
      raw.send({ id: 2, set_lk: { caller: root, handle: f, client_id: 'raw', lock_owner: 1, start: 0, end: 99, type: WRITE } });
      expect((await raw.reply(2)).kind).toBe('empty');
      raw.close();
      await new Promise((r) => setTimeout(r, 1000));
      expect((await observer.getLk(root, f, lock('observer'))).conflict).toBe(true);
    } finally {
      observer.close();
    }
  }, 60_000);
});
