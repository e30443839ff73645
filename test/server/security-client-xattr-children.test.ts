// Issue 8 point 8: 2 000 concurrent GetXattr calls made mfsd run 1 210 child processes at once
// (xattrs went through getfattr). xattrs are syscalls now; this keeps it so: a real mfsd child
// answers 2 000 concurrent GetXattr calls from clients while its children are sampled, and it never
// has one.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileClient, ROOT_CALLER as root } from '../../proto/file-client.js';
import { startMfsd, type MfsdHandle } from '../harness/mfsd.js';

let mfsd: MfsdHandle;
const clients: FileClient[] = [];

beforeAll(async () => {
  mfsd = await startMfsd({ nodeId: 12 });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await mfsd?.cleanup();
});

/** Pids of the process's children, from every thread's children list (any thread may fork). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

describe('mfsd spawns no processes', () => {
  it('2 000 concurrent GetXattr calls all answer, with no child process at any sample', async () => {
    const pid = mfsd.proc.pid as number;
    expect(childrenOf(process.pid), 'the sampler sees children: mfsd is ours').toContain(pid);
    // Four connections of their own (one peer each), so that no peer passes the daemon's limit of
    // calls in flight: 500 each.
    for (let i = 0; i < 4; i++) clients.push(new FileClient(mfsd.address, await mfsd.clientCredentials(), { 'grpc.use_local_subchannel_pool': 1 }));
    const c0 = clients[0] as FileClient;
    const top = await c0.root(root, mfsd.exports[0]?.path ?? '');
    const { entry } = await c0.create(root, top.handle, 'tagged', 0o2 /* O_RDWR */);
    await c0.setXattr(root, entry.handle, 'user.tag', Buffer.from('value'));

    const seen = new Set<number>();
    let samples = 0;
    const sample = (): void => {
      samples += 1;
      for (const child of childrenOf(pid)) seen.add(child);
    };
    const timer = setInterval(sample, 2);
    try {
      const calls = Array.from({ length: 2000 }, (_, i) => (clients[i % clients.length] as FileClient).getXattr(root, entry.handle, 'user.tag'));
      const values = await Promise.all(calls);
      expect(values.every((v) => v.toString() === 'value')).toBe(true);
    } finally {
      clearInterval(timer);
    }
    sample();
    expect(samples).toBeGreaterThan(1);
    expect([...seen]).toEqual([]);
  });
});
