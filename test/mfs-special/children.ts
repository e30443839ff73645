// Real processes for the special-directory tests: each stays alive until its stdin closes (or it
// is killed), and tells the test what it is through JSON lines on stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** The next JSON line (or plain line) the child prints. */
  nextLine(): Promise<string>;
  /** Writes a line to the child's stdin. */
  send(line: string): void;
  /** Ends the child and waits for its exit. */
  stop(): Promise<void>;
  exited: Promise<void>;
}

const running = new Set<Child>();

export function startChild(command: string, args: string[]): Child {
  // Its own process group, so stop() also ends what it started (a shell's background sleeps would
  // otherwise keep our stdout pipe open and the test run alive).
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  if (proc.pid === undefined) throw new Error(`could not start ${command}`);
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  const child: Child = {
    proc,
    pid: proc.pid,
    exited,
    nextLine: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
    },
    send: (line) => proc.stdin!.write(`${line}\n`),
    stop: async () => {
      running.delete(child);
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // the group is already empty
      }
      await exited;
      proc.stdout!.destroy();
    },
  };
  running.add(child);
  return child;
}

/** Kills every child still running (afterEach/afterAll, also after a failed test). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

/**
 * A node process with one worker thread; prints {"pid","workerTid"} once the worker runs, and stays
 * until stdin closes. The worker's tid comes from /proc/thread-self ("<pid>/task/<tid>").
 */
export function startWithWorker(): Child {
  const script = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker("const fs = require('node:fs'); const { parentPort } = require('node:worker_threads');" +
      "parentPort.postMessage(fs.readlinkSync('/proc/thread-self')); setInterval(() => {}, 1 << 30);", { eval: true });
    w.on('message', (m) => console.log(JSON.stringify({ pid: process.pid, workerTid: Number(String(m).split('/')[2]) })));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  return startChild(process.execPath, ['-e', script]);
}

/** A node process that renames itself (its comm, via /proc/self/comm) to `comm`, prints "ready" and stays until stdin closes. */
export function startRenamed(comm: string): Child {
  const script = `
    require('node:fs').writeFileSync('/proc/self/comm', ${JSON.stringify(comm)});
    console.log('ready');
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  return startChild(process.execPath, ['-e', script]);
}

/**
 * A shell that starts a background `sleep` each time it reads a line and prints the new child's
 * pid: a parent whose children start exactly when the test says.
 */
export function startParentShell(): Child {
  return startChild('sh', ['-c', 'while read x; do sleep 60 & echo $!; done']);
}

/** Waits (briefly polling) until `check` holds; fails after `ms`. Bounds a wait for an event, not a timing claim. */
export async function until(check: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
