// The mount's node-id table and the shapes of invalidations, without a mount: FORGET keeps the table
// bounded, names the kernel may cache are known per directory (and forgotten with their node), and
// an invalidation reads the same from the session library's flat form and the frame's oneof form.
import { describe, expect, it } from 'vitest';
import { ROOT_ID } from '../../fuse/kernel/index.js';
import { InodeTable, nameKey } from '../../fuse/mfs/inodes.js';
import { rootExport } from '../../fuse/mfs/mfs-fs.js';
import { childNames } from '../../fuse/mfs/listing.js';
import { normalizeInval } from '../../fuse/mfs/node-conn.js';

const REG = 0o100000;
const DIR = 0o040000;

describe('InodeTable', () => {
  it('one node id per (node, cluster ino), whatever the handle; FORGET of every lookup removes it and its names', () => {
    const t = new InodeTable();
    const dir = t.remote(2, 1n << 49n, Buffer.from('d'), DIR);
    const f = t.remote(2, (1n << 49n) + 5n, Buffer.from('h1'), REG);
    expect(t.remote(2, (1n << 49n) + 5n, Buffer.from('h2'), REG)).toBe(f);
    expect(t.remote(1, (1n << 49n) + 5n, Buffer.from('h1'), REG)).not.toBe(f);
    t.entered(dir, Buffer.from('a'), f);
    t.entered(dir, Buffer.from([0xff, 0x00 + 1]), f); // a hard link, a name that is not UTF-8
    expect([...dir.names.keys()].sort()).toEqual([nameKey(Buffer.from('a')), nameKey(Buffer.from([0xff, 1]))].sort());
    t.forget(f.id, 1);
    expect(t.get(f.id)).toBe(f);
    t.forget(f.id, 1);
    expect(t.get(f.id)).toBeUndefined();
    expect(t.byIno(2, (1n << 49n) + 5n)).toBeUndefined();
    expect(dir.names.size).toBe(0);
    // A new sighting gets a new id: ids are never reused.
    expect(t.remote(2, (1n << 49n) + 5n, Buffer.from('h1'), REG).id).toBeGreaterThan(f.id);
  });

  it('many lookups forgotten leave only the root and the directories still held', () => {
    const t = new InodeTable();
    const dir = t.remote(3, 7n, Buffer.from('d'), DIR);
    t.entered(t.get(ROOT_ID)!, Buffer.from('3'), dir);
    for (let k = 0; k < 5000; k++) t.entered(dir, Buffer.from(`f${k}`), t.remote(3, 100n + BigInt(k), Buffer.from('h'), REG));
    expect(t.size).toBe(5002);
    for (const [, id] of [...dir.names]) t.forget(id, 1);
    expect(t.size).toBe(2);
  });

  it('/mfs/<K> keeps its node id when it turns out to be the node\'s root export, and after it is forgotten', () => {
    const t = new InodeTable();
    const gw = t.virtual(4, '');
    expect(t.virtual(4, '')).toBe(gw);
    t.entered(t.get(ROOT_ID)!, Buffer.from('4'), gw);
    const bound = t.bindRoot(gw, 99n, Buffer.from('root'));
    expect(bound.id).toBe(gw.id);
    expect(bound.kind).toBe('remote');
    expect(t.byIno(4, 99n)).toBe(gw);
    t.forget(gw.id, 1);
    const again = t.virtual(4, '');
    expect(t.bindRoot(again, 99n, Buffer.from('root')).kind).toBe('remote');
  });
});

describe('exports as /mfs/<K> shows them', () => {
  it('one export, or "/", is /mfs/<K> itself; several appear under their leading directories', () => {
    expect(rootExport(['/srv/a'])).toBe('/srv/a');
    expect(rootExport(['/srv/a', '/'])).toBe('/');
    expect(rootExport(['/srv/a', '/home'])).toBeUndefined();
    expect(childNames(['/srv/a', '/srv/b', '/home'], '')).toEqual(['home', 'srv']);
    expect(childNames(['/srv/a', '/srv/b', '/home'], '/srv')).toEqual(['a', 'b']);
  });
});

describe('normalizeInval', () => {
  it('reads the library\'s flat form and the frame\'s oneof form alike', () => {
    expect(normalizeInval({ seq: 1n, kind: 'data', ino: 5n, offset: 10n, length: 0n })).toEqual({ kind: 'data', ino: 5n, offset: 10, length: 0, name: Buffer.alloc(0) });
    expect(normalizeInval({ seq: '1', what: 'data', data: { ino: '5', offset: 10, length: '0' } })).toEqual({ kind: 'data', ino: 5n, offset: 10, length: 0, name: Buffer.alloc(0) });
    expect(normalizeInval({ seq: 2n, kind: 'name', dir: 7n, name: Buffer.from('x') })?.ino).toBe(7n);
    expect(normalizeInval({ seq: 2, what: 'name', name: { dir: 7, name: Buffer.from('x') } })?.name.toString()).toBe('x');
    expect(normalizeInval({ seq: 3n, kind: 'attr', ino: 9n })?.kind).toBe('attr');
    expect(normalizeInval({ seq: 4n, kind: 'mystery' })).toBeUndefined();
  });
});
