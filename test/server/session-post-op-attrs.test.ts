// Post-op attributes (ServerFrame.attrs, proto/after-change.ts): a change's reply carries the
// attributes it left on the directories it changed, and on a renamed file, exactly as a getattr
// right after it returns them; and they are registered as ATTR callbacks, so another session's
// later change of those directories reaches the session before that change returns.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { heardBy } from '../harness/session-peer.js';
import { sessionSuite } from '../harness/session-suite.js';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { afterChange } from '../../proto/after-change.js';
import type { Attr, Session } from '../../proto/session-client.js';

const suite = sessionSuite('omfs-post-op-');
const session = (node: number): Promise<Session> => suite.session(node);
const same = (a: Attr, b: Attr): void => {
  expect(String(a.ino)).toBe(String(b.ino));
  for (const k of ['mode', 'nlink', 'size'] as const) expect(String(a[k])).toBe(String(b[k]));
  for (const k of ['mtime', 'ctime'] as const) expect(`${a[k].sec}.${a[k].nsec}`).toBe(`${b[k].sec}.${b[k].nsec}`);
};

describe('a change reply carries the attributes it left', () => {
  it('create, mkdir, symlink, link, unlink, rmdir and rename give their directories\' (and the renamed file\'s) attributes, as a getattr then does', async () => {
    const s = await session(2);
    const top = await s.root(root, suite.daemon.exports[0]!.path);
    const dir = await s.mkdir(root, top.handle, 'd');
    const check = async (reply: unknown, handles: Buffer[]): Promise<void> => {
      const got = afterChange<Attr>(reply);
      expect(got.length).toBe(handles.length);
      for (const [i, h] of handles.entries()) same(got[i]!, await s.getAttr(root, h));
    };
    await check(dir, [top.handle]);
    const c = await s.create(root, dir.handle, 'f', fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL);
    await check(c, [dir.handle]);
    await s.release(root, c.fh);
    await check(await s.symlink(root, dir.handle, 'l', 'f'), [dir.handle]);
    await check(await s.link(root, c.entry.handle, dir.handle, 'h'), [dir.handle]);
    const sub = await s.mkdir(root, dir.handle, 'sub');
    const moved = await s.rename(root, dir.handle, 'h', sub.handle, 'h2');
    await check(moved, [dir.handle, sub.handle, c.entry.handle]);
    await check(await s.unlink(root, sub.handle, 'h2'), [sub.handle]);
    await check(await s.rmdir(root, dir.handle, 'sub'), [dir.handle]);
    // Reads carry none.
    expect(afterChange(await s.getAttr(root, dir.handle))).toEqual([]);
  });

  it('what a change reply gave is called back: another session\'s change of that directory reaches the first before it returns', async () => {
    const a = await session(2);
    const b = await session(3);
    const heard = heardBy(a);
    const excl = fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const make = async (s: Session, dir: Buffer, name: string): Promise<unknown> => {
      const r = await s.create(root, dir, name, excl);
      await s.release(root, r.fh);
      return r;
    };
    const topA = await a.root(root, suite.daemon.exports[0]!.path);
    const dirA = await a.mkdir(root, topA.handle, 'watched');
    const dirIno = BigInt(dirA.attr.ino);
    const topB = await b.root(root, suite.daemon.exports[0]!.path);
    const dirB = await b.lookup(root, topB.handle, 'watched');
    const attrHeard = (): boolean => heard.some((h) => h.kind === 'attr' && h.ino === dirIno);
    // A's ATTR callback on the directory (from its mkdir's entry) is used up by B's first change.
    await make(b, dirB.handle, 'z');
    expect(attrHeard()).toBe(true);
    heard.length = 0;
    await make(b, dirB.handle, 'z2');
    expect(attrHeard()).toBe(false); // consumed: only the name was told
    // A's own create: its reply gives the directory's attributes and registers them again.
    const made = await make(a, dirA.handle, 'x');
    expect(afterChange<Attr>(made).map((x) => BigInt(x.ino))).toEqual([dirIno]);
    heard.length = 0;
    await make(b, dirB.handle, 'y');
    expect(attrHeard()).toBe(true);
  });
});
