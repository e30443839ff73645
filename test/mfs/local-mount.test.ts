// Issue 10, "One daemon per node": mfsd with `mount` configured mounts the cluster in its own
// process. Its own node is reached in process (no session to itself: its Health counts none), and
// still keeps the callbacks of the sessions issue both ways: another node's change reaches the
// mount's kernel cache before that change returns, and a change through the mount reaches another
// client's session before it returns. Real daemons (mutual TLS), a real FUSE mount, real sessions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Invalidation, Session } from '../../proto/session-client.js';
import { healthOf, startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { makeTempDir } from '../harness/passthrough-mount.js';
import { nodeCredentials, openSession } from '../harness/session-peer.js';

const O_WRONLY = 1;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;
const root = { uid: 0, gid: 0, groups: [], pid: process.pid };

let tmp: string;
let ca: TestCa;
let d2: MfsdHandle | undefined;
let host: HostingMfsd | undefined;
/** Node 1's export, as a local process sees it. */
let bare: string;
const sessions: Session[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('omfs-local-mount-');
  ca = await makeTestCa(tmp);
  d2 = await startMfsd({ ca, nodeId: 2 });
  host = await startHostingMfsd({ ca, nodeId: 1, others: [d2] });
  bare = host.daemon.exports[0]!.path;
}, 120_000);

afterAll(async () => {
  for (const s of sessions) s.close();
  await host?.cleanup();
  await d2?.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A session to the hosting daemon as node 3 (another client), its export's root handle. */
async function otherClient(): Promise<{ s: Session; top: Buffer }> {
  const s = await openSession(host!.daemon.address, await nodeCredentials(ca, 3), 3);
  sessions.push(s);
  const top = (await s.root(root, bare)).handle;
  return { s, top };
}

/** Runs a shell command in a child process (the test process must stay free to ack its session's invalidations). */
function sh(cmd: string): Promise<number | null> {
  return new Promise((resolve) => spawn('sh', ['-c', cmd], { stdio: 'ignore' }).once('exit', (code) => resolve(code)));
}

describe('mfsd hosting /mfs', () => {
  it('serves /mfs/<own node> from the export byte for byte, without a session to itself; other nodes through sessions', async () => {
    const viaMount = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(join(host!.own, 'x'), viaMount);
    expect(fs.readFileSync(join(bare, 'x')).equals(viaMount)).toBe(true);
    const viaExport = randomBytes(2 * 1024 * 1024 + 5);
    fs.writeFileSync(join(bare, 'y'), viaExport);
    expect(fs.readFileSync(join(host!.own, 'y')).equals(viaExport)).toBe(true);
    fs.mkdirSync(join(host!.own, 'dir'));
    fs.renameSync(join(host!.own, 'x'), join(host!.own, 'dir', 'x2'));
    expect(fs.readdirSync(join(bare, 'dir'))).toEqual(['x2']);
    const st = fs.statSync(join(host!.own, 'dir', 'x2'), { bigint: true });
    const bst = fs.statSync(join(bare, 'dir', 'x2'), { bigint: true });
    expect([st.size, st.mtimeNs, st.nlink]).toEqual([bst.size, bst.mtimeNs, bst.nlink]);

    // Node 2 is reached through a session, which its Health counts; node 1 counts none.
    fs.writeFileSync(join(d2!.exports[0]!.path, 'z'), 'on node 2');
    expect(fs.readFileSync(join(host!.mnt, '2', 'z'), 'utf8')).toBe('on node 2');
    expect((await healthOf(d2!)).sessions).toBe(1);
    const h1 = await healthOf(host!.daemon);
    expect([h1.sessions, h1.sessions_held]).toEqual([0, 0]);
  });

  it("drops what the mount cached when another node's session changes it, before that change returns", async () => {
    fs.writeFileSync(join(bare, 'f'), 'old');
    // Cached by the mount's kernel (an hour's timeouts): data, size, the directory's names.
    expect(fs.readFileSync(join(host!.own, 'f'), 'utf8')).toBe('old');
    expect(fs.statSync(join(host!.own, 'f')).size).toBe(3);
    expect(fs.readdirSync(host!.own)).not.toContain('g');

    const { s, top } = await otherClient();
    const f = await s.lookup(root, top, 'f');
    const fh = await s.open(root, f.handle, O_WRONLY | O_TRUNC);
    await s.write(root, f.handle, fh, 0, Buffer.from('new and longer'));
    await s.release(root, fh);
    expect(fs.statSync(join(host!.own, 'f')).size).toBe(14);
    expect(fs.readFileSync(join(host!.own, 'f'), 'utf8')).toBe('new and longer');

    const g = await s.create(root, top, 'g', O_WRONLY, 0o640);
    await s.release(root, g.fh);
    expect(fs.readdirSync(host!.own)).toContain('g');
    expect(fs.statSync(join(host!.own, 'g')).mode & 0o777).toBe(0o640);
  });

  it("invalidates another client's session before a change through the mount returns", async () => {
    fs.writeFileSync(join(bare, 'h'), 'seen by node 3');
    const { s, top } = await otherClient();
    const h = await s.lookup(root, top, 'h');
    const fh = await s.open(root, h.handle, O_RDONLY);
    expect((await s.read(root, h.handle, fh, 0, 100)).toString()).toBe('seen by node 3');
    await s.release(root, fh);
    const ino = BigInt(h.attr.ino);

    const order: string[] = [];
    const heard = (inv: Invalidation): void => {
      if (inv.kind !== 'name' && inv.ino === ino) order.push(`invalidate ${inv.kind}`);
    };
    s.on('invalidate', heard);
    // In a child process: the test's own event loop must stay free to receive and ack.
    const code = await sh(`printf 'changed on node 1 through /mfs' > '${join(host!.own, 'h')}'`);
    order.push('write returned');
    s.off('invalidate', heard);
    expect(code).toBe(0);
    expect(order.indexOf('write returned')).toBeGreaterThan(0);
    expect(order.slice(0, -1).some((e) => e === 'invalidate data')).toBe(true);
    expect(Number((await s.getAttr(root, h.handle)).size)).toBe('changed on node 1 through /mfs'.length);
  });
});

describe('mfsd hosting /mfs: lifecycle', () => {
  it('with dfsa=0 reaches its own node through a session like any other; unmounts on stop', async () => {
    const other = await startHostingMfsd({ ca, nodeId: 4, others: [d2!], options: 'cache=3600,dfsa=0' });
    try {
      expect(fs.readdirSync(other.mnt)).toEqual(expect.arrayContaining(['2', '4']));
      fs.writeFileSync(join(other.daemon.exports[0]!.path, 'w'), 'via a session');
      expect(fs.readFileSync(join(other.own, 'w'), 'utf8')).toBe('via a session');
      expect((await healthOf(other.daemon)).sessions).toBe(1);
      expect(await other.stop()).toBe(0);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${other.mnt} `);
    } finally {
      await other.cleanup();
    }
  });
});
