// Shared helpers for the passthrough's real-mount tests: run real tools, snapshot trees, build C helpers.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a bash script (args available as $1, $2, ...) and return its exit code and output. */
export function sh(script: string, args: string[] = [], options: { cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdin = options.input === undefined ? 'ignore' : 'pipe';
    const child = spawn('bash', ['-c', script, 'bash', ...args], { cwd: options.cwd, stdio: [stdin, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the script may exit without reading its input
      child.stdin.end(options.input);
    }
  });
}

/** Like sh, but a non-zero exit is a test failure that shows the script and its stderr. */
export async function must(script: string, args: string[] = [], options: { cwd?: string; input?: string } = {}): Promise<string> {
  const r = await sh(script, args, options);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${script} [${args.join(' ')}]\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The same bash script run as an unprivileged user with no supplementary groups. */
export function shAs(uid: number, gid: number, script: string, args: string[] = []): Promise<RunResult> {
  const prefix = `exec setpriv --reuid=${uid} --regid=${gid} --clear-groups bash -c "$1" bash "\${@:2}"`;
  return sh(prefix, [script, ...args]);
}

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: bigint | null; // null for directories: their st_size is filesystem-specific
  mtimeNs: bigint;
  nlink: bigint;
  target?: string;
  sha256?: string;
  /** Index of the first path of this inode (hard-link group), so groups compare across filesystems. */
  linkGroup: string;
}

/** Walk a tree with lstat and describe every entry in a form comparable between two directories. */
export async function snapshotTree(root: string, withContent = true): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  const firstPathOfInode = new Map<bigint, string>();
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, path);
      const st = await lstat(abs, { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'other';
      if (!firstPathOfInode.has(st.ino)) firstPathOfInode.set(st.ino, path);
      const entry: TreeEntry = {
        path,
        type,
        mode: Number(st.mode),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: type === 'dir' ? null : st.size,
        mtimeNs: st.mtimeNs,
        nlink: st.nlink,
        linkGroup: firstPathOfInode.get(st.ino) ?? path,
      };
      if (type === 'symlink') entry.target = await readlink(abs);
      if (type === 'file' && withContent) entry.sha256 = (await must('sha256sum -- "$1"', [abs])).split(' ')[0];
      entries.push(entry);
      if (type === 'dir') await walk(path);
    }
  };
  await walk('');
  return entries;
}

/**
 * The tree with mtimes cut to whole microseconds. A timestamp *set* through a Node daemon (utimes, as
 * cp -a and tar x do) keeps only microseconds: libuv hands utimensat a double rounded to 1 us. So a
 * copy is compared with its original at that precision, while the mount and its backing directory,
 * which must agree exactly, are compared in full.
 */
export function atMicroseconds(entries: TreeEntry[]): TreeEntry[] {
  return entries.map((e) => ({ ...e, mtimeNs: (e.mtimeNs / 1000n) * 1000n }));
}

/** Compile a C program with gcc; returns the binary's path. */
export async function compileC(dir: string, name: string, source: string): Promise<string> {
  const src = join(dir, `${name}.c`);
  const bin = join(dir, name);
  await writeFile(src, source);
  await must('gcc -O1 -Wall -o "$1" "$2"', [bin, src]);
  return bin;
}

/** Deterministic pseudo-random bytes (xorshift32), so generated trees are the same on every run. */
export function seededBytes(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Whether `pid` is currently inside the syscall numbered `nr` (x86_64 numbers; root reads /proc/PID/syscall). */
export function inSyscall(pid: number, nr: number): boolean {
  const r = spawnSync('cat', [`/proc/${pid}/syscall`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.split(' ')[0] === String(nr);
}
