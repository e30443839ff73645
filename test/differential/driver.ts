// The differential test's driver: one executor process per (user, side), every step run on both
// sides, the two answers compared, then both trees walked and compared, and the fds still open.
//
// Side B is the oracle (a plain directory on ext4); side A is what is tested (the mount, or a second
// plain directory for the harness's self-check). What is compared:
// - each operation's answer: value or errno (stat answers without ino, dev, blocks and ctime);
// - every name under the root, lstat'ed: type, mode, nlink, uid, gid, size, rdev, symlink target,
//   content hash, xattrs, and which names share an inode (inode numbers themselves differ);
// - atime and mtime to the nanosecond where the sequence set them explicitly and nothing changed
//   them since ("pins", tracked by inode on side B and checked against B too, so a wrong rule in
//   this file shows up in the bare-vs-bare run); ctime never;
// - fstat of every fd still open (the same projection).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { leftoverPassthroughMounts, makeTempDir, startPassthrough, type PassthroughMount } from '../harness/passthrough-mount.js';
import {
  Generator, initialTree, O_CREAT, O_TRUNC, ROOT, SEEK_CUR, SEEK_DATA, SEEK_HOLE, SEEK_SET, showBytes, showOp, showPath, unhex, USERS,
  type Op, type ProbeJson, type Reply, type StatJson, type Step, type User, type WalkEntry,
} from './ops.js';

export const EXECUTOR = fileURLToPath(new URL('../../dist/test/differential/executor.js', import.meta.url));
const REQUEST_TIMEOUT_MS = 30_000;

/** One executor: a node process running as `user` with its cwd at `root`. */
export class Executor {
  private buffered = '';
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void; what: string }[] = [];
  private stderr = '';
  private exitCode: number | null | undefined;
  readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess, readonly user: User, readonly root: string) {
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('utf8');
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.waiting.shift()?.resolve(JSON.parse(line) as Reply);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-8000);
    });
    child.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        for (const w of this.waiting.splice(0)) {
          w.reject(new Error(`executor ${user.name} in ${root} exited (${code ?? signal}) during ${w.what}; stderr:\n${this.stderr}`));
        }
        resolve();
      });
    });
  }

  static start(root: string, user: User): Executor {
    if (!existsSync(EXECUTOR)) throw new Error(`${EXECUTOR} is missing: npm run build first`);
    const groups = user.groups.length ? [`--groups=${user.groups.join(',')}`] : ['--clear-groups'];
    const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, ...groups, '--', process.execPath, EXECUTOR, root], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new Executor(child, user, root);
  }

  request(op: Op, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Reply> {
    if (this.exitCode !== undefined) return Promise.reject(new Error(`executor ${this.user.name} has exited; stderr:\n${this.stderr}`));
    const what = showOp(op);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`executor ${this.user.name} in ${this.root}: no answer to ${what} after ${timeoutMs} ms (a hang in the filesystem?)`));
      }, timeoutMs);
      this.waiting.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        what,
      });
      this.child.stdin!.write(JSON.stringify(op) + '\n');
    });
  }

  /** SIGKILL and wait (a process stuck in a dead FUSE request only dies once the mount goes). */
  async kill(waitMs = 5_000): Promise<boolean> {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
    return Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), waitMs).unref())]);
  }
}

/**
 * Removes everything inside dir (or dir itself too with `self`): GNU rm walks with directory fds, so
 * paths longer than PATH_MAX go too (node's rm fails on them with ENAMETOOLONG).
 */
export function removeTree(dir: string, self = true): void {
  const script = self ? 'rm -rf --one-file-system -- "$1"' : 'shopt -s nullglob dotglob; cd -- "$1" && rm -rf --one-file-system -- *';
  const r = spawnSync('bash', ['-c', script, 'bash', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot remove ${dir}: ${r.stderr}`);
}

/** One side: a root directory and an executor per user in it. */
export class Side {
  readonly execs: Executor[];
  /** A root executor in the directory behind this side (the mount's SOURCE), when asked for. */
  readonly backing: Executor | undefined;
  constructor(readonly label: string, readonly root: string, backingRoot?: string) {
    this.execs = USERS.map((u) => Executor.start(root, u));
    this.backing = backingRoot === undefined ? undefined : Executor.start(backingRoot, ROOT);
  }
  run(user: number, op: Op): Promise<Reply> {
    return this.execs[user]!.request(op);
  }
  /** Kills every executor; true when all have exited. */
  async close(waitMs = 5_000): Promise<boolean> {
    const all = this.backing ? [...this.execs, this.backing] : this.execs;
    const done = await Promise.all(all.map((e) => e.kill(waitMs)));
    return done.every(Boolean);
  }
}

/** A difference between the sides (or, when `harness` is set, between side B and the pins). */
export class Mismatch extends Error {
  constructor(message: string, readonly harness = false) {
    super(message);
    this.name = 'Mismatch';
  }
}

type Ts = { sec: number; nsec: number };
interface Pin { atime?: Ts; mtime?: Ts; /** the pinned inode's type, '' when pinned through an fd */ type: string }

const showTs = (t: Ts | undefined): string => (t ? `${t.sec}.${String(t.nsec).padStart(9, '0')}` : '-');
const sameTs = (x: Ts | undefined, y: Ts | undefined): boolean => x?.sec === y?.sec && x?.nsec === y?.nsec;

/** The fields of a stat that must be equal on both sides (times separately, by pins). */
function statCore(st: StatJson): Record<string, unknown> {
  return { type: st.type, mode: `0${st.mode.toString(8)}`, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, rdev: st.rdev };
}

function userText(u: User): string {
  return `${u.name} (uid ${u.uid} gid ${u.gid}${u.groups.length ? ` groups ${u.groups.join(',')}` : ''})`;
}

/** A reply in words: bytes decoded, stats shortened. */
export function showReply(op: Op, r: Reply): string {
  if (!r.ok) return `error ${r.code}`;
  if (r.value === undefined) return 'ok';
  const v = r.value;
  switch (op.op) {
    case 'read': case 'getxattr': case 'connect': {
      const b = unhex(v as string);
      return `ok ${b.length} bytes ${showBytes(b, 24)}`;
    }
    case 'readlink': return `ok ${showPath(v as string)}`;
    case 'readdir': case 'readdirNode': return `ok [${(v as string[]).map(showPath).join(', ')}]`;
    case 'stat': case 'fstat': return `ok ${JSON.stringify(statCore(v as StatJson))} atime ${showTs((v as StatJson).atime)} mtime ${showTs((v as StatJson).mtime)}`;
    default: return `ok ${JSON.stringify(v)}`;
  }
}

/** The paths an operation names, to be probed on side B before it runs. */
function pathsOf(op: Op): string[] {
  if (op.op === 'link' || op.op === 'rename') return [op.from, op.to];
  if ('path' in op && typeof op.path === 'string') return [op.path];
  if ('target' in op && typeof op.target === 'object' && 'path' in op.target) return [op.target.path];
  return [];
}

export interface StepLabel {
  /** e.g. "seed 3, step 17" */
  where: string;
  /** How to replay up to here. */
  replay?: string;
}

/** Runs steps on both sides and compares everything after each. */
export class Differ {
  private readonly pins = new Map<string, Pin>();
  /** Side B's inode of each open logical fd. */
  private readonly fdIno = new Map<number, string>();
  /** Which user's executor holds each open logical fd (only those are asked for fstats). */
  private readonly fdUser = new Map<number, number>();
  private readonly history: string[] = [];
  /** What was compared, so a run can show it compared something (and the self-check can insist). */
  readonly stats = { steps: 0, ok: 0, names: 0, pinnedTimes: 0, openFds: 0, unlinkedOpenFds: 0 };

  constructor(readonly a: Side, readonly b: Side) {}

  private pin(ino: string | undefined): Pin | undefined {
    return ino === undefined ? undefined : this.pins.get(ino);
  }
  private touch(ino: string | undefined | null, field: 'atime' | 'mtime'): void {
    if (ino) delete this.pins.get(ino)?.[field];
  }

  private fail(label: StepLabel, what: string, harness = false): never {
    const lines = [`${label.where}: ${what}`];
    if (label.replay) lines.push(`replay: ${label.replay}`);
    if (this.history.length) lines.push('last steps:', ...this.history.slice(-8).map((h) => `  ${h}`));
    throw new Mismatch(lines.join('\n'), harness);
  }

  /** One step on both sides, then the state compared. Returns side B's reply. */
  async step(step: Step, label: StepLabel): Promise<Reply> {
    try {
      return await this.stepAndCompare(step, label);
    } catch (e) {
      if (e instanceof Mismatch) throw e;
      // An executor that died or hung (a mount that stopped answering): say where it happened.
      this.fail(label, `${USERS[step.user]!.name}: ${showOp(step.op)}: ${(e as Error).message}`);
    }
  }

  private async stepAndCompare(step: Step, label: StepLabel): Promise<Reply> {
    const { user, op } = step;
    if (op.op === 'sleep') {
      await new Promise((resolve) => setTimeout(resolve, op.ms));
      this.history.push(`${label.where.replace(/^.*?(step|setup)/, '$1')}: sleep ${op.ms} ms`);
      return { ok: true };
    }
    const paths = pathsOf(op);
    const probe = paths.length ? ((await this.b.run(0, { op: 'probe', paths })) as { value: ProbeJson[] }).value : [];
    const run = (side: Side): Promise<Reply> => {
      if (step.via !== 'backing') return side.run(user, op);
      if (!side.backing) throw new Error(`${side.label} has no backing executor`);
      return side.backing.request(op);
    };
    const [ra, rb] = await Promise.all([run(this.a), run(this.b)]);
    const who = step.via === 'backing' ? 'root on the backing dir' : USERS[user]!.name;
    const text = `${label.where.replace(/^.*?(step|setup)/, '$1')} ${who}: ${showOp(op)} -> ${showReply(op, rb)}`;
    const ca = this.comparableReply(op, ra, rb);
    const cb = this.comparableReply(op, rb, rb);
    if (JSON.stringify(ca) !== JSON.stringify(cb) && !(await this.seekWithinZeros(step, ra, rb))) {
      this.fail(label, [
        `the answers differ`,
        `  op:     ${step.via === 'backing' ? who : userText(USERS[user]!)}: ${showOp(op)}`,
        `  ${this.a.label.padEnd(6)}: ${showReply(op, ra)}`,
        `  ${this.b.label.padEnd(6)}: ${showReply(op, rb)}`,
      ].join('\n'));
    }
    this.history.push(text);
    this.stats.steps++;
    if (rb.ok) this.stats.ok++;
    if (process.env.DIFF_TRACE) process.stderr.write(`${text}\n`);
    this.effects(op, probe, rb);
    if (op.op === 'open' && rb.ok && step.via !== 'backing') this.fdUser.set(op.id, user);
    if (op.op === 'close' && step.via !== 'backing') this.fdUser.delete(op.id);
    if (step.check !== false) await this.compareState(label, `after ${showOp(op)}`);
    return rb;
  }

  /**
   * SEEK_DATA and SEEK_HOLE over unwritten extents (fallocate, ZERO_RANGE) are answered by ext4 from
   * its page cache: an unwritten range counts as data once its pages are cached, so the answer
   * depends on what was read before and how (a FUSE server reads the backing file in its own
   * sizes), not on the calls alone. Two answers are then both right when everything between them
   * reads as zeros on both sides (ENXIO from SEEK_DATA standing for the end of the file). When that
   * holds, both fds are left at the oracle's offset and the step counts as equal.
   */
  private async seekWithinZeros(step: Step, ra: Reply, rb: Reply): Promise<boolean> {
    const op = step.op;
    if (op.op !== 'lseek' || (op.whence !== SEEK_DATA && op.whence !== SEEK_HOLE) || step.via) return false;
    const ends: number[] = [];
    for (const [side, r] of [[this.a, ra], [this.b, rb]] as const) {
      if (r.ok) ends.push(r.value as number);
      else if (r.code === 'ENXIO' && op.whence === SEEK_DATA) {
        const st = await side.run(step.user, { op: 'fstat', id: op.id });
        if (!st.ok) return false;
        ends.push((st.value as StatJson).size);
      } else return false;
    }
    const lo = Math.min(...ends);
    const len = Math.max(...ends) - lo;
    if (lo < op.off || len > 1 << 20) return false;
    for (const side of [this.a, this.b]) {
      const r = await side.run(step.user, { op: 'read', id: op.id, len, off: lo });
      if (!r.ok || !/^(00)*$/.test(r.value as string) || (r.value as string).length !== 2 * len) return false;
    }
    this.touch(this.fdIno.get(op.id), 'atime');
    const pos = await this.b.run(step.user, { op: 'lseek', id: op.id, off: 0, whence: SEEK_CUR });
    if (!pos.ok) return false;
    await this.a.run(step.user, { op: 'lseek', id: op.id, off: pos.value as number, whence: SEEK_SET });
    const note = `  (${showOp(op)}: ${this.a.label} ${showReply(op, ra)}, ${this.b.label} ${showReply(op, rb)}: only zeros between, as ext4 allows)`;
    this.history.push(note);
    if (process.env.DIFF_TRACE) process.stderr.write(`${note}\n`);
    return true;
  }

  /** The reply as compared: no meta, stats projected, pinned times kept. */
  private comparableReply(op: Op, r: Reply, oracle: Reply): unknown {
    if (!r.ok) return { code: r.code };
    if ((op.op === 'stat' || op.op === 'fstat') && r.value) {
      const st = r.value as StatJson;
      const pin = oracle.ok ? this.pin((oracle.value as StatJson | undefined)?.ino) : undefined;
      return { ...statCore(st), atime: pin?.atime && st.atime, mtime: pin?.mtime && st.mtime };
    }
    return { value: r.value };
  }

  /** What the operation did to the pinned times (conservatively: anything that may change one unpins it). */
  private effects(op: Op, probe: ProbeJson[], rb: Reply): void {
    const [p0, p1] = probe;
    switch (op.op) {
      case 'open':
        if (op.flags & O_CREAT) {
          this.touch(p0?.p?.ino, 'mtime');
          // Through a (dangling) symlink the file is made in a directory the probe does not name.
          if (p0?.l?.type === 'symlink') for (const pin of this.pins.values()) if (pin.type !== 'file') delete pin.mtime;
        }
        if (op.flags & O_TRUNC) {
          this.touch(p0?.s?.ino, 'mtime');
          this.touch(p0?.l?.ino, 'mtime');
        }
        if (rb.ok) this.fdIno.set(op.id, (rb.meta as { ino: string }).ino);
        break;
      case 'close':
        this.fdIno.delete(op.id);
        break;
      case 'read':
        this.touch(this.fdIno.get(op.id), 'atime');
        break;
      case 'write': case 'ftruncate': case 'fallocate':
        this.touch(this.fdIno.get(op.id), 'mtime');
        break;
      case 'truncate':
        this.touch(p0?.s?.ino, 'mtime');
        break;
      case 'unlink': case 'rmdir': case 'mkdir': case 'mknod': case 'symlink': case 'listen': case 'unlisten':
        this.touch(p0?.p?.ino, 'mtime');
        break;
      case 'link':
        this.touch(p1?.p?.ino, 'mtime');
        break;
      case 'rename':
        this.touch(p0?.p?.ino, 'mtime');
        this.touch(p1?.p?.ino, 'mtime');
        break;
      case 'readlink':
        this.touch(p0?.l?.ino, 'atime');
        break;
      case 'readdir': case 'readdirNode':
        this.touch(p0?.s?.ino, 'atime');
        break;
      case 'utimens': {
        if (!rb.ok) break;
        const t = op.target;
        const target = 'id' in t ? { ino: this.fdIno.get(t.id), type: '' } : t.follow ? p0?.s : p0?.l;
        if (!target?.ino) break;
        const pin = this.pins.get(target.ino) ?? { type: target.type };
        for (const field of ['atime', 'mtime'] as const) {
          const v = op[field];
          // A symlink's atime changes whenever a path is resolved through it: never pinned.
          if (v === 'now' || (field === 'atime' && target.type === 'symlink')) delete pin[field];
          else if (v !== 'omit') pin[field] = v;
        }
        this.pins.set(target.ino, pin);
        break;
      }
      default:
        break;
    }
  }

  /** Walks both trees and fstats every open fd on both sides; throws Mismatch on a difference. */
  async compareState(label: StepLabel, after: string): Promise<void> {
    const [wa, wb] = await Promise.all([this.a.run(0, { op: 'walk' }), this.b.run(0, { op: 'walk' })]);
    if (!wa.ok || !wb.ok) this.fail(label, `walk failed: ${this.a.label} ${showReply({ op: 'walk' }, wa)}, ${this.b.label} ${showReply({ op: 'walk' }, wb)}`);
    const ea = wa.value as WalkEntry[];
    const eb = wb.value as WalkEntry[];

    // Side B against the pins: a failure here is a wrong rule in effects(), not a filesystem bug.
    for (const e of eb) {
      const pin = this.pins.get(e.ino);
      if (!pin) continue;
      for (const field of ['atime', 'mtime'] as const) {
        if (pin[field] && !sameTs(pin[field], e[field])) {
          this.fail(label, `harness: ${this.b.label} ${showPath(e.path)} ${field} is ${showTs(e[field])}, the pin says ${showTs(pin[field])} (${after}); a rule in driver.ts effects() is wrong`, true);
        }
      }
    }

    this.stats.names += eb.length;
    const diffs = this.diffTrees(ea, eb);
    if (diffs.length) this.fail(label, `the trees differ ${after}:\n${diffs.slice(0, 12).map((d) => `  ${d}`).join('\n')}${diffs.length > 12 ? `\n  ... ${diffs.length - 12} more` : ''}`);

    // fstat every open fd, in the executors that hold one.
    const holders = [...new Set(this.fdUser.values())];
    const [fa, fb] = await Promise.all([
      Promise.all(holders.map((u) => this.a.execs[u]!.request({ op: 'fstatAll' }))),
      Promise.all(holders.map((u) => this.b.execs[u]!.request({ op: 'fstatAll' }))),
    ]);
    const fdDiffs: string[] = [];
    const openInos = new Set<string>();
    fb.forEach((rb, k) => {
      const i = holders[k]!;
      const sa = (fa[k] as { value: Record<string, StatJson | { err: string }> }).value;
      const sb = (rb as { value: Record<string, StatJson | { err: string }> }).value;
      for (const id of new Set([...Object.keys(sa), ...Object.keys(sb)])) {
        const x = sa[id];
        const y = sb[id];
        if (y && 'ino' in y) {
          openInos.add(y.ino);
          this.stats.openFds++;
          if (y.nlink === 0) this.stats.unlinkedOpenFds++;
        }
        const cx = x && 'err' in x ? x : x && this.withPins(x, y && 'ino' in y ? y.ino : undefined);
        const cy = y && 'err' in y ? y : y && this.withPins(y, y.ino);
        if (JSON.stringify(cx) !== JSON.stringify(cy)) {
          fdDiffs.push(`fd#${id} (${USERS[i]!.name}): ${this.a.label} ${JSON.stringify(cx) ?? 'not open'}, ${this.b.label} ${JSON.stringify(cy) ?? 'not open'}`);
        }
      }
    });
    if (fdDiffs.length) this.fail(label, `fstat of open fds differs ${after}:\n${fdDiffs.map((d) => `  ${d}`).join('\n')}`);

    // Inodes no longer named nor open may be reused by the next creation: forget their pins.
    const present = new Set(eb.map((e) => e.ino));
    for (const ino of this.pins.keys()) if (!present.has(ino) && !openInos.has(ino)) this.pins.delete(ino);
  }

  private withPins(st: StatJson, oracleIno: string | undefined): Record<string, unknown> {
    const pin = this.pin(oracleIno);
    const out = statCore(st);
    if (pin?.atime) out.atime = showTs(st.atime);
    if (pin?.mtime) out.mtime = showTs(st.mtime);
    if (pin?.atime || pin?.mtime) this.stats.pinnedTimes++;
    return out;
  }

  /** Differences between the walks, as lines; hard links compared as groups of names. */
  private diffTrees(ea: WalkEntry[], eb: WalkEntry[]): string[] {
    const project = (entries: WalkEntry[], oracle: Map<string, WalkEntry>): Map<string, Record<string, unknown>> => {
      const firstOfIno = new Map<string, string>();
      const out = new Map<string, Record<string, unknown>>();
      for (const e of entries) {
        if (!firstOfIno.has(e.ino)) firstOfIno.set(e.ino, e.path);
        const o = oracle.get(e.path);
        const rec: Record<string, unknown> = e.err && e.type === undefined ? { err: e.err } : {
          ...this.withPins(e, o?.ino),
          linkedTo: firstOfIno.get(e.ino) === e.path ? undefined : showPath(firstOfIno.get(e.ino)!),
          target: e.target === undefined ? undefined : showPath(e.target),
          hash: e.hash,
          xattrs: e.xattrs?.map(([n, v]) => `${n}=${v.length > 40 ? `${v.slice(0, 40)}..(${v.length / 2} bytes)` : v}`).join(' '),
          err: e.err,
        };
        out.set(e.path, rec);
      }
      return out;
    };
    const byPathB = new Map(eb.map((e) => [e.path, e]));
    const pa = project(ea, byPathB);
    const pb = project(eb, byPathB);
    const diffs: string[] = [];
    for (const path of pa.keys()) if (!pb.has(path)) diffs.push(`${showPath(path)}: only on ${this.a.label} ${JSON.stringify(pa.get(path))}`);
    for (const path of pb.keys()) if (!pa.has(path)) diffs.push(`${showPath(path)}: only on ${this.b.label} ${JSON.stringify(pb.get(path))}`);
    for (const [path, x] of pa) {
      const y = pb.get(path);
      if (!y) continue;
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) {
          diffs.push(`${k}: ${this.a.label} ${JSON.stringify(x[k]) ?? '-'}, ${this.b.label} ${JSON.stringify(y[k]) ?? '-'}, of ${path === '' ? 'the root' : showPath(path)}`);
        }
      }
    }
    return diffs;
  }
}

export interface SequenceOptions {
  seed: number;
  ops: number;
  a: Side;
  b: Side;
  /** The replay hint for a failure at random step i (0-based). */
  replay: (i: number) => string;
}

/** The initial tree, then `ops` random steps of the seed, on both sides. */
export async function runSequence(o: SequenceOptions): Promise<Differ['stats']> {
  const differ = new Differ(o.a, o.b);
  const setup = initialTree();
  for (const [i, step] of setup.entries()) await differ.step(step, { where: `seed ${o.seed}, setup ${i}`, replay: o.replay(0) });
  const gen = new Generator(o.seed);
  for (let i = 0; i < o.ops; i++) {
    const step = gen.next();
    const rb = await differ.step(step, { where: `seed ${o.seed}, step ${i}`, replay: o.replay(i) });
    gen.observe(step, rb);
  }
  return differ.stats;
}

export interface SidesOptions {
  /** Side A is a fresh mount (true) or a second plain directory (false: the self-check). */
  mount: boolean;
  /** Extra omfs-passthrough options. */
  mountArgs?: string[];
  /** Also start a root executor on the directory behind each side (Step.via 'backing'). */
  backing?: boolean;
}

/**
 * Runs fn with two fresh sides in temp dirs of the same filesystem, then kills every executor,
 * unmounts and removes the dirs whatever happened, and checks that no mount is left.
 */
export async function withSides(o: SidesOptions, fn: (a: Side, b: Side) => Promise<unknown>): Promise<void> {
  const dirs: string[] = [];
  const sides: Side[] = [];
  let pt: PassthroughMount | undefined;
  try {
    const bare = await makeTempDir('omfs-diff-');
    dirs.push(bare);
    let aRoot: string;
    let aBacking: string;
    if (o.mount) {
      pt = await startPassthrough({ args: o.mountArgs ?? [] });
      aRoot = pt.mnt;
      aBacking = pt.source;
    } else {
      aRoot = await makeTempDir('omfs-diff-');
      aBacking = aRoot;
      dirs.push(aRoot);
    }
    const a = new Side(o.mount ? 'mount' : 'bare1', aRoot, o.backing ? aBacking : undefined);
    sides.push(a);
    const b = new Side(o.mount ? 'bare' : 'bare2', bare, o.backing ? bare : undefined);
    sides.push(b);
    await fn(a, b);
  } finally {
    // Executors first: their cwd is in the mount. One stuck in a dead FUSE request only dies once
    // the mount is gone, so they are waited for again after the unmount.
    const allGone = (await Promise.all(sides.map((s) => s.close(3_000)))).every(Boolean);
    try {
      // The source may hold paths longer than PATH_MAX, which the fixture's own rm cannot remove.
      if (pt) removeTree(pt.source, false);
    } finally {
      await pt?.unmount();
      if (!allGone && !(await Promise.all(sides.map((s) => s.close(10_000)))).every(Boolean)) {
        throw new Error('an executor could not be killed');
      }
      for (const dir of dirs) removeTree(dir);
    }
    const leftover = leftoverPassthroughMounts();
    if (leftover.length) throw new Error(`mounts left behind: ${JSON.stringify(leftover)}`);
  }
}

/** Runs explicit steps on both sides (the regression cases), comparing after each like a sequence. */
export async function runSteps(name: string, steps: Step[], a: Side, b: Side): Promise<Differ['stats']> {
  const differ = new Differ(a, b);
  for (const [i, step] of steps.entries()) await differ.step(step, { where: `case '${name}', step ${i}` });
  return differ.stats;
}
