#!/usr/bin/env node
// slow-main --delay-ms N SOURCE MOUNTPOINT: SOURCE mirrored at MOUNTPOINT (the passthrough) with
// every operation answered N ms late and no kernel attribute or entry caching, so every stat,
// lookup, open and read of the mount waits N ms. For tests and benchmarks of a slow export; prints
// "slow-passthrough: mounted SOURCE on MOUNTPOINT" when ready, unmounts on SIGTERM/SIGINT.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { InitFlag, mountFuse, openFuseDevice, Session, unmountFuse } from '../kernel/index.js';
import { PASSTHROUGH_INIT_FLAGS, PASSTHROUGH_INIT_FLAGS_OFF, PassthroughFs } from './passthrough.js';
import { slowed } from './slow.js';

function fail(message: string): never {
  process.stderr.write(`slow-passthrough: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--delay-ms');
  const delayMs = at >= 0 ? Number(argv[at + 1]) : 100;
  const positional = at >= 0 ? [...argv.slice(0, at), ...argv.slice(at + 2)] : argv;
  if (positional.length !== 2 || !Number.isFinite(delayMs) || delayMs < 0) fail('usage: slow-main [--delay-ms N] SOURCE MOUNTPOINT');
  const source = resolve(positional[0]!);
  const mountPoint = realpathSync(resolve(positional[1]!));
  process.umask(0); // creations carry the caller's umask (DONT_MASK)
  const inner = new PassthroughFs(source, { timeout: 0, keepCache: false, directIo: false });
  const fd = openFuseDevice();
  inner.useDevice(fd);
  const session = new Session(fd, slowed(inner, delayMs), {
    withoutFlags: InitFlag.POSIX_LOCKS | PASSTHROUGH_INIT_FLAGS_OFF,
    withFlags: PASSTHROUGH_INIT_FLAGS,
  });
  let mounted = false;
  const stop = (): void => {
    if (mounted) void unmountFuse(mountPoint);
    else process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await mountFuse(fd, { source, mountPoint, allowOther: true, defaultPermissions: true, subtype: 'omfs-slow' });
  session.start();
  await session.initialized;
  mounted = true;
  process.stdout.write(`slow-passthrough: mounted ${source} on ${mountPoint}\n`);
  await session.closed;
  await session.device.close();
  process.exit(0);
}

main().catch((err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)));
