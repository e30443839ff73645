#!/usr/bin/env node
// omfs-passthrough [options] SOURCE MOUNTPOINT: mirror SOURCE at MOUNTPOINT over our own FUSE
// protocol layer, in the foreground. Exit 0 after unmount (signal or `umount`), 1 if the mount
// fails, 2 on bad arguments.
import { realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  cleanStaleMount, DEFAULT_BUSY_POLL_US, InitFlag, MAX_READAHEAD, mountAt, mountFuse, openFuseDevice, Session, setMountReadahead, unmountFuse,
} from '../fuse/kernel/index.js';
import { OPENLESS_INIT_FLAGS_OFF, PASSTHROUGH_INIT_FLAGS, PASSTHROUGH_INIT_FLAGS_OFF, PassthroughFs } from '../fuse/passthrough/index.js';
import { raiseFdLimit, readNow, yieldCpu } from '../sys/index.js';
import { CacheWatcher } from '../fuse/passthrough/watch.js';

const USAGE = 'usage: omfs-passthrough [--keep-cache] [--direct-io] [--kernel-passthrough] [--debug] [--timeout SECONDS] [--busy-poll MICROSECONDS] SOURCE MOUNTPOINT';
const NEEDS_ROOT = 'omfs-passthrough needs root (CAP_SYS_ADMIN) to open /dev/fuse and mount';

function fail(code: number, message: string): never {
  process.stderr.write(`omfs-passthrough: ${message}\n`);
  process.exit(code);
}

interface Cli { source: string; mountPoint: string; keepCache: boolean; directIo: boolean; kernelPassthrough: boolean; debug: boolean; timeout: number; busyPollUs: number }

/** The number given as `--name VALUE` (following: VALUE) or `--name=VALUE`. */
function nonNegative(arg: string, following: string | undefined, unit: string): number {
  const v = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : following;
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n) || n < 0) fail(2, `${arg.split('=')[0]} needs a number of ${unit} >= 0\n${USAGE}`);
  return n;
}

function parseArgs(argv: string[]): Cli {
  const positional: string[] = [];
  const cli = { keepCache: false, directIo: false, kernelPassthrough: false, debug: false, timeout: 1, busyPollUs: DEFAULT_BUSY_POLL_US };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--keep-cache') cli.keepCache = true;
    else if (a === '--kernel-passthrough') cli.kernelPassthrough = true;
    else if (a === '--direct-io') cli.directIo = true;
    else if (a === '--debug') cli.debug = true;
    else if (a === '--timeout' || a.startsWith('--timeout=')) cli.timeout = nonNegative(a, a.includes('=') ? undefined : argv[++i], 'seconds');
    else if (a === '--busy-poll' || a.startsWith('--busy-poll=')) cli.busyPollUs = nonNegative(a, a.includes('=') ? undefined : argv[++i], 'microseconds');
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else if (a.startsWith('-')) fail(2, `unknown option ${a}\n${USAGE}`);
    else positional.push(a);
  }
  if (positional.length !== 2) fail(2, `need SOURCE and MOUNTPOINT\n${USAGE}`);
  return { ...cli, source: resolve(positional[0]!), mountPoint: resolve(positional[1]!) };
}

function requireDir(path: string, what: string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    fail(2, `${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!isDir) fail(2, `${what} ${path} is not a directory`);
}

async function main(): Promise<void> {
  // Non-sequential READs run on the libuv pool (fd-io.ts); the kernel keeps up to max_background
  // in flight. Set before the first pool job creates the pool.
  process.env.UV_THREADPOOL_SIZE ??= '8';
  const cli = parseArgs(process.argv.slice(2));
  requireDir(cli.source, 'SOURCE');
  cleanStaleMount(cli.mountPoint); // a dead daemon's mount answers ENOTCONN: clear it first
  requireDir(cli.mountPoint, 'MOUNTPOINT');
  // Mounting on top of a live mount would hide it silently (a dead FUSE mount is gone by now).
  const real = realpathSync(cli.mountPoint);
  const already = mountAt(real);
  if (already) fail(1, `MOUNTPOINT ${real} is already a mount point (${already.fsType} ${already.source}); unmount it first`);
  process.umask(0); // creations set the caller's umask (DONT_MASK: it comes with each request)
  raiseFdLimit(); // one O_PATH descriptor per inode the kernel remembers

  // --keep-cache without OPEN (PassthroughOptions.openless): a warm `grep -r` over a tree went
  // from 2.2x the bare directory's time to the same time (bench:fuse), the OPEN of each file
  // being most of what it waited for. --direct-io and --kernel-passthrough need OPEN's answer.
  const openless = cli.keepCache && !cli.directIo && !cli.kernelPassthrough;
  const fs = new PassthroughFs(cli.source, {
    timeout: cli.keepCache ? 3600 : cli.timeout,
    keepCache: cli.keepCache,
    directIo: cli.directIo,
    openless,
  });
  let fd: number;
  try {
    fd = openFuseDevice();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(1, code === 'EACCES' || code === 'EPERM' ? `cannot open /dev/fuse (${code}): ${NEEDS_ROOT}` : `cannot open /dev/fuse: ${(err as Error).message}`);
  }
  fs.useDevice(fd);
  if (cli.kernelPassthrough) fs.enableKernelPassthrough();
  // Kernel-local POSIX locks already exclude processes on this one mount; nothing to gain here.
  const session = new Session(fd, fs, {
    debug: cli.debug,
    busyPoll: { microseconds: cli.busyPollUs, readNow, idle: yieldCpu },
    withoutFlags: InitFlag.POSIX_LOCKS | PASSTHROUGH_INIT_FLAGS_OFF | (cli.keepCache ? InitFlag.AUTO_INVAL_DATA : 0n) | (openless ? OPENLESS_INIT_FLAGS_OFF : 0n),
    // --keep-cache: pages go only when we say so (the watcher's INVAL_INODE). With AUTO_INVAL_DATA
    // the kernel would drop a file's pages at the first GETATTR after any write through the mount,
    // since the mtime it sees then is new to it.
    withFlags: PASSTHROUGH_INIT_FLAGS | (cli.kernelPassthrough ? InitFlag.PASSTHROUGH : 0n) | (cli.keepCache ? InitFlag.EXPLICIT_INVAL_DATA : 0n),
  });
  if (cli.keepCache) new CacheWatcher(fs, session.notifier).attach();
  fs.onAttrsChanged = (nodeId) => session.notifier.invalInode(nodeId, -1, 0);
  // Signal handlers go in before the ready line: a parent may send SIGTERM the moment it reads it.
  let mounted = false;
  let stopRequested = false;
  const stop = (): void => {
    if (stopRequested) return;
    stopRequested = true;
    if (mounted) void unmountFuse(cli.mountPoint);
  };
  // Before the mount exists a stop is only noted; once mounted it unmounts (exactly once).
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  try {
    await mountFuse(fd, { source: cli.source, mountPoint: cli.mountPoint, allowOther: true, defaultPermissions: true, subtype: 'omfs-passthrough' });
  } catch (err) {
    // Where /dev/fuse is open to all (0666), an unprivileged user gets as far as mount(8).
    fail(1, `${(err as Error).message}${process.geteuid?.() !== 0 ? `\n${NEEDS_ROOT}` : ''}`);
  }
  session.start(); // the kernel holds INIT until we read it
  await session.initialized;
  mounted = true;
  setMountReadahead(real, MAX_READAHEAD); // 1 MiB READs instead of 128 KiB
  if (cli.kernelPassthrough && !fs.usesKernelPassthrough) {
    process.stderr.write('omfs-passthrough: the kernel did not accept FUSE_PASSTHROUGH; file data goes through this process\n');
  }
  process.stdout.write(`omfs-passthrough: mounted ${cli.source} on ${cli.mountPoint}\n`);
  if (stopRequested) void unmountFuse(cli.mountPoint);
  const reason = await session.closed;
  await session.device.close();
  if (reason !== 'ENODEV' && reason !== 'ECONNABORTED') process.stderr.write(`omfs-passthrough: session ended: ${reason}\n`);
  process.exit(0);
}

main().catch((err: unknown) => fail(1, err instanceof Error ? (err.stack ?? err.message) : String(err)));
