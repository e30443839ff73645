// Issue 8 point 7: a lock only on a file the caller could open. uid 1000 write-locked root's 0600
// file and root's own SetLk then got EAGAIN. As fcntl(2): a read lock needs the file readable by the
// caller, a write lock writable (EBADF when the caller could only open it the other way, EACCES when
// not at all), decided by the kernel with the caller's credentials, ACLs included (server/ops-locks.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT_CALLER as root, type Caller, type Entry } from '../../proto/file-client.js';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { code } from '../harness/outcome.js';

const READ = 0;
const WRITE = 1;
const UNLOCK = 2;
const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 11 };
let h: Harness;
let top: Entry;
const clientId = randomUUID();

beforeEach(async () => {
  h = await startHarness({ exports: [{ name: 'rw' }, { name: 'ro', readOnly: true }] });
  for (const e of h.exports) fs.chmodSync(e, 0o777);
  top = await h.client.root(root, h.exports[0] as string);
});
afterEach(async () => {
  await h?.stop();
});

/** A root-owned file with `mode` in the first export, and its handle. */
async function rootFile(name: string, mode: number): Promise<Buffer> {
  const path = join(h.exports[0] as string, name);
  fs.writeFileSync(path, 'x');
  fs.chmodSync(path, mode);
  return (await h.client.lookup(root, top.handle, name)).handle;
}
function lk(who: Caller, handle: Buffer, type: number, owner: number, start = 0, end = 99): object {
  return { caller: who, handle, client_id: clientId, lock_owner: String(owner), start: String(start), end: String(end), type };
}

describe('locks only on files the caller could open', () => {
  it("uid 1000 cannot lock root's 0600 file; root's own lock then succeeds", async () => {
    const f = await rootFile('secret', 0o600);
    expect(await code(h.client.call('SetLk', lk(alice, f, WRITE, 1)))).toBe('EACCES');
    expect(await code(h.client.call('SetLk', lk(alice, f, READ, 1)))).toBe('EACCES');
    expect(await code(h.client.call('SetLkW', lk(alice, f, WRITE, 1)))).toBe('EACCES');
    expect(await code(h.client.call('GetLk', lk(alice, f, WRITE, 1)))).toBe('EACCES');
    expect(await code(h.client.call('SetLk', lk(root, f, WRITE, 2)))).toBe('OK');
  });

  it('a read-only file takes read locks, and a write lock is EBADF (an fd of the wrong mode)', async () => {
    const f = await rootFile('readable', 0o644);
    expect(await code(h.client.call('SetLk', lk(alice, f, READ, 1)))).toBe('OK');
    expect(await code(h.client.call('SetLk', lk(alice, f, WRITE, 1)))).toBe('EBADF');
    expect(await code(h.client.call('SetLk', lk(alice, f, UNLOCK, 1)))).toBe('OK');
    // root's write lock is not in anyone's way now
    expect(await code(h.client.call('SetLk', lk(root, f, WRITE, 2)))).toBe('OK');
  });

  it('a write-only file takes write locks, and a read lock is EBADF', async () => {
    const f = await rootFile('drop', 0o622);
    expect(await code(h.client.call('SetLk', lk(alice, f, WRITE, 1)))).toBe('OK');
    expect(await code(h.client.call('SetLk', lk(alice, f, READ, 1)))).toBe('EBADF');
    expect(await code(h.client.call('GetLk', lk(alice, f, READ, 1)))).toBe('OK');
  });

  it('an ACL entry denying uid 1000 is honoured although the mode bits let others read', async () => {
    const f = await rootFile('acl', 0o644);
    execFileSync('setfacl', ['-m', 'u:1000:---', join(h.exports[0] as string, 'acl')]);
    expect(await code(h.client.call('SetLk', lk(alice, f, READ, 1)))).toBe('EACCES');
    expect(await code(h.client.call('SetLk', lk({ ...alice, uid: 1001 }, f, READ, 1)))).toBe('OK');
  });

  it('unlocking never needs access: a lock taken before a chmod can still be dropped', async () => {
    const f = await rootFile('later', 0o666);
    expect(await code(h.client.call('SetLk', lk(alice, f, WRITE, 1)))).toBe('OK');
    fs.chmodSync(join(h.exports[0] as string, 'later'), 0o600);
    expect(await code(h.client.call('SetLk', lk(alice, f, UNLOCK, 1, 0, 99)))).toBe('OK');
    expect(await code(h.client.call('SetLk', lk(root, f, WRITE, 2)))).toBe('OK');
  });

  it('on a read-only export a readable file takes read locks only, even for root', async () => {
    fs.writeFileSync(join(h.exports[1] as string, 'ro-file'), 'x');
    const roRoot = await h.client.root(root, h.exports[1] as string);
    const f = (await h.client.lookup(root, roRoot.handle, 'ro-file')).handle;
    expect(await code(h.client.call('SetLk', lk(root, f, READ, 1)))).toBe('OK');
    expect(await code(h.client.call('SetLk', lk(root, f, WRITE, 1)))).toBe('EBADF');
  });

  it('a directory takes a read lock but never a write lock', async () => {
    await h.client.mkdir(root, top.handle, 'd', 0o777);
    const d = (await h.client.lookup(root, top.handle, 'd')).handle;
    expect(await code(h.client.call('SetLk', lk(alice, d, READ, 1)))).toBe('OK');
    expect(await code(h.client.call('SetLk', lk(alice, d, WRITE, 1)))).toBe('EBADF');
  });
});
