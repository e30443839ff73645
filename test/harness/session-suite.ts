// The setup most session tests share: one real mfsd (mutual TLS, a test CA made by the real
// mfsctl) for the whole file, sessions of node<N> certificates opened on demand and closed after
// each test, and everything removed after the file, also when a test failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Session } from '../../proto/session-client.js';
import { makeTestCa, startMfsd, type MfsdHandle, type MfsdOptions, type TestCa } from './mfsd.js';
import { nodeCredentials, openSession } from './session-peer.js';

export interface SessionSuite {
  /** The daemon (started before the file's first test). */
  readonly daemon: MfsdHandle;
  readonly ca: TestCa;
  /** A session of node `node`'s certificate, closed after the test. */
  session(node: number): Promise<Session>;
  /** Closes `x` after the test (a raw session, a client). */
  closeAfter<T extends { close(): unknown }>(x: T): T;
}

/** Registers the file's hooks; `prefix` names its temp dir, `config` is mfsd's (sessions, limits...). */
export function sessionSuite(prefix: string, config: MfsdOptions['config'] = {}): SessionSuite {
  let tmp: string | undefined;
  let ca: TestCa | undefined;
  let d: MfsdHandle | undefined;
  const open: Array<{ close(): unknown }> = [];
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), prefix));
    ca = await makeTestCa(tmp);
    d = await startMfsd({ ca, nodeId: 1, config });
  }, 120_000);
  afterEach(() => {
    for (const x of open.splice(0).reverse()) x.close();
  });
  afterAll(async () => {
    await d?.cleanup();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });
  const suite: SessionSuite = {
    get daemon() {
      if (!d) throw new Error('the suite\'s mfsd is not started (used outside a test?)');
      return d;
    },
    get ca() {
      if (!ca) throw new Error('the suite\'s CA is not made (used outside a test?)');
      return ca;
    },
    async session(node) {
      return suite.closeAfter(await openSession(suite.daemon.address, await nodeCredentials(suite.ca, node), node));
    },
    closeAfter(x) {
      open.push(x);
      return x;
    },
  };
  return suite;
}
