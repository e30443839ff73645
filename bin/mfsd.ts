#!/usr/bin/env node
// mfsd: serve this node's exports to the cluster. SIGHUP re-reads the map. Exit codes: 0 after a clean stop, 1 when it
// cannot start (port in use, file service), 2 for a bad config or usage.
import * as grpc from '@grpc/grpc-js';
import { format } from 'node:util';
import { ConfigError, USAGE, loadConfig } from '../server/config.js';
import { StartupError, startDaemon } from '../server/daemon.js';
import { omfsVersion } from '../server/node-service.js';

// grpc-js logs its own errors bare on stderr; say whose they are. While starting, its lines are
// held back: a failed bind makes it log "No address added out of total 1 resolved" just before our
// own "cannot listen on ...: address in use", which says it better. Held lines are dropped when
// the start fails with such a message of ours, written otherwise; GRPC_VERBOSITY (asking for
// grpc's own logs) turns the holding off.
let held: string[] | null = process.env.GRPC_VERBOSITY ? null : [];
const grpcLine = (...args: unknown[]): void => {
  const line = `mfsd: grpc: ${format(...args)}\n`;
  if (held) held.push(line);
  else process.stderr.write(line);
};
grpc.setLogger({ error: grpcLine, info: grpcLine, debug: grpcLine });
function releaseGrpcLines(write: boolean): void {
  if (write) for (const line of held ?? []) process.stderr.write(line);
  held = null;
}

async function main(): Promise<number> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mfsd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (loaded.version || !loaded.config) {
    process.stdout.write(`mfsd ${omfsVersion()}\n`);
    return 0;
  }
  const cfg = loaded.config;
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(cfg);
  } catch (err) {
    if (err instanceof StartupError) {
      releaseGrpcLines(false);
      process.stderr.write(`mfsd: ${err.message}\n`);
      return err.exitCode;
    }
    releaseGrpcLines(true);
    throw err;
  }
  releaseGrpcLines(true);
  if (cfg.insecure) process.stderr.write('mfsd: WARNING: --insecure: plaintext, and any peer is accepted without a certificate\n');
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals += 1;
      if (signals === 1) {
        process.stderr.write(`mfsd: ${sig}: draining in-flight calls (up to ${cfg.shutdownGraceMs} ms)\n`);
        daemon.stop().then(() => {
          process.stderr.write('mfsd: stopped\n');
          resolve(0);
        }, (err: unknown) => {
          process.stderr.write(`mfsd: error while stopping: ${String(err)}\n`);
          resolve(1);
        });
      } else {
        process.stderr.write(`mfsd: ${sig} again: cancelling in-flight calls\n`);
        void daemon.stop(0);
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP re-reads the openMosix map (the cluster changed); nothing else is reloaded: the
    // DFSA tables are re-read on use when mfsctl set* changes them.
    process.on('SIGHUP', () => {
      void daemon.reloadMap().then((line) => process.stderr.write(`mfsd: SIGHUP: ${line}\n`));
    });
    // Ready only once the handlers are in place: whoever waits for this line may signal at once
    // (a SIGHUP before its handler would kill the daemon).
    process.stdout.write(`${daemon.readyLine}\n`);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mfsd: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
