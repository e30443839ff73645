// The mount as seen by an unprivileged user (uid/gid 1000, no supplementary groups): the kernel's
// default_permissions must enforce the backing modes, and what the user creates must belong to the user.
import { chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { makeTempDir, passthroughTest } from '../harness/passthrough-mount.js';
import { must, shAs } from './tools.js';

const test = passthroughTest();
const UID = 1000;
const GID = 1000;
const scratch: string[] = [];
afterEach(async () => {
  for (const dir of scratch.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Root prepares a sticky dir and set-id files owned by uid 1000 (run on the bare dir and the mount). */
const PREPARE = `cd "$1" && mkdir -m 1777 sticky && echo theirs > sticky/theirs && chown 1000:1000 sticky/theirs &&
  chmod 0666 sticky/theirs && echo s > suid && chown 1000:1000 suid && chmod 06777 suid &&
  echo g > sgid-noexec && chown 1000:1000 sgid-noexec && chmod 02666 sgid-noexec &&
  echo r > root-suid && chmod 04755 root-suid`;
/** Then uid 1001 acts on them; every outcome is printed, so the two runs can be compared line by line. */
const AS_OTHER = `cd "$1"; try() { if "$@" 2>/dev/null; then echo "ok: $*"; else echo "refused: $*"; fi; }
  try rm -f sticky/theirs; try sh -c 'echo more >> sticky/theirs'; try sh -c 'echo x >> suid';
  try sh -c 'echo x >> sgid-noexec'; try touch sticky/mine; try rm sticky/mine; try chmod 0700 suid;
  try python3 -c 'import os; os.chown("root-suid", -1, -1)'; true`;
const AFTER = `cd "$1"; chown 0:0 root-suid; stat -c '%n %a %u %g %s' sticky sticky/theirs suid sgid-noexec root-suid`;

/** Run a node:fs call as the user and return the error code it got, or "ok". */
async function fsCodeAs(expr: string, ...args: string[]): Promise<string> {
  const program = `const fs = require('node:fs'); const a = process.argv.slice(1);
    try { ${expr}; console.log('ok'); } catch (e) { console.log(e.code); }`;
  const r = await shAs(UID, GID, 'exec node -e "$1" "${@:2}"', [program, ...args]);
  if (r.code !== 0) throw new Error(`node as ${UID} failed: ${r.stderr}`);
  return r.stdout.trim();
}

describe('as an unprivileged user', () => {
  test('cannot write a root 0644 file, read a root 0600 file, or create in a root 0755 dir: EACCES', async ({ pt }) => {
    await writeFile(join(pt.source, 'root-file'), 'root data\n', { mode: 0o644 });
    await writeFile(join(pt.source, 'root-secret'), 'secret\n', { mode: 0o600 });
    await mkdir(join(pt.source, 'root-dir'), { mode: 0o755 });
    const m = pt.mnt;

    expect(await fsCodeAs("fs.readFileSync(a[0], 'utf8')", join(m, 'root-file'))).toBe('ok');
    expect(await fsCodeAs("fs.appendFileSync(a[0], 'x')", join(m, 'root-file'))).toBe('EACCES');
    expect(await fsCodeAs('fs.readFileSync(a[0])', join(m, 'root-secret'))).toBe('EACCES');
    expect(await fsCodeAs("fs.writeFileSync(a[0], 'x')", join(m, 'root-dir/new'))).toBe('EACCES');
    expect(await fsCodeAs('fs.mkdirSync(a[0])', join(m, 'new-dir'))).toBe('EACCES');
    expect(await fsCodeAs('fs.unlinkSync(a[0])', join(m, 'root-file'))).toBe('EACCES');
    expect(await fsCodeAs('fs.chmodSync(a[0], 0o666)', join(m, 'root-file'))).toBe('EPERM');
    expect(await fsCodeAs('fs.chownSync(a[0], 1000, 1000)', join(m, 'root-file'))).toBe('EPERM');

    // Nothing changed behind the refusals.
    expect((await stat(join(pt.source, 'root-file'))).mode & 0o777).toBe(0o644);
    expect((await must('cat "$1"', [join(pt.source, 'root-file')]))).toBe('root data\n');
    expect((await must('ls -A "$1"', [join(pt.source, 'root-dir')])).trim()).toBe('');
  });

  test('files, dirs and symlinks the user creates belong to the user in the backing dir', async ({ pt }) => {
    await mkdir(join(pt.source, 'home'), { mode: 0o755 });
    await chown(join(pt.source, 'home'), UID, GID);
    const home = join(pt.mnt, 'home');
    const r = await shAs(UID, GID, 'cd "$1" && umask 022 && echo mine > file && mkdir dir && ln -s file link && mkfifo fifo && cp file dir/copy && mv dir/copy dir/moved', [home]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const owners = await must("stat -c '%n %u %g %a' file dir link fifo dir/moved", [], { cwd: join(pt.source, 'home') });
    expect(owners.trim().split('\n')).toEqual([
      `file ${UID} ${GID} 644`,
      `dir ${UID} ${GID} 755`,
      `link ${UID} ${GID} 777`,
      `fifo ${UID} ${GID} 644`,
      `dir/moved ${UID} ${GID} 644`,
    ]);
    // The owner may chmod its own file; a file given away to root is then out of its reach.
    expect(await fsCodeAs('fs.chmodSync(a[0], 0o600)', join(home, 'file'))).toBe('ok');
    expect((await stat(join(pt.source, 'home/file'))).mode & 0o777).toBe(0o600);
    await chown(join(home, 'file'), 0, 0);
    expect(await fsCodeAs('fs.readFileSync(a[0])', join(home, 'file'))).toBe('EACCES');
    // ...but it can still be unlinked: the directory is the user's.
    expect(await fsCodeAs('fs.unlinkSync(a[0])', join(home, 'file'))).toBe('ok');
  });

  test('a group-writable dir admits a member of the group and no one else', async ({ pt }) => {
    await mkdir(join(pt.source, 'shared'), { mode: 0o775 });
    await chown(join(pt.source, 'shared'), 0, GID);
    await must('chmod 0775 "$1"', [join(pt.source, 'shared')]);
    expect(await fsCodeAs("fs.writeFileSync(a[0], 'g')", join(pt.mnt, 'shared/by-member'))).toBe('ok');
    const other = await shAs(1001, 1001, 'echo x > "$1" 2>/dev/null && echo ok || echo denied', [join(pt.mnt, 'shared/by-other')]);
    expect(other.stdout.trim()).toBe('denied');
    expect((await must("stat -c '%u %g' \"$1\"", [join(pt.source, 'shared/by-member')])).trim()).toBe(`${UID} ${GID}`);
  });

  test('sticky dirs, killing set-id bits on write and on chown behave exactly as on a bare dir', async ({ pt }) => {
    const bare = await makeTempDir('omfs-pt-perm-');
    scratch.push(bare);
    const outcome = async (dir: string): Promise<string> => {
      await must(PREPARE, [dir]);
      const acted = await shAs(1001, 1001, AS_OTHER, [dir]);
      return acted.stdout + (await must(AFTER, [dir]));
    };
    const onBare = await outcome(bare);
    expect(onBare).toContain('refused: rm -f sticky/theirs');
    expect(onBare).toContain('suid 777 1000 1000'); // the write by another user dropped both set-id bits
    expect(onBare).toContain('refused: python3'); // chown(f, -1, -1) would drop setuid: the owner's right
    expect(await outcome(pt.mnt)).toBe(onBare);
    expect(await must(AFTER, [pt.source])).toBe(await must(AFTER, [bare]));
  });
});

/** Root sets ACLs; uid 1000 and 1001 then read, set ACLs and create under a default ACL. */
const ACL_PREPARE = `cd "$1" && echo secret > f && chmod 0644 f && setfacl -m u:1000:--- f &&
  mkdir -m 0755 d && setfacl -d -m u:1000:rwx d && chmod 0777 d`;
const ACL_ACT = `cd "$1"; try() { if "$@" 2>/dev/null; then echo "ok: $*"; else echo "refused: $*"; fi; }
  try setpriv --reuid=1000 --regid=1000 --clear-groups cat f
  try setpriv --reuid=1001 --regid=1001 --clear-groups cat f
  try setpriv --reuid=1001 --regid=1001 --clear-groups setfacl -m u:1001:rwx f
  try setpriv --reuid=1001 --regid=1001 --clear-groups sh -c 'umask 077; echo x > d/new; mkdir d/sub'
  getfacl -cp f d/new d/sub; stat -c '%n %a %u %g' f d/new d/sub`;

describe('POSIX ACLs', () => {
  test('are enforced, only the owner may set them, and default ACLs are inherited, as on a bare dir', async ({ pt }) => {
    const bare = await makeTempDir('omfs-pt-acl-');
    scratch.push(bare);
    const outcome = async (dir: string): Promise<string> => {
      await must(ACL_PREPARE, [dir]);
      return must(ACL_ACT, [dir]);
    };
    const onBare = await outcome(bare);
    expect(onBare).toContain('refused: setpriv --reuid=1000 --regid=1000 --clear-groups cat f'); // user:1000:---
    expect(onBare).toContain('refused: setpriv --reuid=1001 --regid=1001 --clear-groups setfacl');
    expect(await outcome(pt.mnt)).toBe(onBare.split(bare).join(pt.mnt));
  });
});
