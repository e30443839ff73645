import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdvisorConstructor, type AdviceMsg, type AdviseReplyMsg } from '../../proto/advisor.js';
import { statusToErrno } from '../../proto/errno.js';
import { createAdvisorService } from '../../dfsa/advisor-service.js';
import { DEFAULT_COSTS, DEFAULT_MIGRATION } from '../../dfsa/costs.js';
import { IoStatistics } from '../../dfsa/io-profile.js';
import type { NodeLoad } from '../../dfsa/advisor.js';

const idle: NodeLoad = { load: 0, cpus: 4, speed: 1 };

describe('the Advisor gRPC service', () => {
  const stats = new IoStatistics();
  let server: grpc.Server;
  let client: InstanceType<grpc.ServiceClientConstructor>;

  beforeAll(async () => {
    const Advisor = loadAdvisorConstructor();
    const { implementation } = createAdvisorService({
      self: 1,
      stats,
      tables: () => ({ costs: DEFAULT_COSTS, migration: DEFAULT_MIGRATION }),
      loads: () => new Map([[1, idle], [2, idle], [3, idle]]),
      processInfo: () => ({ cpu: 0.2, dirtyPages: 10 }),
    });
    server = new grpc.Server();
    server.addService(Advisor.service, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    client = new Advisor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  const advise = (request: object) =>
    new Promise<AdviseReplyMsg>((resolve, reject) => {
      const m = client['Advise'] as (r: object, cb: (e: grpc.ServiceError | null, r: AdviseReplyMsg) => void) => void;
      m.call(client, request, (e, r) => (e ? reject(statusToErrno(e)) : resolve(r)));
    });

  it('ranks the nodes with the cost breakdown for an explicit profile', async () => {
    const { advice } = await advise({ profile: { io: [{ node: 3, calls: 500, read_kb: 20_000, write_kb: 0 }], cpu: 0.3, dirty_pages: 0, here: 0 } });
    expect(advice).toMatchObject({ process: '', here: 1, move: true, to: 3, migration_us: 8141 });
    expect(advice.ranked.map((n) => n.node)).toEqual([3, 1, 2]);
    expect(advice.ranked[1]).toEqual({ node: 1, io_us: 500 * 76 + 20_000 * 33, cpu_us: 0.3e6, total_us: 500 * 76 + 20_000 * 33 + 0.3e6 });
    const stay = await advise({ profile: { io: [], cpu: 1, dirty_pages: 0, here: 2 } });
    expect(stay.advice).toMatchObject({ here: 2, move: false, to: 0, reason: 'this node is the cheapest' });
  });

  it('advises a tracked process from its decayed profile; ESRCH for one not tracked, EINVAL for no subject', async () => {
    for (let i = 0; i < 30; i++) stats.recordIo('100:5', 3, { calls: 400, readKB: 40_000 });
    const { advice } = await advise({ process: '100:5' });
    expect(advice).toMatchObject({ process: '100:5', here: 1, move: true, to: 3 });
    await expect(advise({ process: '999:1' })).rejects.toMatchObject({ code: 'ESRCH' });
    await expect(advise({})).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(advise({ profile: { io: [{ node: 2, calls: -1, read_kb: 0, write_kb: 0 }], cpu: 0, dirty_pages: 0, here: 0 } })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('Watch streams each process\'s advice, then again when it changes', async () => {
    stats.recordIo('200:7', 1, { calls: 10 }); // all I/O local: stay
    const call = (client['Watch'] as (r: object) => grpc.ClientReadableStream<AdviceMsg>).call(client, { processes: ['200:7'], interval_ms: 100 });
    const received: AdviceMsg[] = [];
    let wake: (() => void) | undefined;
    call.on('data', (a: AdviceMsg) => {
      received.push(a);
      wake?.();
    });
    call.on('error', () => wake?.());
    const nth = async (n: number) => {
      while (received.length < n) await new Promise<void>((r) => (wake = r));
      return received[n - 1]!;
    };
    try {
      expect(await nth(1)).toMatchObject({ process: '200:7', move: false });
      // Several evaluations with the same decision pass: nothing is sent for them.
      await new Promise((r) => setTimeout(r, 500));
      expect(received).toHaveLength(1);
      for (let i = 0; i < 30; i++) stats.recordIo('200:7', 2, { calls: 400, readKB: 40_000 });
      expect(await nth(2)).toMatchObject({ process: '200:7', move: true, to: 2 });
    } finally {
      call.cancel();
    }
  });
});
