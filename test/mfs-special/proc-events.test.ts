// sys/proc-events.ts on the real proc connector (the tests run as root, which it needs).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProcEvents, tryOpenProcEvents, type ExecEvent, type ExitEvent, type ForkEvent } from '../../sys/proc-events.js';
import { startChild, stopAllChildren, until } from './children.js';

let events: ProcEvents;
const execs: ExecEvent[] = [];
const exits: ExitEvent[] = [];
const forks: ForkEvent[] = [];

beforeAll(() => {
  const opened = tryOpenProcEvents();
  if (!opened.events) throw new Error(`proc connector unavailable (the tests need root): ${opened.reason}`);
  events = opened.events;
  events.on('exec', (e) => execs.push(e));
  events.on('exit', (e) => exits.push(e));
  events.on('fork', (e) => forks.push(e));
});

afterEach(stopAllChildren);
afterAll(() => events?.close());

describe('proc events', () => {
  it("a child that execs produces an exec event for its pid, and its exit an exit event with its status", async () => {
    const child = startChild('sh', ['-c', 'exec sleep 0.2']);
    await child.exited;
    await until(() => exits.some((e) => e.pid === child.pid), 10_000, 'the exit event');
    // Two execs of that pid: node's spawn running sh, then sh running sleep.
    expect(execs.filter((e) => e.pid === child.pid)).toEqual([{ pid: child.pid, tgid: child.pid }, { pid: child.pid, tgid: child.pid }]);
    const exit = exits.find((e) => e.pid === child.pid)!;
    expect(exit.tgid).toBe(child.pid);
    expect(exit.exitCode).toBe(0); // the wait status: exit(0)
  });

  it("a fork names the parent process and the child process", async () => {
    const shell = startChild('sh', ['-c', 'sleep 0.1 & echo $!; wait']);
    const sleeper = Number(await shell.nextLine());
    await shell.exited;
    await until(() => forks.some((f) => f.child.pid === sleeper), 10_000, 'the fork event');
    const fork = forks.find((f) => f.child.pid === sleeper)!;
    expect(fork.child.tgid).toBe(sleeper);
    expect(fork.parent.tgid).toBe(shell.pid);
  });

  it("an exec is already queued when the process's next action is seen: one synchronous drain() finds it", async () => {
    // The child tells us it runs the new program by printing from it; by then the kernel has queued
    // the exec event on our socket (before execve returned), so a drain must see it. This listener's
    // timer never fires during the test: only the explicit drain() reads.
    const manual = ProcEvents.open({ pollMs: 2 ** 30 });
    const seen: ExecEvent[] = [];
    manual.on('exec', (e) => seen.push(e));
    try {
      const child = startChild('sh', ['-c', 'read x; exec sh -c "echo execd; read y"']);
      manual.drain();
      const before = seen.filter((e) => e.tgid === child.pid).length; // node's spawn running sh
      child.send('go');
      expect(await child.nextLine()).toBe('execd');
      expect(seen.filter((e) => e.tgid === child.pid).length).toBe(before); // nothing read on its own
      manual.drain();
      expect(seen.filter((e) => e.tgid === child.pid).length).toBe(before + 1);
    } finally {
      manual.close();
    }
  });

  it('an empty drain costs one recv (informational), and close() stops the events', async () => {
    events.drain();
    const n = 20_000;
    const t = performance.now();
    for (let i = 0; i < n; i++) events.drain();
    console.log(`proc events: empty drain ${(((performance.now() - t) * 1000) / n).toFixed(2)} us`);

    const second = ProcEvents.open();
    const seen: number[] = [];
    second.on('exit', (e) => seen.push(e.pid));
    second.close();
    second.close(); // twice is harmless
    const child = startChild('true', []);
    await child.exited;
    await until(() => exits.some((e) => e.pid === child.pid), 10_000, 'the exit on the first listener');
    second.drain(); // closed: reads nothing
    expect(seen).toEqual([]);
  });
});
