// New files made through mfsd by uid 1000 are exactly what uid 1000 gets on the bare directory:
// owner, group and set-id bits in a setgid directory, mode and ACL under a default ACL, the umask.
// The oracle is the kernel itself: the same creations run by `setpriv` as uid 1000 on a twin
// directory. (mfsd used to create as root and then chown/chmod, which loses default ACLs.)
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Caller, type Entry } from '../../proto/file-client.js';

const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 1 };
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const UMASK = 0o022;

let h: Harness;
let top: Entry;
const A = (...p: string[]) => join(h.exports[0]!, ...p);

beforeEach(async () => {
  h = await startHarness();
  fs.chmodSync(h.dir, 0o755);
  top = await h.client.root(root, h.exports[0]!);
});
afterEach(async () => { await h.stop(); });

const KOFFI = join(process.cwd(), 'node_modules', 'koffi', 'index.js');

/** What uid 1000 (no supplementary groups) gets on the bare directory `dir`: its own syscalls. */
function makeOnBareDir(dir: string): void {
  const script = `
    import * as fs from 'node:fs';
    const koffi = (await import(${JSON.stringify(KOFFI)})).default;
    const mknod = koffi.load('libc.so.6').func('int mknod(const char *, uint32_t, uint64_t)');
    process.umask(${UMASK});
    fs.closeSync(fs.openSync('f', fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o2666));
    fs.mkdirSync('d', 0o777);
    if (mknod('p', 0o10000 | 0o4666, 0) !== 0) throw new Error('mknod failed');
    if (mknod('s', 0o140000 | 0o777, 0) !== 0) throw new Error('mknod failed');
    fs.symlinkSync('f', 'l');
    process.exit(0);
  `;
  execFileSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { cwd: dir });
}

async function makeThroughMfsd(dir: Entry): Promise<void> {
  await h.client.create(alice, dir.handle, 'f', fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o2666, UMASK);
  await h.client.mkdir(alice, dir.handle, 'd', 0o777, UMASK);
  await h.client.mknod(alice, dir.handle, 'p', S_IFIFO | 0o4666, UMASK);
  await h.client.mknod(alice, dir.handle, 's', S_IFSOCK | 0o777, UMASK);
  await h.client.symlink(alice, dir.handle, 'l', 'f');
}

/** Owner, group, mode and ACLs (getfacl) of each made name. */
function describeMade(dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of ['f', 'd', 'p', 's', 'l']) {
    const st = fs.lstatSync(join(dir, n));
    const acl = st.isSymbolicLink()
      ? ''
      : execFileSync('getfacl', ['-cp', n], { cwd: dir, encoding: 'utf8' });
    out[n] = { uid: st.uid, gid: st.gid, mode: (st.mode & 0o177777).toString(8), acl };
  }
  return out;
}

/** Two twin directories prepared by `prepare`: one for the bare kernel, one served by mfsd. */
async function compare(prepare: (dir: string) => void): Promise<{ bare: Record<string, unknown>; served: Record<string, unknown> }> {
  for (const n of ['bare', 'served']) {
    fs.mkdirSync(A(n));
    prepare(A(n));
  }
  makeOnBareDir(A('bare'));
  await makeThroughMfsd(await h.client.lookup(alice, top.handle, 'served'));
  return { bare: describeMade(A('bare')), served: describeMade(A('served')) };
}

describe('creation as the caller (issue 8 points 1 and 3)', () => {
  it('in a setgid directory of a group the caller is not in', async () => {
    const { bare, served } = await compare((dir) => {
      fs.chownSync(dir, 0, 2000);
      fs.chmodSync(dir, 0o2777);
    });
    expect(served).toEqual(bare);
    // What the kernel gives, spelled out: the directory's group; a directory inherits setgid, and a
    // file keeps the setgid it asked for when it has no group-execute (nothing to strip).
    expect(served['f']).toMatchObject({ uid: 1000, gid: 2000, mode: '102644' });
    expect(served['d']).toMatchObject({ uid: 1000, gid: 2000, mode: '42755' });
  });

  it('in a directory with a default ACL (the umask does not apply)', async () => {
    const { bare, served } = await compare((dir) => {
      fs.chmodSync(dir, 0o777);
      execFileSync('setfacl', ['-d', '-m', 'u::rwx,g::r-x,o::---,u:1001:rwx,m::rwx', dir]);
    });
    expect(served).toEqual(bare);
    expect(String((served['f'] as { acl: string }).acl)).toContain('user:1001:rw');
    expect(String((served['d'] as { acl: string }).acl)).toContain('default:user:1001:rwx');
  });

  it('in a plain directory with the umask', async () => {
    const { bare, served } = await compare((dir) => fs.chmodSync(dir, 0o777));
    expect(served).toEqual(bare);
  });
});
