// Discovery's bookkeeping (cluster/discovery.ts) fed datagrams directly with a clock of the test's
// own: joining, moving, leaving by goodbye or by silence, a second claimant of a node number, and
// what the map keeps for itself (cluster/membership.ts). The sockets are exercised between real
// daemons in test/cluster/discovery-netns.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { Discovery, parseAnnouncement, parseGroup } from '../../cluster/discovery.js';
import { parseMap } from '../../cluster/map-file.js';
import { mergeMembership } from '../../cluster/membership.js';
import { loadConfig } from '../../server/config.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const settings = { group: '239.77.0.1', port: 7118, intervalMs: 1000, missed: 3 };

function world(self: { node: number; port: number; host?: string } | null = { node: 1, port: 7117 }) {
  let now = 0;
  const d = new Discovery(settings, self, () => now);
  const changes: string[] = [];
  const conflicts: string[] = [];
  const shown = (): string => d.nodes().map((n) => `${n.id}@${n.addresses[0]!.host}:${n.addresses[0]!.port}`).join(' ');
  d.on('change', () => changes.push(shown()));
  d.on('conflict', (node: number, where: string) => conflicts.push(`${node}@${where}`));
  const from = (node: number, boot: string, extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({ omfs: 1, node, port: 7117, boot, ...extra }));
  return { d, changes, conflicts, shown, from, advance: (ms: number) => (now += ms) };
}

describe('Discovery', () => {
  it('adds a node at the address its datagram came from, or the one it names, and counts itself in', () => {
    const w = world();
    w.d.hear(w.from(2, 'b2'), '10.0.0.2');
    w.d.hear(w.from(3, 'b3', { host: '10.1.0.3', port: 7200 }), '10.0.0.3');
    expect(w.shown()).toBe('1@127.0.0.1:7117 2@10.0.0.2:7117 3@10.1.0.3:7200');
    // Repeats of the same announcement change nothing.
    w.d.hear(w.from(2, 'b2'), '10.0.0.2');
    expect(w.changes).toHaveLength(2);
  });

  it('drops a node at its goodbye, and one silent past the validity its announcement asked for', () => {
    const w = world();
    w.d.hear(w.from(2, 'b2', { validMs: 10_000 }), '10.0.0.2');
    w.d.hear(w.from(3, 'b3', { validMs: 2_000 }), '10.0.0.3');
    w.d.hear(w.from(2, 'other-boot', { bye: true }), '10.0.0.2'); // not its boot: ignored
    expect(w.shown()).toBe('1@127.0.0.1:7117 2@10.0.0.2:7117 3@10.0.0.3:7117');
    w.advance(2_001);
    w.d.expire();
    expect(w.shown()).toBe('1@127.0.0.1:7117 2@10.0.0.2:7117');
    w.d.hear(w.from(2, 'b2', { bye: true }), '10.0.0.2');
    expect(w.shown()).toBe('1@127.0.0.1:7117');
  });

  it('keeps the first holder of a node number while it is heard and reports the other claimant', () => {
    const w = world();
    w.d.hear(w.from(2, 'first'), '10.0.0.2');
    w.d.hear(w.from(2, 'second'), '10.0.0.9');
    w.d.hear(w.from(1, 'impostor'), '10.0.0.8'); // claims this node's own number
    expect(w.shown()).toBe('1@127.0.0.1:7117 2@10.0.0.2:7117');
    expect(w.conflicts).toEqual(['2@10.0.0.9', '1@10.0.0.8']);
    // The first holder falls silent (killed, no goodbye): the next announcement takes the number.
    w.advance(3_001);
    w.d.hear(w.from(2, 'second'), '10.0.0.9');
    expect(w.shown()).toBe('1@127.0.0.1:7117 2@10.0.0.9:7117');
  });

  it('listens without announcing (a mount without a daemon): only the nodes heard', () => {
    const w = world(null);
    expect(w.d.message(false)).toBeNull();
    w.d.hear(w.from(4, 'b4'), '10.0.0.4');
    expect(w.shown()).toBe('4@10.0.0.4:7117');
  });

  it('ignores what is not an announcement', () => {
    const w = world();
    for (const bad of ['', 'null', '{"omfs":2,"node":2,"port":1,"boot":"b"}', '{"omfs":1,"node":0,"port":1,"boot":"b"}',
      '{"omfs":1,"node":2,"port":1,"boot":""}', '{"omfs":1,"node":2,"port":1,"boot":"b","host":"evil name"}', '{"omfs":1,"node":2,"port":1,"boot":"b","validMs":-1}']) {
      expect(parseAnnouncement(Buffer.from(bad)), bad).toBeUndefined();
      w.d.hear(Buffer.from(bad), '10.0.0.2');
    }
    expect(w.changes).toEqual([]);
  });
});

describe('membership', () => {
  it('keeps the map\'s word for the nodes it names and adds the discovered others', () => {
    const map = parseMap('1 10.0.0.1 2\n2 10.9.0.2 ALIAS\n');
    const merged = mergeMembership(map, [{ id: 2, addresses: [{ host: '10.6.6.6', port: 1 }] }, { id: 5, addresses: [{ host: '10.0.0.5', port: 7117 }] }]);
    expect([...merged.nodes.values()].map((n) => `${n.id}:${n.addresses.map((a) => a.host).join('|')}`)).toEqual(['1:10.0.0.1', '2:10.0.0.2|10.9.0.2', '5:10.0.0.5']);
  });
});

describe('config "discovery"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'omfs-discovery-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const load = (discovery: unknown) => {
    const path = join(dir, 'mfsd.json');
    writeFileSync(path, JSON.stringify({ node: 1, exports: [{ path: '/srv' }], discovery }));
    return loadConfig(['--config', path]).config!.discovery;
  };

  it('is off unless configured, and takes a group with defaults for the rest', () => {
    expect(load(undefined)).toBeUndefined();
    expect(load({ group: '239.77.0.1:7118' })).toEqual({ group: '239.77.0.1', port: 7118, intervalMs: 2000, missed: 3 });
    expect(load({ group: '239.77.0.1:7118', intervalMs: 500, missed: 10, interface: '10.0.0.1', address: '10.0.0.1' }))
      .toEqual({ group: '239.77.0.1', port: 7118, intervalMs: 500, missed: 10, interface: '10.0.0.1', address: '10.0.0.1' });
  });

  it.each([
    [{ group: '10.0.0.1:7118' }, /discovery.group: must be "MULTICAST-IPv4:PORT"/],
    [{ group: '239.0.0.1' }, /discovery.group/],
    [{ group: '239.0.0.1:1', interval: 5 }, /discovery: unknown field "interval"/],
    [{ group: '239.0.0.1:1', missed: 1 }, /discovery.missed: must be an integer from 2/],
    [{ group: '239.0.0.1:1', interface: 'eth0' }, /discovery.interface: must be an IPv4 address/],
    ['on', /discovery: must be an object/],
  ])('refuses %j, naming the field', (raw, why) => {
    expect(() => load(raw)).toThrow(why);
  });

  it('reads groups as the config and mount options write them', () => {
    expect(parseGroup('224.0.0.251:5353')).toEqual({ group: '224.0.0.251', port: 5353 });
    for (const bad of ['240.0.0.1:1', '239.0.0.1:0', '239.0.0.1:70000', 'host:1', '239.0.0.1']) expect(parseGroup(bad), bad).toBeUndefined();
  });
});
