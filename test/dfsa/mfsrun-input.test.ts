// What a run request may hold (server/run-spawn.ts checks it as hostile input before anything
// runs), the unix socket's framing, and the home node recorded for a job and its descendants.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { emptyStart, encodeInputFrame, inputReader, MAX_FRAME, type RunStartMsg } from '../../proto/run.js';
import { jobSpecOf, RUN_LIMITS } from '../../server/run-spawn.js';
import { LocalJobs } from '../../server/run-target.js';
import type { LocalJob } from '../../server/run-spawn.js';

const start = (o: Partial<RunStartMsg>): RunStartMsg => ({ ...emptyStart(), argv: [Buffer.from('true')], cwd: Buffer.from('/'), ...o });
const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('a run request', () => {
  it('translates mount-relative paths to this node\'s mount', () => {
    const spec = jobSpecOf(start({ argv: [Buffer.from('cat'), Buffer.from('3/x'), Buffer.from('3/y')], mount_args: [1], cwd: Buffer.from('2/d'), cwd_in_mount: true }), '/n/mfs');
    expect(spec.argv).toEqual(['cat', '/n/mfs/3/x', '3/y']);
    expect(spec.cwd).toBe('/n/mfs/2/d');
  });

  it('is refused when it could climb out of the mount, hide a NUL, or is not NAME=value', () => {
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from('cat'), Buffer.from('3/../../etc/shadow')], mount_args: [1] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from('cat'), Buffer.from('/etc/shadow')], mount_args: [1] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ cwd: Buffer.from('../x'), cwd_in_mount: true }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from('ls'), Buffer.from('a\0b')] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from([0xff, 0xfe])] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ env: [Buffer.from('NOEQUALS')] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from('A=b'), Buffer.from('sh')] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ argv: [] }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ cwd: Buffer.from('relative') }), '/mfs'))).toBe('EINVAL');
    expect(codeOf(() => jobSpecOf(start({ mount_args: [5] }), '/mfs'))).toBe('EINVAL');
  });

  it('is refused when it is larger than Linux would run', () => {
    const many = Array.from({ length: RUN_LIMITS.argc + 1 }, () => Buffer.from('x'));
    expect(codeOf(() => jobSpecOf(start({ argv: many }), '/mfs'))).toBe('E2BIG');
    const huge = Buffer.alloc(RUN_LIMITS.argBytes, 'a');
    expect(codeOf(() => jobSpecOf(start({ argv: [Buffer.from('echo'), huge] }), '/mfs'))).toBe('E2BIG');
    expect(codeOf(() => jobSpecOf(start({ cwd: Buffer.from(`/${'d'.repeat(RUN_LIMITS.pathBytes)}`) }), '/mfs'))).toBe('ENAMETOOLONG');
  });
});

describe('the unix socket framing', () => {
  it('splits a byte stream into the messages sent, however it is cut', () => {
    const frames = Buffer.concat([
      encodeInputFrame({ what: 'start', start: start({ env: [Buffer.from('A=1')] }) }),
      encodeInputFrame({ what: 'stdin', stdin: Buffer.from('hello') }),
      encodeInputFrame({ what: 'signal', signal: 2 }),
    ]);
    const reader = inputReader();
    const got = [];
    for (let i = 0; i < frames.length; i += 3) got.push(...reader.push(frames.subarray(i, i + 3)));
    expect(got.map((m) => m.what)).toEqual(['start', 'stdin', 'signal']);
    expect(got[0]!.what === 'start' && got[0]!.start.env[0]!.toString()).toBe('A=1');
    expect(got[1]!.what === 'stdin' && got[1]!.stdin.toString()).toBe('hello');
  });

  it('refuses a frame larger than it allows before reading it', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME + 1);
    expect(() => inputReader().push(header)).toThrow(/frame/);
  });
});

describe('the home node of a process', () => {
  it('is the one recorded for the job it is or descends from, and none for others', async () => {
    const jobs = new LocalJobs();
    const job = spawn('sh', ['-c', 'sleep 5 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let child = 0;
    try {
      child = await new Promise<number>((resolve) => job.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      jobs.add(job.pid!, 7, 'j1', {} as LocalJob);
      expect(jobs.homeOf(job.pid!)).toBe(7);
      expect(jobs.homeOf(child)).toBe(7);
      expect(jobs.homeOf(process.pid)).toBeUndefined();
      jobs.remove(job.pid!);
      expect(jobs.homeOf(child)).toBeUndefined();
    } finally {
      job.kill('SIGKILL');
      if (child) process.kill(child, 'SIGKILL');
    }
  });
});

