// The sshfs baseline of bench/mfs-vs-sshfs.ts: sshfs and openssh-server from apt (installed if
// missing), an sshd of our own on 127.0.0.1 and a free port, with a host key, an authorized key for
// root and an sshd_config made for this run in the scratch dir. Nothing under /etc/ssh or ~/.ssh is
// read or written: the config names its own files, and sshfs gets the client key, the port and
// "trust this host, remember nothing" as ssh -o options. The sshfs mount itself has sshfs's default
// options (only -f, so that it stays our child and its end is ours to see).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  freePort, logSays, mountInfo, runOrThrow, startDaemon, stopDaemon, trackMadeDir, trackMount, unmount, type Daemon,
} from './mfs-procs.js';

const SSHD = '/usr/sbin/sshd';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** sshd refuses to start without its privilege separation directory. */
const PRIVSEP_DIR = '/run/sshd';

const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Installs sshfs and openssh-server with apt-get if either is missing; says so on stdout. */
export function ensureSshPackages(): void {
  const missing = [
    ...(onPath('sshfs') ? [] : ['sshfs']),
    ...(existsSync(SSHD) && existsSync(SFTP_SERVER) ? [] : ['openssh-server']),
  ];
  if (missing.length === 0) return;
  console.log(`installing ${missing.join(' ')} with apt-get (missing); apt's output goes to stderr`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: ['ignore', 2, 2], env }).status === 0;
  if (!install()) {
    // A fresh machine may have no package lists yet.
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 2, 2], env });
    if (!install()) throw new Error(`apt-get install ${missing.join(' ')} failed`);
  }
  if (!onPath('sshfs') || !existsSync(SSHD)) throw new Error(`apt-get install ${missing.join(' ')} left sshfs or ${SSHD} missing`);
}

export interface Sshd { port: number; clientKey: string; daemon: Daemon }

/** Our own sshd on 127.0.0.1, ready to take root with the run's key. */
export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_key');
  const clientKey = join(dir, 'client_key');
  runOrThrow('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'omfs-bench-host', '-f', hostKey]);
  runOrThrow('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'omfs-bench-client', '-f', clientKey]);
  const authorized = join(dir, 'authorized_keys');
  copyFileSync(`${clientKey}.pub`, authorized);
  chmodSync(authorized, 0o600);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `AuthorizedKeysFile ${authorized}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The key file lives under the scratch dir, below world-writable /tmp: the strict path check
    // would refuse it.
    'StrictModes no',
    'PidFile none',
    // Debian's default sftp server (a process per session), what a stock sshd would run.
    `Subsystem sftp ${SFTP_SERVER}`,
    '',
  ].join('\n'));
  if (!existsSync(PRIVSEP_DIR)) {
    mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
    trackMadeDir(PRIVSEP_DIR);
  }
  const log = join(dir, 'sshd.log');
  const daemon = await startDaemon('sshd', SSHD, ['-D', '-e', '-f', config], log, logSays(log, 'Server listening on', true));
  return { port, clientKey, daemon };
}

export interface SshfsMount { mnt: string; daemon: Daemon; stop(): Promise<void> }

/** sshfs of root@127.0.0.1:`remoteDir` at `mnt`, default sshfs options. */
export async function mountSshfs(sshd: Sshd, remoteDir: string, mnt: string, logFile: string): Promise<SshfsMount> {
  mkdirSync(mnt, { recursive: true });
  const sshOptions = [
    `IdentityFile=${sshd.clientKey}`, `Port=${sshd.port}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null',
    'BatchMode=yes', 'LogLevel=ERROR',
  ].join(',');
  trackMount(mnt);
  const daemon = await startDaemon('sshfs', 'sshfs', ['-f', '-o', sshOptions, `root@127.0.0.1:${remoteDir}`, mnt], logFile,
    () => mountInfo(mnt)?.fsType === 'fuse.sshfs');
  return {
    mnt,
    daemon,
    stop: async () => {
      unmount(mnt); // sshfs -f exits once its mount is gone
      await stopDaemon(daemon, 5_000);
    },
  };
}
