// A node's map addresses as one gRPC target the channel tries in order (cluster/addresses.ts).
import { describe, expect, it } from 'vitest';
import { dialTarget, dialable } from '../../cluster/addresses.js';
import { parseMap } from '../../cluster/map-file.js';

const node = (text: string, id: number) => parseMap(text).nodes.get(id)!.addresses;

describe('dialTarget', () => {
  it('keeps a node with one address as HOST:PORT', () => {
    expect(dialTarget(node('1 10.0.0.1 1', 1))).toBe('10.0.0.1:7117');
    expect(dialTarget(node('1 head.example:7200 1', 1))).toBe('head.example:7200');
    expect(dialTarget(node('1 ::1 1', 1))).toBe('[::1]:7117');
  });

  it('lists a node\'s range address, then its aliases in map order, for the channel to try in turn', () => {
    const map = '3 10.0.0.9:7300 ALIAS\n1 10.0.0.1 3\n3 192.168.5.3 ALIAS\n';
    expect(dialTarget(node(map, 3))).toBe('ipv4:10.0.0.3:7117,10.0.0.9:7300,192.168.5.3:7117');
    expect(dialTarget(node('2 [fe80::2]:7300 1\n2 fe80::9 ALIAS', 2))).toBe('ipv6:[fe80::2]:7300,[fe80::9]:7117');
  });

  it('leaves out what one channel cannot try: the other IP family, DNS names, repeats', () => {
    expect(dialable(node('1 10.0.0.1 1\n1 ::2 ALIAS\n1 gw.example ALIAS\n1 10.0.0.1 ALIAS\n1 10.0.1.1 ALIAS', 1)).map((a) => a.host)).toEqual(['10.0.0.1', '10.0.1.1']);
    expect(dialTarget(node('1 gw.example 1\n1 10.0.0.1 ALIAS', 1))).toBe('gw.example:7117');
  });
});
