// Network namespaces for tests where addresses matter: a LAN of N namespaces (node1..nodeN), each
// with one veth into a bridge that lives in a namespace of its own (the "hub"), so nothing is
// added to the host's network. Each node's interface is eth0 with 10.<net>.0.K/24 and a multicast
// route (discovery). Names carry a random tag so runs at the same time do not collide, and every
// namespace is deleted by destroy(), or when the test process exits if a test failed first.
//
// Processes started with `ip netns exec` get a mount namespace of their own (ip remounts /sys in
// it): a FUSE mount made by such a process is seen only inside it. execIn(pid, ...) therefore
// enters both the network and the mount namespace of a running process (nsenter), which is what
// "run this on node K" means once node K's mfsd has mounted /mfs.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetNode {
  /** 1..N */
  index: number;
  /** The namespace's name (for `ip netns exec`). */
  ns: string;
  /** eth0's address. */
  address: string;
}

export interface Lan {
  tag: string;
  hub: string;
  nodes: NetNode[];
  /** `<prefix>.K`: the subnet's addresses. */
  prefix: string;
  /** Deletes every namespace (and with them the veths and the bridge). Safe to call twice. */
  destroy(): void;
}

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

/** Runs `ip ARGS`, throwing with its stderr when it fails. */
export function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
  return r.stdout;
}

/** Whether this process may make namespaces (root with iproute2): tests skip otherwise. */
export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `omfs-probe-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
  if (r.status !== 0) return false;
  spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  return true;
}

function addNs(name: string): void {
  ip('netns', 'add', name);
  live.add(name);
  ip('-n', name, 'link', 'set', 'lo', 'up');
}

/** A LAN of `count` namespaces on subnet 10.<net>.0.0/24. */
export function createLan(count: number, net = 77): Lan {
  const tag = randomBytes(3).toString('hex');
  const hub = `omfs-${tag}-hub`;
  const prefix = `10.${net}.0`;
  const nodes: NetNode[] = [];
  const destroy = (): void => {
    for (const ns of [...nodes.map((n) => n.ns), hub]) {
      if (!live.has(ns)) continue;
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      live.delete(ns);
    }
  };
  try {
    addNs(hub);
    // Snooping off: with no IGMP querier on this LAN the bridge would otherwise have to guess.
    ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
    ip('-n', hub, 'link', 'set', 'br0', 'up');
    for (let k = 1; k <= count; k++) {
      const ns = `omfs-${tag}-n${k}`;
      nodes.push({ index: k, ns, address: `${prefix}.${k}` });
      addNs(ns);
      ip('-n', hub, 'link', 'add', `p${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('-n', hub, 'link', 'set', `p${k}`, 'master', 'br0', 'up');
      ip('-n', ns, 'addr', 'add', `${prefix}.${k}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return { tag, hub, nodes, prefix, destroy };
}

/** Adds an address to a node's eth0 (e.g. the address an ALIAS line names). */
export function addAddress(node: NetNode, cidr: string, dev = 'eth0'): void {
  ip('-n', node.ns, 'addr', 'add', cidr, 'dev', dev);
}

/**
 * An address of the node that no other node can route to (on its loopback: the kernel may lack
 * the dummy interface type), as a second network the node alone is on.
 */
export function addUnreachableAddress(node: NetNode, address: string): void {
  ip('-n', node.ns, 'addr', 'add', `${address}/32`, 'dev', 'lo');
}

/** Starts `cmd args` in the node's namespace (`ip netns exec`; the pid is the command's own). */
export function spawnIn(node: NetNode, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', node.ns, cmd, ...args], opts);
}

export interface ExecResult { status: number | null; stdout: string; stderr: string }

/** Runs a command to completion in the node's network namespace. */
export function execNs(node: NetNode, cmd: string, args: string[], timeoutMs = 30_000): ExecResult {
  const r = spawnSync('ip', ['netns', 'exec', node.ns, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Runs a command to completion in the network and mount namespaces of process `pid` (a daemon
 * started with spawnIn), so that it sees the mounts that process made.
 */
export function execIn(pid: number, cmd: string, args: string[], timeoutMs = 30_000): ExecResult {
  const r = spawnSync('nsenter', ['-t', String(pid), '-m', '-n', '--', cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The same, without blocking the test's event loop (a mount served by a process of this test would otherwise wait on it). */
export function execInAsync(pid: number, cmd: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', ['-t', String(pid), '-m', '-n', '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
