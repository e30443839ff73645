// `mfsctl mon`: a live monitor in the manner of openMosix's mosmon. Every second it asks the local
// mfsd for the loads it holds (NodeService.Load: each node's load, CPUs, speed, free memory and
// the storage I/O its daemon causes), the I/O profiles of the processes it tracks
// (NodeService.Processes) and the Advisor's current advice for each, and redraws the terminal.
// q or Ctrl-C quits and gives the terminal back as it was. `--once` prints one frame without
// terminal codes (scripts, tests). Profiles are empty until the /mfs mount on the node reports
// per-process I/O to its daemon: the monitor shows what there is.
import type * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { loadAdvisorConstructor, type AdviceMsg, type AdviseReplyMsg } from '../proto/advisor.js';
import { loadNodeServiceConstructor, type LoadReplyMsg, type ProcessProfileMsg, type ProcessesReplyMsg } from '../proto/node.js';
import { UsageError, columns, dial, localDaemon, unary, type Local } from './mfsctl-local.js';

export const MON_USAGE = `usage: mfsctl mon [--once] [--interval MS] [--processes N]
                 [--config PATH] [--listen HOST:PORT] [--dir DIR | --insecure]
Per node load and I/O, per process its I/O profile and the advisor's advice, redrawn every
--interval ms (default 1000) until q or Ctrl-C. --once prints one frame and exits. At most
--processes N processes are shown (default 20, the busiest).`;

/** What one frame shows. */
export interface Frame {
  address: string;
  at: Date;
  loads?: LoadReplyMsg;
  processes?: ProcessesReplyMsg;
  advice: Map<string, AdviceMsg | string>;
  errors: string[];
}

const f1 = (x: number): string => x.toFixed(1);

function ioText(p: ProcessProfileMsg): string {
  if (p.io.length === 0) return '-';
  return p.io.map((io) => `n${io.node} ${f1(io.calls)}/s r${f1(io.read_kb)} w${f1(io.write_kb)}`).join('; ');
}

function adviceText(a: AdviceMsg | string | undefined): string {
  if (a === undefined) return '-';
  if (typeof a === 'string') return a;
  if (a.move) return `move to ${a.to} (saves ${f1(a.saving_us_per_s)} µs/s; move costs ${f1(a.migration_us)} µs)`;
  return `stay${a.reason ? ` (${a.reason})` : ''}`;
}

/** The frame as text (no terminal codes). */
export function renderFrame(f: Frame): string {
  const self = f.loads?.self ?? f.processes?.self;
  const lines: string[] = [`omfs mon: node ${self ?? '?'} at ${f.address}, ${f.at.toISOString().slice(11, 19)} UTC`, ''];
  if (f.loads) {
    const rows = [['node', 'load', 'cpus', 'speed', 'free MB', 'read KB/s', 'write KB/s', 'age']];
    for (const r of f.loads.reports) {
      rows.push([`${r.node}${r.node === f.loads.self ? '*' : ''}`, r.load.toFixed(2), String(r.cpus), r.speed.toFixed(2),
        String(Math.round(Number(r.free_mem_kb) / 1024)), f1(r.read_kbps), f1(r.write_kbps), `${(Number(r.age_ms) / 1000).toFixed(1)} s`]);
    }
    lines.push(columns(rows).trimEnd());
  }
  if (f.processes) {
    const shown = f.processes.processes.length;
    const tracked = f.processes.tracked;
    lines.push('', `processes: ${tracked} tracked${shown < tracked ? `, the ${shown} busiest shown` : ''}`);
    if (tracked === 0) lines.push('(no per-process I/O reported to this node yet: it comes from the /mfs mount on this node)');
    else {
      const rows = [['process', 'decay', 'I/O per node (calls/s, KB/s read, written)', 'advice']];
      for (const p of f.processes.processes) rows.push([p.process, p.decay, ioText(p), adviceText(f.advice.get(p.process))]);
      lines.push(columns(rows).trimEnd());
    }
  }
  for (const e of f.errors) lines.push('', e);
  return `${lines.join('\n')}\n`;
}

/** Asks the local daemon for one frame; what fails is said in the frame, not thrown. */
async function collect(local: Local, node: grpc.Client, advisor: grpc.Client, maxProcesses: number): Promise<Frame> {
  const frame: Frame = { address: local.address, at: new Date(), advice: new Map(), errors: [] };
  const [loads, processes] = await Promise.allSettled([
    unary<LoadReplyMsg>(node, 'Load', { node: 0, local_only: true }),
    unary<ProcessesReplyMsg>(node, 'Processes', {}),
  ]);
  if (loads.status === 'fulfilled') frame.loads = loads.value;
  else frame.errors.push(`loads: ${(loads.reason as Error).message}`);
  if (processes.status === 'fulfilled') {
    const p = processes.value;
    frame.processes = { ...p, processes: p.processes.slice(0, maxProcesses) };
    await Promise.all(frame.processes.processes.map(async (q) => {
      try {
        frame.advice.set(q.process, (await unary<AdviseReplyMsg>(advisor, 'Advise', { process: q.process })).advice);
      } catch (err) {
        // The process exited between the two calls (ESRCH), or the advisor could not weigh it.
        frame.advice.set(q.process, `- (${(err as Error).message})`);
      }
    }));
  } else frame.errors.push(`processes: ${(processes.reason as Error).message}`);
  return frame;
}

const ALT_SCREEN_ON = '\x1b[?1049h\x1b[?25l';
const ALT_SCREEN_OFF = '\x1b[?25h\x1b[?1049l';
const CLEAR = '\x1b[H\x1b[2J';

async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' }, listen: { type: 'string' }, dir: { type: 'string' }, insecure: { type: 'boolean' },
      once: { type: 'boolean' }, interval: { type: 'string' }, processes: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(`${MON_USAGE}\n`);
    return 0;
  }
  const extra = positionals.filter((w, i) => !(i === 0 && w === 'mon'));
  if (extra.length > 0) throw new UsageError(`unexpected "${extra.join(' ')}"`);
  const count = (name: string, raw: string | undefined, dflt: number, min: number, max: number): number => {
    const n = raw === undefined ? dflt : /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) throw new UsageError(`--${name}: "${raw}" is not a number from ${min} to ${max}`);
    return n;
  };
  const intervalMs = count('interval', v.interval, 1000, 100, 3_600_000);
  const maxProcesses = count('processes', v.processes, 20, 1, 4096);
  const local = await localDaemon(v);
  const node = await dial(local.address, local.tls, loadNodeServiceConstructor());
  const advisor = await dial(local.address, local.tls, loadAdvisorConstructor(), {}, false);
  try {
    if (v.once) {
      const frame = await collect(local, node, advisor, maxProcesses);
      process.stdout.write(renderFrame(frame));
      // A frame that could show nothing at all is a failure for a script.
      return frame.loads || frame.processes ? 0 : 1;
    }
    return await live(local, node, advisor, maxProcesses, intervalMs);
  } finally {
    node.close();
    advisor.close();
  }
}

/** Redraws until q, Ctrl-C or a signal; the terminal is restored on every way out. */
function live(local: Local, node: grpc.Client, advisor: grpc.Client, maxProcesses: number, intervalMs: number): Promise<number> {
  const out = process.stdout;
  const stdin = process.stdin;
  const tty = out.isTTY === true;
  const raw = stdin.isTTY === true;
  return new Promise<number>((resolve) => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('exit', restore);
      stdin.off('data', onKey);
      restore();
      stdin.pause();
      resolve(0);
    };
    const restore = (): void => {
      if (raw) stdin.setRawMode(false);
      if (tty) out.write(ALT_SCREEN_OFF);
    };
    const onKey = (d: Buffer): void => {
      // q, Q, Ctrl-C (raw mode delivers it as a byte, not a signal), Ctrl-D.
      if (d.some((b) => b === 0x71 || b === 0x51 || b === 0x03 || b === 0x04)) stop();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // Whatever else ends the process still gives the terminal back.
    process.on('exit', restore);
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
    if (tty) out.write(ALT_SCREEN_ON);
    const draw = async (): Promise<void> => {
      const frame = await collect(local, node, advisor, maxProcesses);
      if (stopped) return;
      out.write(`${tty ? CLEAR : ''}${renderFrame(frame)}${tty ? '\nq quits' : ''}`);
      timer = setTimeout(() => void draw(), intervalMs);
    };
    void draw();
  });
}

/** mfsctl's entry for `mon`: the exit code (2 bad usage, 1 failure), messages written. */
export async function monCommand(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`mfsctl: ${(err as Error).message}\n${usage ? `${MON_USAGE}\n` : ''}`);
    return usage ? 2 : 1;
  }
}
