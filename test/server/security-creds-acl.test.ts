// POSIX ACLs are honoured because the kernel checks every access with the caller's credentials
// (issue 8 point 3); only the owner or root sets an ACL; root_squash squashes gid 0 and group 0 too
// (point 9); error messages never show the daemon's /proc/self/fd paths, and xattr names come back
// exactly (point 11).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Caller, type Entry } from '../../proto/file-client.js';
import { code } from '../harness/outcome.js';

const { O_RDONLY, O_WRONLY } = fs.constants;
const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 1 };
const bob: Caller = { uid: 1001, gid: 1001, groups: [], pid: 2 };
const R_OK = 4;

let h: Harness;
let top: Entry;
let sq: Entry;
const A = (...p: string[]) => join(h.exports[0]!, ...p);
const SQ = (...p: string[]) => join(h.exports[1]!, ...p);

beforeEach(async () => {
  h = await startHarness({ exports: [{ name: 'rw' }, { name: 'sq', rootSquash: true }] });
  top = await h.client.root(root, h.exports[0]!);
  sq = await h.client.root(root, h.exports[1]!);
});
afterEach(async () => { await h.stop(); });

const failure = async (p: Promise<unknown>): Promise<Error> => {
  try { await p; } catch (err) { return err as Error; }
  throw new Error('expected a failure');
};
const setfacl = (...args: string[]): void => { execFileSync('setfacl', args); };

describe('ACLs are the kernel\'s (issue 8 point 3)', () => {
  it('a user:1000:--- entry denies uid 1000 although "other" may read; uid 1001 reads', async () => {
    fs.writeFileSync(A('f'), 'secret');
    fs.chmodSync(A('f'), 0o644);
    setfacl('-m', 'u:1000:---', A('f'));
    const f = await h.client.lookup(root, top.handle, 'f');
    expect(await code(h.client.open(alice, f.handle, O_RDONLY))).toBe('EACCES');
    expect(await code(h.client.read(alice, f.handle, '0', 0, 10))).toBe('EACCES');
    expect(await code(h.client.access(alice, f.handle, R_OK))).toBe('EACCES');
    expect(await code(h.client.open(bob, f.handle, O_RDONLY))).toBe('OK');
    expect((await h.client.read(bob, f.handle, '0', 0, 10)).toString()).toBe('secret');
    // An ACL entry that grants: uid 1001 may write a 0644 root file.
    setfacl('-m', 'u:1001:rw', A('f'));
    expect(await code(h.client.open(bob, f.handle, O_WRONLY))).toBe('OK');
    expect(await code(h.client.open(alice, f.handle, O_WRONLY))).toBe('EACCES');
  });

  it('a directory with user:1000:--- : no lookup, getattr or listing below it for uid 1000', async () => {
    fs.mkdirSync(A('d'));
    fs.writeFileSync(A('d', 'f'), 'x');
    const d = await h.client.lookup(root, top.handle, 'd');
    const f = await h.client.lookup(root, d.handle, 'f');
    setfacl('-m', 'u:1000:---', A('d'));
    expect(await code(h.client.lookup(alice, d.handle, 'f'))).toBe('EACCES');
    expect(await code(h.client.getAttr(alice, f.handle))).toBe('EACCES');
    expect(await code(h.client.readDir(alice, d.handle))).toBe('EACCES');
    expect(await code(h.client.lookup(bob, d.handle, 'f'))).toBe('OK');
    expect(await code(h.client.getAttr(bob, f.handle))).toBe('OK');
  });

  it('only the owner (or root) sets system.posix_acl_access, even with write permission', async () => {
    fs.writeFileSync(A('g'), 'x');
    fs.chownSync(A('g'), 1001, 1001);
    fs.chmodSync(A('g'), 0o646);
    const g = await h.client.lookup(root, top.handle, 'g');
    // A well-formed ACL value, made by setfacl on a scratch file: user::rwx group::rwx other::rwx.
    fs.writeFileSync(A('scratch'), '');
    setfacl('-m', 'u::rwx,g::rwx,o::rwx,u:1000:rwx,m::rwx', A('scratch'));
    const scratch = await h.client.lookup(root, top.handle, 'scratch');
    const acl = await h.client.getXattr(root, scratch.handle, 'system.posix_acl_access');
    expect(await code(h.client.setXattr(alice, g.handle, 'system.posix_acl_access', acl))).toBe('EPERM');
    expect(fs.statSync(A('g')).mode & 0o7777).toBe(0o646);
    expect(await code(h.client.removeXattr(alice, g.handle, 'system.posix_acl_access'))).not.toBe('OK');
    // The owner can, and the file is then rwx for everyone (the ACL's mask and other entries).
    expect(await code(h.client.setXattr(bob, g.handle, 'system.posix_acl_access', acl))).toBe('OK');
    expect(fs.statSync(A('g')).mode & 0o777).toBe(0o777);
    // A default ACL on another user's directory: refused too.
    fs.mkdirSync(A('bobdir'));
    fs.chownSync(A('bobdir'), 1001, 1001);
    fs.chmodSync(A('bobdir'), 0o777);
    const bd = await h.client.lookup(root, top.handle, 'bobdir');
    expect(await code(h.client.setXattr(alice, bd.handle, 'system.posix_acl_default', acl))).toBe('EPERM');
    // Reading an ACL needs no permission on the file, as on the bare directory (getfacl works).
    fs.chmodSync(A('scratch'), 0o600);
    const now = await h.client.getXattr(root, scratch.handle, 'system.posix_acl_access');
    expect((await h.client.getXattr(alice, scratch.handle, 'system.posix_acl_access')).equals(now)).toBe(true);
  });
});

describe('root_squash squashes gid 0 and group 0 (issue 8 point 9)', () => {
  it('a root:root 0640 file is EACCES for {uid 1000, gid 0} and for group 0 as a supplementary group', async () => {
    for (const p of [SQ('f'), A('f')]) {
      fs.writeFileSync(p, 'root only');
      fs.chmodSync(p, 0o640);
    }
    fs.chmodSync(SQ(), 0o777);
    const sf = await h.client.lookup(root, sq.handle, 'f');
    const rf = await h.client.lookup(root, top.handle, 'f');
    const gid0: Caller = { uid: 1000, gid: 0, groups: [], pid: 3 };
    const group0: Caller = { uid: 1000, gid: 1000, groups: [0], pid: 4 };
    expect(await code(h.client.open(gid0, sf.handle, O_RDONLY))).toBe('EACCES');
    expect(await code(h.client.open(group0, sf.handle, O_RDONLY))).toBe('EACCES');
    expect(await code(h.client.open(root, sf.handle, O_RDONLY))).toBe('EACCES');
    // Not squashed: group 0 reads, as the kernel lets it.
    expect(await code(h.client.open(gid0, rf.handle, O_RDONLY))).toBe('OK');
    expect(await code(h.client.open(group0, rf.handle, O_RDONLY))).toBe('OK');
    // A file made on the squashed export by {uid 1000, gid 0} gets group nogroup, not root's group.
    await h.client.create(gid0, sq.handle, 'made', fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const st = fs.statSync(SQ('made'));
    expect([st.uid, st.gid]).toEqual([1000, 65534]);
  });
});

describe('error messages and xattr names (issue 8 point 11)', () => {
  it('failing xattr and statfs calls name no /proc/self/fd path', async () => {
    fs.writeFileSync(A('f'), 'x');
    fs.chmodSync(A('f'), 0o600);
    const f = await h.client.lookup(root, top.handle, 'f');
    const errors = [
      await failure(h.client.getXattr(root, f.handle, 'user.missing')),
      await failure(h.client.getXattr(alice, f.handle, 'user.missing')),
      await failure(h.client.setXattr(alice, f.handle, 'user.a', Buffer.from('1'))),
      await failure(h.client.removeXattr(root, f.handle, 'user.missing')),
      await failure(h.client.open(alice, f.handle, O_RDONLY)),
    ];
    for (const e of errors) expect(e.message).not.toContain('/proc');
    expect(errors.map((e) => (e as Error & { code: string }).code)).toEqual(['ENODATA', 'EACCES', 'EACCES', 'ENODATA', 'EACCES']);
    await h.client.symlink(root, top.handle, 'l', 'f');
    const l = await h.client.lookup(root, top.handle, 'l');
    expect(Number((await h.client.statFs(root, l.handle)).bsize)).toBeGreaterThan(0);
    expect(Number((await h.client.statFs(alice, f.handle)).namelen)).toBe(255);
  });

  it('an xattr name with a newline comes back exactly', async () => {
    fs.writeFileSync(A('f'), 'x');
    const f = await h.client.lookup(root, top.handle, 'f');
    const name = 'user.two\nlines \\012';
    await h.client.setXattr(root, f.handle, name, Buffer.from('v'));
    expect(await h.client.listXattr(root, f.handle)).toContain(name);
    expect((await h.client.getXattr(root, f.handle, name)).toString()).toBe('v');
  });
});
