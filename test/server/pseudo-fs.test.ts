// A node does not serve this machine's /proc, /sys or /dev (procfs, sysfs, devtmpfs, devpts), as
// oMFS did not: mounted inside an export (an export of "/" has them all), they look up as ENOENT
// and are left out of listings, while everything else of the export is served as before.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT_CALLER as root } from '../../proto/file-client.js';
import { pseudoFsDevices } from '../../sys/pseudo-fs.js';
import { sessionSuite } from '../harness/session-suite.js';

const suite = sessionSuite('omfs-pseudo-fs-');

describe('pseudo file systems of the node', () => {
  it('mountinfo names this machine\'s /proc and /sys devices, not the root file system\'s', () => {
    const devs = pseudoFsDevices();
    expect(devs.has(fs.statSync('/proc').dev)).toBe(true);
    expect(devs.has(fs.statSync('/sys').dev)).toBe(true);
    expect(devs.has(fs.statSync('/').dev)).toBe(false);
  });

  it('a procfs mounted inside an export looks up as ENOENT and is not listed; its siblings are', async () => {
    const exp = suite.daemon.exports[0]!.path;
    fs.mkdirSync(join(exp, 'proc'));
    fs.mkdirSync(join(exp, 'plain'));
    const m = spawnSync('mount', ['-t', 'proc', 'proc', join(exp, 'proc')]);
    expect(m.status, m.stderr.toString()).toBe(0);
    try {
      const s = await suite.session(2);
      const top = await s.root(root, exp);
      await expect(s.lookup(root, top.handle, 'proc')).rejects.toMatchObject({ code: 'ENOENT' });
      const plain = await s.lookup(root, top.handle, 'plain');
      expect(plain.attr.mode & 0o170000).toBe(0o040000);
      const { entries } = await s.readDirBatch(root, top.handle, 0);
      const names = entries.map((e) => e.name.toString());
      expect(names).toContain('plain');
      expect(names).not.toContain('proc');
      // The bare directory has it (the node's own processes see their /proc there).
      expect(fs.readdirSync(exp)).toContain('proc');
    } finally {
      spawnSync('umount', ['-l', join(exp, 'proc')]);
    }
  });
});
