// The per-process state behind /mfs/here, home, magic, lastexec and selected (fuse/mfs/special), fed
// with real processes' thread ids as a FUSE request would carry them, with the proc connector and
// without it (a daemon that is not root).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { ProcEvents } from '../../sys/proc-events.js';
import { execSignature, type ProcessInfo } from '../../sys/process.js';
import { ProcessTable, resolveSpecial, SelectedControl, specialInstanceKey, type SpecialName, type SpecialOp } from '../../fuse/mfs/special/index.js';
import { startChild, startParentShell, startWithWorker, stopAllChildren, until, type Child } from './children.js';

const THIS_NODE = 1;
const knownNode = (n: number): boolean => n >= 1 && n <= 3;
let events: ProcEvents;

beforeAll(() => {
  events = ProcEvents.open();
});
afterEach(stopAllChildren);
afterAll(() => events?.close());

/** The answer for `tid`: a node number, or the errno code. */
function resolve(table: ProcessTable, name: SpecialName, tid: number, op: SpecialOp = 'other'): number | string {
  try {
    return resolveSpecial(table, name, { tid, thisNode: THIS_NODE, op });
  } catch (err) {
    return (err as { code: string }).code;
  }
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The shell's next background child. */
async function spawnFrom(shell: Child): Promise<number> {
  shell.send('');
  return Number(await shell.nextLine());
}

const modes = [
  { mode: 'with proc events', withEvents: true },
  { mode: 'without events (not root)', withEvents: false },
];

describe.each(modes)('special directories, $mode', ({ withEvents }) => {
  let table: ProcessTable;
  let control: SelectedControl;
  beforeAll(() => {
    table = new ProcessTable({ thisNode: THIS_NODE, events: withEvents ? events : undefined });
    control = new SelectedControl(table, knownNode);
  });
  afterAll(() => table.close());

  it('selected set in a parent is inherited by a child started after it, not one started before, nor an unrelated process', async () => {
    const parent = startParentShell();
    const early = await spawnFrom(parent);
    await sleep(50); // a clock tick (10 ms) or more between the early child's start and the set
    expect(control.writeSelected({ tid: parent.pid }, '2\n')).toBe(2);
    const late = await spawnFrom(parent);
    const unrelated = startChild('sleep', ['60']);

    expect(resolve(table, 'selected', parent.pid)).toBe(2);
    expect(resolve(table, 'selected', late)).toBe(2);
    expect(resolve(table, 'selected', early)).toBe('ENOENT');
    expect(resolve(table, 'selected', unrelated.pid)).toBe('ENOENT');
    expect(control.readSelected({ tid: late })).toBe('2\n');
    expect(control.readSelected({ tid: unrelated.pid })).toBe('0\n');

    // The child's value is its own from then on: the parent changing it later does not reach it.
    control.writeSelected({ tid: parent.pid }, '3');
    expect(resolve(table, 'selected', late)).toBe(2);
    expect(resolve(table, 'selected', parent.pid)).toBe(3);
  });

  it('a grandchild inherits through a parent that never asked', async () => {
    const outer = startChild('sh', ['-c', 'read x; sh -c "sleep 60 & echo \\$!; wait"']);
    await sleep(30);
    control.writeSelected({ tid: outer.pid }, '3');
    outer.send('go');
    const grandchild = Number(await outer.nextLine());
    expect(resolve(table, 'selected', grandchild)).toBe(3);
  });

  it('two processes at once, asked through their worker threads, each get their own answer', async () => {
    const a = startWithWorker();
    const b = startWithWorker();
    const [ia, ib] = await Promise.all([a.nextLine(), b.nextLine()]);
    const ta = (JSON.parse(ia) as { workerTid: number }).workerTid;
    const tb = (JSON.parse(ib) as { workerTid: number }).workerTid;
    control.writeSelected({ tid: ta }, '2'); // set from a's worker thread: for the whole process
    control.writeSelected({ tid: b.pid }, '3');
    table.noteMagicCreate(ta, THIS_NODE);

    const asks = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? ta : tb));
    const answers = await Promise.all(asks.map(async (tid) => resolve(table, 'selected', tid)));
    expect(answers).toEqual(asks.map((tid) => (tid === ta ? 2 : 3)));
    expect(resolve(table, 'selected', a.pid)).toBe(2);
    expect(resolve(table, 'magic', ta)).toBe(THIS_NODE);
    expect(resolve(table, 'magic', tb)).toBe('ENOENT');
    expect(control.readSelected({ tid: tb })).toBe('3\n');
    // The mount's per-process identities differ, and a thread shares its process's.
    const key = (tid: number): string => specialInstanceKey('selected', table.stateOf(tid).key);
    expect(key(ta)).not.toBe(key(tb));
    expect(key(ta)).toBe(key(a.pid));
  });

  it('here, home, magic and lastexec follow their rules', async () => {
    const parent = startParentShell();
    const p = parent.pid;
    expect(resolve(table, 'here', p)).toBe(THIS_NODE);
    expect(resolve(table, 'home', p)).toBe(THIS_NODE);
    expect(resolve(table, 'lastexec', p)).toBe(THIS_NODE);

    // magic: creates go here; other calls go to the last magic create, ENOENT before the first one;
    // a path walk whose syscall is not known yet goes here until then.
    expect(resolve(table, 'magic', p, 'other')).toBe('ENOENT');
    expect(resolve(table, 'magic', p, 'lookup')).toBe(THIS_NODE);
    expect(resolve(table, 'magic', p, 'create')).toBe(THIS_NODE);
    table.noteMagicCreate(p, 2); // (a create that went to node 2, as the scheduler's moves will make possible)
    expect(resolve(table, 'magic', p, 'other')).toBe(2);
    expect(resolve(table, 'magic', p, 'lookup')).toBe(2);
    expect(resolve(table, 'magic', p, 'create')).toBe(THIS_NODE);

    // home: set for a process the scheduler placed; its children belong to the same home. Magic is
    // the process's own: not inherited.
    await sleep(30);
    table.setHome(p, 3);
    const child = await spawnFrom(parent);
    expect(resolve(table, 'home', p)).toBe(3);
    expect(resolve(table, 'home', child)).toBe(3);
    expect(resolve(table, 'magic', child)).toBe('ENOENT');
  });

  it('the control file refuses bad input with clear errnos, and 0 clears', async () => {
    const proc = startChild('sleep', ['60']);
    const ctx = { tid: proc.pid };
    expect(codeOf(() => control.writeSelected(ctx, 'two'))).toBe('EINVAL');
    expect(codeOf(() => control.writeSelected(ctx, '-1'))).toBe('EINVAL');
    expect(codeOf(() => control.writeSelected(ctx, '1.5'))).toBe('EINVAL');
    expect(codeOf(() => control.writeSelected(ctx, ''))).toBe('EINVAL');
    expect(codeOf(() => control.writeSelected(ctx, '70000'))).toBe('EINVAL');
    expect(codeOf(() => control.writeSelected(ctx, '7'))).toBe('EHOSTUNREACH');
    expect(control.readSelected(ctx)).toBe('0\n');
    expect(control.writeSelected(ctx, Buffer.from(' 3 \n'))).toBe(4);
    expect(control.read(ctx, 0, 4096).toString()).toBe('3\n');
    expect(control.read(ctx, 2, 4096).length).toBe(0); // EOF after the text, as a /proc file
    expect(control.writeSelected(ctx, '0\n')).toBe(2);
    expect(resolve(table, 'selected', proc.pid)).toBe('ENOENT');
  });

  it('a process that is gone (or tid 0) gets defaults and leaves no record', () => {
    expect(resolve(table, 'home', 0)).toBe(THIS_NODE); // (drains the exits of earlier tests' children first)
    const before = table.size;
    expect(resolve(table, 'home', 0)).toBe(THIS_NODE);
    expect(resolve(table, 'selected', 0)).toBe('ENOENT');
    expect(table.size).toBe(before);
  });
});

describe('process table, with proc events', () => {
  let table: ProcessTable;
  beforeAll(() => {
    table = new ProcessTable({ thisNode: THIS_NODE, events });
  });
  afterAll(() => table.close());

  it('an exit forgets the process', async () => {
    const proc = startChild('sleep', ['60']);
    control(table).writeSelected({ tid: proc.pid }, '2');
    expect(table.peek(proc.pid)?.selected).toBe(2);
    await proc.stop();
    await until(() => {
      events.drain();
      return table.peek(proc.pid) === undefined;
    }, 10_000, 'the record to go');
  });

  it('an exec on this node sets lastexec to this node', async () => {
    const proc = startChild('sh', ['-c', 'read x; exec sleep 60']);
    const state = table.stateOf(proc.pid);
    state.lastexec = 5; // as if inherited from a parent whose last exec was on node 5
    const before = execSignature(proc.pid);
    proc.send('go');
    await until(() => execSignature(proc.pid) !== before, 10_000, 'the exec');
    // No wait for a timer: resolving drains the events first, and the exec is queued by now.
    expect(resolve(table, 'lastexec', proc.pid)).toBe(THIS_NODE);
    expect(table.stateOf(proc.pid)).toBe(state); // the same process (same key) after its exec
  });
});

const control = (table: ProcessTable): SelectedControl => new SelectedControl(table, knownNode);

describe('process table and main-thread exits that do not end the process', () => {
  it('keeps the record when the same process goes on after its main thread exited (pthread_exit, exec from another thread)', () => {
    // The events are fed by hand here: the kernel's order for an execve from a non-main thread is
    // the old main thread's exit (pid == tgid), then the exec.
    const fake = Object.assign(new EventEmitter(), { drain: () => {} });
    const table = new ProcessTable({ thisNode: THIS_NODE, events: fake });
    const proc = startChild('sleep', ['60']);
    const state = table.stateOf(proc.pid);
    table.setSelected(proc.pid, 2);
    state.lastexec = 5;
    fake.emit('exit', { pid: proc.pid, tgid: proc.pid, exitCode: 0, exitSignal: 0 });
    expect(table.peek(proc.pid)).toBeUndefined();
    fake.emit('exec', { pid: proc.pid, tgid: proc.pid });
    expect(table.peek(proc.pid)).toBe(state);
    expect(state.lastexec).toBe(THIS_NODE);
    expect(state.selected).toBe(2);

    fake.emit('exit', { pid: proc.pid, tgid: proc.pid, exitCode: 0, exitSignal: 0 }); // pthread_exit in main
    expect(resolve(table, 'selected', proc.pid)).toBe(2); // its other threads still ask as the same process
    table.close();
  });
});

describe('process table bounds and pid reuse', () => {
  it('holds at most maxProcesses records, dropping the least recently used', async () => {
    const table = new ProcessTable({ thisNode: THIS_NODE, maxProcesses: 3 });
    const procs = Array.from({ length: 5 }, () => startChild('sleep', ['60']));
    for (const p of procs) table.setSelected(p.pid, 2);
    table.stateOf(procs[2].pid); // used again: kept over 3
    table.setSelected(procs[4].pid, 3);
    expect(table.size).toBe(3);
    expect(table.peek(procs[2].pid)).toBeDefined();
    expect(table.peek(procs[4].pid)?.selected).toBe(3);
    expect(table.peek(procs[0].pid)).toBeUndefined();
  });

  it('a record whose pid now belongs to another process (its exit unseen) is not inherited by the new one', () => {
    let startTime = 100;
    const lookup = {
      processOf: (tid: number): ProcessInfo | undefined =>
        tid === 4242 ? { tgid: 4242, startTime, key: `4242:${startTime}`, ppid: 0, uid: 0, euid: 0 } : undefined,
    };
    const table = new ProcessTable({ thisNode: THIS_NODE, lookup, ticksNow: () => 0 });
    table.setSelected(4242, 2);
    table.noteMagicCreate(4242, 2);
    expect(resolve(table, 'selected', 4242)).toBe(2);
    startTime = 500; // pid 4242 reused by a new process
    expect(resolve(table, 'selected', 4242)).toBe('ENOENT');
    expect(resolve(table, 'magic', 4242)).toBe('ENOENT');
    expect(table.stateOf(4242).key).toBe('4242:500');
  });
});
