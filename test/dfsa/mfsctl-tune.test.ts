import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MFSCTL_JS, runNode } from '../harness/mfsd.js';

describe('mfsctl getcosts|setcosts|gettune|settune|getdecay|setdecay', () => {
  let dir: string;
  let state: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'omfs-mfsctl-tune-'));
    state = join(dir, 'state');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const ctl = (...args: string[]) => runNode(MFSCTL_JS, [...args, '--state-dir', state]);

  it("prints openMosix's defaults in its format before anything is set", async () => {
    expect(await ctl('getcosts')).toMatchObject({ code: 0, stdout: '36 40 14 19 88 56\n', stderr: '' });
    expect(await ctl('gettune')).toMatchObject({ code: 0, stdout: '81 150 39 38 0 11 0 18 0 18 0 12 8141 351\n' });
    expect(await ctl('getdecay')).toMatchObject({ code: 0, stdout: '1 975 926\n' });
  });

  it('set* persists in the state directory, in the same format, read back by a later run', async () => {
    expect(await ctl('setcosts', '30', '41', '15', '20', '80', '50')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    // One quoted line, as one would `echo` it into the /proc file, works too.
    expect((await ctl('settune', '81 150 39 38 0 11 0 18 0 18 0 12 10000 351')).code).toBe(0);
    expect((await ctl('setdecay', '5', '990', '900')).code).toBe(0);
    expect(await readFile(join(state, 'mfscosts'), 'utf8')).toBe('30 41 15 20 80 50\n');
    expect((await ctl('getcosts')).stdout).toBe('30 41 15 20 80 50\n');
    expect((await ctl('gettune')).stdout).toBe('81 150 39 38 0 11 0 18 0 18 0 12 10000 351\n');
    expect((await ctl('getdecay')).stdout).toBe('5 990 900\n');
    // --state-dir=DIR and the option before the command work as well.
    expect((await runNode(MFSCTL_JS, [`--state-dir=${state}`, 'getcosts'])).stdout).toBe('30 41 15 20 80 50\n');
    expect((await runNode(MFSCTL_JS, ['--state-dir', state, 'getdecay'])).stdout).toBe('5 990 900\n');
  });

  it('refuses bad values naming the field and why, exit 2, and changes nothing', async () => {
    await ctl('setcosts', '1', '2', '3', '4', '5', '6');
    const cases: Array<[string[], string, string]> = [
      [['setcosts', '1', '2', 'x', '4', '5', '6'], 'mfscosts field 3 (MFSCOSTINKB_S, per KB in, server side): "x" is not a number', 'setcosts CONN_S'],
      [['setcosts', '1', '2', '3', '-4', '5', '6'], 'mfscosts field 4 (MFSCOSTINKB_C, per KB in, client side): "-4" is negative', 'setcosts CONN_S'],
      [['setcosts', '1', '2', '3', '4', '5', '6.5'], 'mfscosts field 6 (MFSCOSTOUTKB_C, per KB out, client side): "6.5" is not a whole number', 'setcosts CONN_S'],
      [['setcosts', '1', '2', '3', '4', '5', '70000000'], 'mfscosts field 6 (MFSCOSTOUTKB_C, per KB out, client side): 70000000 is too large', 'setcosts CONN_S'],
      [['setcosts', '1', '2', '3'], 'mfscosts: 3 values given, 6 expected', 'setcosts CONN_S'],
      [['settune', '1'], 'overheads: 1 value given, 14 expected', 'settune V1'],
      [['setdecay', '0', '975', '926'], 'decay field 1 (INTERVAL, seconds between decays): 0 is too small', 'setdecay INTERVAL'],
      [['setdecay', '1', '1200', '926'], 'decay field 2 (SLOW, per mille kept by slow decay): 1200 is too large', 'setdecay INTERVAL'],
      [['setdecay', '1', '900', '950'], 'decay field 3 (FAST, per mille kept by fast decay): 950 keeps more than SLOW (900)', 'setdecay INTERVAL'],
      [['getcosts', 'extra'], 'unexpected "extra"', 'getcosts'],
      [['gettune', '--force'], '--force is not an option of "gettune"', 'gettune'],
    ];
    for (const [args, message, synopsis] of cases) {
      const r = await ctl(...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      const lines = r.stderr.split('\n');
      expect(lines[0]).toContain(`mfsctl: ${message}`);
      expect(lines[1]).toMatch(new RegExp(`^usage: mfsctl ${synopsis}`));
      expect(lines.slice(2)).toEqual(['']);
    }
    expect((await ctl('getcosts')).stdout).toBe('1 2 3 4 5 6\n');
    expect((await ctl('getdecay')).stdout).toBe('1 975 926\n');
  });

  it('a corrupt table file is reported with its path and field, exit 1', async () => {
    await ctl('setcosts', '1', '2', '3', '4', '5', '6');
    await writeFile(join(state, 'overheads'), '81 150 oops\n');
    const r = await ctl('gettune');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`mfsctl: ${join(state, 'overheads')}: overheads: 3 values given, 14 expected (PAGE_HOME PAGE_REMOTE SYSCALL_HOME SYSCALL_REMOTE READ_HOME READ_HOME_KB READ_REMOTE READ_REMOTE_KB WRITE_HOME WRITE_HOME_KB WRITE_REMOTE WRITE_REMOTE_KB MIGRATE_EMPTY MIGRATE_PER_DIRTY_PAGE)\n`);
  });

  it('set* is for root only: EPERM for anyone else, exit 1, table unchanged; get* is for anyone', async () => {
    await ctl('setcosts', '1', '2', '3', '4', '5', '6');
    await chmod(dir, 0o755);
    await chmod(state, 0o755);
    await chmod(join(state, 'mfscosts'), 0o644);
    const asNobody = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [MFSCTL_JS, ...args, '--state-dir', state], { uid: 65534, gid: 65534, timeout: 20_000, killSignal: 'SIGKILL' }, (_e, stdout, stderr) =>
          resolve({ code: child.exitCode, stdout, stderr }),
        );
      });
    const set = await asNobody('setcosts', '9', '9', '9', '9', '9', '9');
    expect(set).toEqual({ code: 1, stdout: '', stderr: 'mfsctl: setcosts: EPERM: only root may change the mfscosts table\n' });
    expect((await asNobody('setdecay', '1', '2', '3')).stderr).toBe('mfsctl: setdecay: EPERM: only root may change the decay table\n');
    expect(await asNobody('getcosts')).toEqual({ code: 0, stdout: '1 2 3 4 5 6\n', stderr: '' });
  });
});
