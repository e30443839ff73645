// The node-id table's views (fuse/mfs/inodes.ts), without a mount: a special directory's node ids
// are its own (so a directory keeps one dentry per path), a node's invalidation reaches every
// view of an inode, and a view's node ids go once the kernel forgets them (the ordinary
// /mfs/<K> keeps its id).
import { describe, expect, it } from 'vitest';
import { ROOT_ID } from '../../fuse/kernel/index.js';
import { InodeTable } from '../../fuse/mfs/inodes.js';

const DIR = 0o040000;
const REG = 0o100000;
const ROOT_INO = 2n << 48n;

describe('InodeTable views', () => {
  it('the same remote inode has one node id per view, and allByIno finds each', () => {
    const t = new InodeTable();
    const plain = t.bindRoot(t.virtual(2, ''), ROOT_INO, Buffer.from('r'));
    const viaSelected = t.bindRoot(t.virtual(2, '', 'selected>2'), ROOT_INO, Buffer.from('r'));
    const viaHome = t.bindRoot(t.virtual(2, '', 'home>2'), ROOT_INO, Buffer.from('r'));
    expect(new Set([plain.id, viaSelected.id, viaHome.id]).size).toBe(3);
    expect([plain.viewRoot, viaSelected.viewRoot, viaHome.viewRoot]).toEqual([false, true, true]);
    expect(t.byIno(2, ROOT_INO)).toBe(plain);
    expect(t.allByIno(2, ROOT_INO).map((i) => i.id).sort()).toEqual([plain.id, viaSelected.id, viaHome.id].sort());
    // A directory below: one id per view as well; the ordinary one is what byIno names.
    const sub = t.remote(2, ROOT_INO + 5n, Buffer.from('s'), DIR, 'selected>2');
    expect(t.remote(2, ROOT_INO + 5n, Buffer.from('s'), DIR, 'selected>2')).toBe(sub);
    expect(t.byIno(2, ROOT_INO + 5n)).toBeUndefined();
    expect(t.allByIno(2, ROOT_INO + 5n)).toEqual([sub]);
  });

  it('a view\'s node ids, its top too, go when the kernel forgets them; /mfs/<K> keeps its id', () => {
    const t = new InodeTable();
    const gw = t.virtual(3, '');
    t.entered(t.get(ROOT_ID)!, Buffer.from('3'), gw);
    t.forget(gw.id, 1);
    expect(t.virtual(3, '')).toBe(gw);

    const top = t.virtual(3, '', 'selected>3');
    top.lookups++;
    t.bindRoot(top, 3n << 48n, Buffer.from('r'));
    const dir = t.remote(3, (3n << 48n) + 9n, Buffer.from('d'), DIR, 'selected>3');
    t.entered(top, Buffer.from('d'), dir);
    const before = t.size;
    t.forget(dir.id, 1);
    t.forget(top.id, 1);
    expect(t.size).toBe(before - 2);
    expect(t.allByIno(3, 3n << 48n)).toEqual([]);
    expect(t.allByIno(3, (3n << 48n) + 9n)).toEqual([]);
    // Seen again: new ids (never reused), found again by the same keys.
    const again = t.virtual(3, '', 'selected>3');
    expect(again.id).toBeGreaterThan(dir.id);
    expect(t.virtual(3, '', 'selected>3')).toBe(again);
  });

  it('the mount\'s own control nodes have one id each and are never forgotten', () => {
    const t = new InodeTable();
    const dir = t.ownNode('control-dir', DIR);
    const file = t.ownNode('selected-file', REG);
    expect(t.ownNode('control-dir', DIR)).toBe(dir);
    expect(dir.id).not.toBe(file.id);
    t.forget(file.id, 5);
    expect(t.get(file.id)).toBe(file);
    expect([...t.ofNode(1)]).toEqual([]);
  });
});
