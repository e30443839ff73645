// mfsrun end to end on 3 real mfsd daemons (mutual TLS, a test CA, one map): a command started
// from node 1 on another node gives the same output and exit status as run locally, gets piped
// input, ends on Ctrl-C, runs as the user who typed mfsrun (never root for them), lands where the
// advisor says for the paths it names, and is restarted elsewhere by `mfsctl migrate`. Daemons
// that are not cluster nodes are refused.
import * as grpc from '@grpc/grpc-js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRunnerConstructor, type RunOutputMsg } from '../../proto/run.js';
import { loadNodeServiceConstructor } from '../../proto/node.js';
import { MFSCTL_JS, makeTestCa, runNode, startMfsd, unary } from '../harness/mfsd.js';
import { waitFor } from '../harness/outcome.js';
import { MFSRUN_JS, startRunCluster, type RunCluster } from './mfsrun-cluster.js';

let c: RunCluster;
beforeAll(async () => {
  c = await startRunCluster(3);
}, 120_000);
afterAll(async () => {
  await c?.cleanup();
});

interface Ran { code: number | null; stdout: string; stderr: string }

const live = new Set<ChildProcess>();
afterAll(() => {
  for (const p of live) p.kill('SIGKILL');
});

/** mfsrun on node 1 (its socket and mount), to completion. */
function mfsrun(args: string[], o: { input?: string; cwd?: string; asNobody?: boolean; env?: Record<string, string> } = {}): Promise<Ran> {
  const base = [MFSRUN_JS, '--socket', c.socket(1), '--mount', c.mount(1), ...args];
  // Extra variables are set after the switch to nobody, so only mfsrun and what it starts see them.
  const vars = Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const [file, argv] = o.asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/env', ...vars, process.execPath, ...base]]
    : ['/usr/bin/env', [...vars, process.execPath, ...base]];
  return new Promise((resolve) => {
    const p = spawn(file, argv, { cwd: o.cwd ?? c.root, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdin.end(o.input ?? '');
    p.on('close', (code) => {
      live.delete(p);
      resolve({ code, stdout, stderr });
    });
  });
}

function local(cmd: string[], input = ''): Ran {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { input, cwd: c.root });
  return { code: r.status ?? (r.signal ? 128 + (({ SIGTERM: 15, SIGKILL: 9 }) as Record<string, number>)[r.signal]! : null), stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe('mfsrun', () => {
  it('runs on another node with the output and exit status of a local run', async () => {
    const cmd = ['sh', '-c', 'echo out; echo err >&2; printf "%s|" "$@"; exit 3', 'sh', 'a b', 'c'];
    for (const where of [['-N', '2'], ['-3'], ['-h'], ['-j', '2-3']]) {
      expect(await mfsrun([...where, ...cmd])).toEqual(local(cmd));
    }
    // Death by a signal is 128+n, as a shell reports it.
    const killed = ['sh', '-c', 'kill -TERM $$'];
    const r = await mfsrun(['-N', '2', ...killed]);
    expect(r.code).toBe(143);
    expect(r).toEqual(local(killed));
    const missing = await mfsrun(['-N', '2', 'no-such-command-omfs']);
    expect(missing.code).toBe(127);
  });

  it('pipes standard input to the remote command', async () => {
    const input = 'line\n'.repeat(20_000);
    const r = await mfsrun(['-N', '3', 'sha256sum'], { input });
    expect(r).toEqual(local(['sha256sum'], input));
  });

  it('holds a job that writes faster than mfsrun\'s reader takes it, and loses nothing', async () => {
    const size = 50 * 1024 * 1024;
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '-N', '2', 'sh', '-c', `head -c ${size} /dev/zero; echo finished >&2`], {
      cwd: c.root, stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(p);
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    // Nobody reads mfsrun's output: the job blocks writing instead of piling it up in the
    // daemons (unheld, 50 MiB from /dev/zero is through in well under a second).
    await new Promise((r) => setTimeout(r, 3000));
    expect(err).toBe('');
    let got = 0;
    p.stdout.on('data', (d: Buffer) => (got += d.length));
    expect(await closed).toBe(0);
    expect(got).toBe(size);
    expect(err).toBe('finished\n');
  });

  it('ends quietly with the job when its reader goes away (mfsrun ... | head)', async () => {
    const r = spawnSync('sh', ['-c', `${process.execPath} ${MFSRUN_JS} --socket ${c.socket(1)} -N 3 yes | head -n 2`], { cwd: c.root, timeout: 30_000 });
    expect(r.error).toBeUndefined(); // mfsrun ended (else the pipeline would still be waiting)
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe('y\ny\n');
    expect(r.stderr.toString()).toBe('');
  });

  it('takes input only as fast as the job reads it', async () => {
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '-N', '2', 'sh', '-c', 'sleep 4; head -c 1 >/dev/null; echo read'], {
      cwd: c.root, stdio: ['pipe', 'pipe', 'ignore'],
    });
    live.add(p);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    p.stdin.on('error', () => undefined);
    const chunk = Buffer.alloc(1024 * 1024, 1);
    let pushed = 0;
    const until = Date.now() + 3000;
    // As fast as mfsrun takes it, for 3 s, while the job reads nothing.
    while (Date.now() < until && pushed < 512 * chunk.length) {
      pushed += chunk.length;
      if (!p.stdin.write(chunk)) await Promise.race([new Promise((r) => p.stdin.once('drain', r)), new Promise((r) => setTimeout(r, until - Date.now()))]);
    }
    // Pipes, socket buffers and HTTP/2 windows hold a few MiB; unheld, hundreds would be gone.
    expect(pushed).toBeLessThan(64 * chunk.length);
    p.stdin.destroy();
    expect(await closed).toBe(0);
    expect(out).toBe('read\n');
  });

  it('ends the remote command on Ctrl-C (SIGINT to mfsrun)', async () => {
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '-N', '2', 'sh', '-c', 'echo $$; exec sleep 60'], {
      cwd: c.root, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env },
    });
    live.add(p);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    await waitFor('the remote shell printed its pid', () => /^\d+\n/.test(out), 20_000);
    const pid = Number(out.trim());
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    p.kill('SIGINT');
    expect(await closed).toBe(130);
    await waitFor('the remote process is gone', () => !existsSync(`/proc/${pid}`) || /\) Z /.test(safeStat(pid)), 10_000);
  });

  it('runs the command as the user who typed mfsrun, who cannot get root', async () => {
    const r = await mfsrun(['-N', '2', 'sh', '-c', 'id -u; id -g; id -G; grep -E "^Cap(Eff|Prm|Amb):" /proc/self/status'], { asNobody: true });
    expect(r.stderr).toBe('');
    const [uid, gid, groups, ...caps] = r.stdout.trim().split('\n');
    expect([uid, gid, groups]).toEqual(['65534', '65534', '65534']);
    for (const line of caps) expect(line).toMatch(/:\s+0+$/);
    // Root's files stay root's.
    const secret = join(c.root, 'secret');
    writeFileSync(secret, 'x', { mode: 0o600 });
    const denied = await mfsrun(['-N', '3', 'cat', secret], { asNobody: true });
    expect(denied.code).not.toBe(0);
    expect(denied.stdout).toBe('');
    // The user's environment reaches the command, never the root-run stage before the switch
    // (where LD_PRELOAD and friends would run the user's code as root): the dynamic loader's
    // trace of LD_DEBUG names no program but the user's.
    const traced = await mfsrun(['-N', '2', 'printenv', 'LD_DEBUG'], { asNobody: true, env: { LD_DEBUG: 'files' } });
    expect(traced.stdout).toBe('files\n');
    expect(traced.stderr).toMatch(/needed by/);
    expect(traced.stderr).not.toMatch(/setpriv/);
    // Root stays root.
    expect((await mfsrun(['-N', '2', 'id', '-u'])).stdout).toBe('0\n');
  });

  it('translates the working directory and paths under the mount to the target node\'s mount', async () => {
    writeFileSync(join(c.mount(1), '3', 'f'), 'as node 1 sees it\n');
    writeFileSync(join(c.mount(3), '3', 'f'), 'as node 3 sees it\n');
    const r = await mfsrun(['-N', '3', 'sh', '-c', 'pwd; cat "$1"; cat f', 'sh', join(c.mount(1), '3', 'f')], { cwd: join(c.mount(1), '3') });
    expect(r.stdout).toBe(`${join(c.mount(3), '3')}\nas node 3 sees it\nas node 3 sees it\n`);
    // here/ is the caller's node, not the target's.
    mkdirSync(join(c.mount(2), '1'), { recursive: true });
    writeFileSync(join(c.mount(2), '1', 'h'), 'node 1 file seen from 2\n');
    const h = await mfsrun(['-N', '2', 'cat', join(c.mount(1), 'here', 'h')]);
    expect(h.stdout).toBe('node 1 file seen from 2\n');
  });

  it('lets the advisor place a command by the node of the data it names', async () => {
    const big = Buffer.alloc(64 * 1024 * 1024, 7);
    writeFileSync(join(c.mount(1), '3', 'big'), big);
    writeFileSync(join(c.mount(3), '3', 'big'), big);
    const r = await mfsrun(['sh', '-c', 'echo "$1"', 'sh', join(c.mount(1), '3', 'big')]);
    expect(r.stdout).toBe(`${join(c.mount(3), '3', 'big')}\n`);
    // CPU-only work names no data: it stays home.
    expect((await mfsrun(['sh', '-c', 'pwd'], { cwd: c.root })).stdout).toBe(`${c.root}\n`);
  });

  it('restarts a --restartable job on another node with mfsctl migrate, the client streaming on', async () => {
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '--mount', c.mount(1), '-h', '--restartable',
      'sh', '-c', 'pwd; trap "exit 0" TERM; while :; do sleep 0.1; done'], { cwd: join(c.mount(1), '1'), stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    await waitFor('the job started on node 1', () => out.includes(join(c.mount(1), '1')), 20_000);
    const m = await runNode(MFSCTL_JS, ['migrate', String(p.pid), '3', '--socket', c.socket(1)]);
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(/restarting on node 3/);
    await waitFor('the job runs again on node 3', () => out.includes(join(c.mount(3), '1')), 20_000);
    expect(err).toMatch(/restart, not a live migration/);
    const jobs = await runNode(MFSCTL_JS, ['jobs', '--socket', c.socket(1)]);
    expect(jobs.stdout).toMatch(/\t3\t1\t\d+\t0\ttrue\ttrue\t1\tsh -c/);
    // A job not started with --restartable is not moved.
    p.kill('SIGTERM');
    expect(await closed).toBe(0);
    const q = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '-h', 'sh', '-c', 'echo up; exec sleep 30'], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(q);
    let qout = '';
    q.stdout.on('data', (d: Buffer) => (qout += d.toString()));
    await waitFor('the second job runs', () => qout.includes('up'), 20_000);
    const refused = await runNode(MFSCTL_JS, ['migrate', String(q.pid), '2', '--socket', c.socket(1)]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/EPERM.*--restartable/);
    q.kill('SIGTERM');
  });

  it('falls back to the home node with -F when the target is down, and fails without it', async () => {
    const down = await mfsrun(['-N', '4', 'echo', 'hi']);
    expect(down.code).toBe(255);
    expect(down.stderr).toMatch(/EHOSTDOWN/);
    const fell = await mfsrun(['-F', '-N', '4', 'sh', '-c', 'echo hi; pwd'], { cwd: join(c.mount(1), '1') });
    expect(fell.code).toBe(0);
    expect(fell.stdout).toBe(`hi\n${join(c.mount(1), '1')}\n`);
    expect(fell.stderr).toMatch(/node 4 cannot run it.*home node 1/);
  });

  it('the scheduler restarts a restartable, unlocked job where the advisor says', async () => {
    const p = spawn(process.execPath, [MFSRUN_JS, '--socket', c.socket(1), '--mount', c.mount(1), '--restartable', '-l',
      'sh', '-c', 'pwd; trap "exit 0" TERM; while :; do sleep 0.1; done'], {
      cwd: join(c.mount(1), '1'), stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, MFSRUN_VERBOSE: '1' },
    });
    live.add(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    await waitFor('the job runs on node 1', () => /running on node 1 \(pid \d+/.test(err) && out.includes(join(c.mount(1), '1')), 20_000);
    const pid = Number(/running on node 1 \(pid (\d+)/.exec(err)![1]);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const key = `${pid}:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
    // What node 1's mount would report: the job reads heavily from node 3.
    const NodeService = loadNodeServiceConstructor();
    const mount = new NodeService(c.daemons[0]!.address, await c.ca.credentials(c.certs(1)));
    try {
      await waitFor('the job was restarted on node 3', async () => {
        await unary(mount, 'ReportProcessIo', { exec: [], exit: [], io: [{ process: key, node: 3, calls: 2000, read_kb: 200_000, write_kb: 0 }] });
        return out.includes(join(c.mount(3), '1'));
      }, 30_000, 300);
    } finally {
      mount.close();
    }
    expect(err).toMatch(/restarting the job on node 3 \(the advisor.*not a live migration/);
    p.kill('SIGTERM');
    expect(await closed).toBe(0);
  });

  it('refuses a peer without a cluster certificate', async () => {
    const Runner = loadRunnerConstructor();
    const other = await makeTestCa(join(c.root, 'other-ca'));
    const stranger = new Runner(c.daemons[1]!.address, await other.credentials(await other.issue('intruder')));
    const denied = await firstOutcome(stranger);
    expect(denied.code).toBe(grpc.status.UNAVAILABLE); // the TLS handshake itself fails
    stranger.close();
    // A daemon serving --insecure has no way to know its peer: it runs nothing for anyone.
    const open = await startMfsd({ nodeId: 9 });
    try {
      const anyone = new Runner(open.address, grpc.credentials.createInsecure());
      const r = await firstOutcome(anyone);
      expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.errno).toBe('13'); // EACCES
      anyone.close();
    } finally {
      await open.cleanup();
    }
  });
});

function safeStat(pid: number): string {
  const r = spawnSync('cat', [`/proc/${pid}/stat`]);
  return r.stdout.toString();
}

/** Opens Runner.Run with a harmless start; resolves with how the server answered. */
function firstOutcome(client: grpc.Client): Promise<{ code: number; errno?: string; output?: RunOutputMsg }> {
  return new Promise((resolve) => {
    const call = (client as unknown as { Run(): grpc.ClientDuplexStream<object, RunOutputMsg> }).Run();
    call.on('data', (m: RunOutputMsg) => {
      resolve({ code: -1, output: m });
      call.cancel();
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, errno: e.metadata?.get('omfs-errno')[0]?.toString() }));
    call.write({ start: { argv: [Buffer.from('id')], cwd: Buffer.from('/'), uid: 0, gid: 0 } });
  });
}
