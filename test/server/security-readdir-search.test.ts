// A directory the caller may read but not search (r-- for it) lists names only: on the bare
// directory `ls -l` of it gets the names and a failed stat for each. mfsd used to stat the entries
// as root and hand out their attributes (owner, size, times) and handles.
import { afterEach, beforeEach, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Caller } from '../../proto/file-client.js';

const alice: Caller = { uid: 1000, gid: 1000, groups: [], pid: 1 };
let h: Harness;
beforeEach(async () => { h = await startHarness(); });
afterEach(async () => { await h.stop(); });

it('r-- directory: names and cookies for the caller, no handles or attributes; root gets both', async () => {
  for (const p of [h.dir, h.exports[0]!]) fs.chmodSync(p, 0o755); // so uid 1000 reaches d on the bare side
  const dir = join(h.exports[0]!, 'd');
  fs.mkdirSync(dir);
  for (const n of ['a', 'b', 'c']) fs.writeFileSync(join(dir, n), n);
  fs.chmodSync(dir, 0o744); // root's directory: others may read, not search
  const top = await h.client.root(root, h.exports[0]!);
  const d = await h.client.lookup(root, top.handle, 'd');

  const asAlice = await h.client.readDir(alice, d.handle);
  expect(asAlice.map((e) => e.name.toString()).sort()).toEqual(['a', 'b', 'c']);
  expect(asAlice.every((e) => e.entry === undefined || e.entry === null)).toBe(true);
  // The bare directory agrees: uid 1000 lists the names, and a stat of one fails.
  const bare = execFileSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'ls', '-f', dir]).toString();
  expect(bare.split('\n').filter((n) => n && n !== '.' && n !== '..').sort()).toEqual(['a', 'b', 'c']);
  expect(() => execFileSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'stat', join(dir, 'a')], { stdio: 'pipe' })).toThrow();

  // Resuming after a names-only cookie works as for any cookie.
  const rest = await h.client.readDir(alice, d.handle, asAlice[0]!.cookie);
  expect(rest.map((e) => e.name.toString())).toEqual(asAlice.slice(1).map((e) => e.name.toString()));

  const asRoot = await h.client.readDir(root, d.handle);
  expect(asRoot.every((e) => e.entry?.attr.uid === 0 && e.entry.handle.length > 0)).toBe(true);
});
