// The openMosix map file as setpe(1) read it, plus omfs's host:port: ranges, aliases, comments,
// own-node detection, and an error naming the line for every mistake.
import { describe, expect, it } from 'vitest';
import { DEFAULT_MFSD_PORT as P, MAX_MAP_LINES, findOwnNode, parseAddress, parseMap } from '../../cluster/map-file.js';

const nodesOf = (text: string): Record<number, string[]> =>
  Object.fromEntries([...parseMap(text).nodes.values()].map((n) => [n.id, n.addresses.map((a) => `${a.host}:${a.port}`)]));

describe('parseMap', () => {
  it('reads ranges, counting IPv4 addresses up, with comments, blank lines and aliases before or after their node', () => {
    expect(nodesOf(`# the lab
3 10.0.0.7 ALIAS   # gateway side, given before node 3's range

1 10.0.0.254 3     # nodes 1..3: .254, .255, then 10.0.1.0
7 head.example.org 1
9 127.0.0.1:7201 2
`)).toEqual({
      1: [`10.0.0.254:${P}`], 2: [`10.0.0.255:${P}`], 3: [`10.0.1.0:${P}`, `10.0.0.7:${P}`],
      7: [`head.example.org:${P}`], 9: ['127.0.0.1:7201'], 10: ['127.0.0.2:7201'],
    });
  });

  it('takes IPv6 addresses bare or bracketed with a port', () => {
    expect(nodesOf('1 ::1 1\n2 [fe80::2]:7300 1\n')).toEqual({ 1: [`::1:${P}`], 2: ['fe80::2:7300'] });
  });

  it.each([
    ['1 a.example 1 extra', 1, /got 4 field/],
    ['0 a.example 1', 1, /"0" is not a node number/],
    ['65536 a.example 1', 1, /not a node number/],
    ['1 a.example 0', 1, /count "0" must be a positive integer/],
    ['1 a.example 2', 1, /needs an IPv4 address/],
    ['65535 10.0.0.1 2', 1, /go past 65535/],
    ['1 10.0.0.1 1\n# c\n1 10.0.0.2 1', 3, /node 1 is defined twice/],
    ['1 10.0.0.1 3\n2 10.0.0.9 1', 2, /node 2 is defined twice/],
    ['1 10.0.0.1 1\n4 10.0.0.9 ALIAS', 2, /ALIAS for node 4, which no line defines/],
    ['1 bad_host! 1', 1, /not a host/],
    ['1 a.example:99999 1', 1, /not a host/],
    ['1 255.255.255.255 2', 1, /past 255.255.255.255/],
  ])('%j is refused at line %i', (text, line, why) => {
    expect(() => parseMap(text, '/etc/openmosix.map')).toThrow(why);
    expect(() => parseMap(text, '/etc/openmosix.map')).toThrow(`/etc/openmosix.map:${line}:`);
  });

  it(`refuses more than ${MAX_MAP_LINES} defining lines, not counting comments`, () => {
    const lines = (n: number): string => Array.from({ length: n }, (_, i) => `# c\n${i + 1} 10.0.${Math.floor(i / 200)}.${(i % 200) + 1} 1`).join('\n');
    expect(parseMap(lines(MAX_MAP_LINES)).nodes.size).toBe(MAX_MAP_LINES);
    expect(() => parseMap(lines(MAX_MAP_LINES + 1))).toThrow(`more than ${MAX_MAP_LINES} lines`);
  });
});

describe('parseAddress', () => {
  it('reads the forms a map line may use and nothing else', () => {
    expect(parseAddress('n1')).toEqual({ host: 'n1', port: P });
    expect(parseAddress('n1:80')).toEqual({ host: 'n1', port: 80 });
    expect(parseAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    for (const bad of ['', ':80', 'n1:', 'n1:0', 'a:b:c', '[n1]:80', '[::1]:x', '12345']) expect(parseAddress(bad), bad).toBeUndefined();
  });
});

describe('findOwnNode', () => {
  const map = parseMap('1 10.0.0.1 2\n3 node3.lab 1\n2 192.168.9.2 ALIAS\n');
  it('matches an interface address, an alias, or the host name', () => {
    expect(findOwnNode(map, ['127.0.0.1', '10.0.0.2'], 'x')).toBe(2);
    expect(findOwnNode(map, ['192.168.9.2'], 'x')).toBe(2);
    expect(findOwnNode(map, ['127.0.0.1'], 'NODE3.lab')).toBe(3);
    expect(findOwnNode(map, ['127.0.0.1'], 'x')).toBeUndefined();
  });
  it('refuses to guess when several nodes are on this host (a local cluster)', () => {
    expect(() => findOwnNode(parseMap('1 127.0.0.1:7201 1\n2 127.0.0.1:7202 1'), ['127.0.0.1'], 'x')).toThrow(/nodes 1, 2 .* explicitly/);
  });
});
