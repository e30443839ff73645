// The hosted mount's own node (reached in process) against a separate mount of the same node
// (mfs-mount as node 3, through a session), both with an hour's kernel timeouts. Round after
// round one side first reads, stats and lists (its kernel caches them), the other changes the
// state (write, truncate, chmod, utimes, create, rename, link, unlink), and right after that call
// returned the first must see the new state. Both directions; zero stale results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startHostingMfsd, type HostingMfsd } from '../harness/mfs-local.js';
import { makeTestCa, startMfsd, type MfsdHandle, type TestCa } from '../harness/mfsd.js';
import { startMfsMount, type MfsMount } from '../harness/mfs-mount.js';
import { makeTempDir } from '../harness/passthrough-mount.js';

const ROUNDS = 12;
let tmp: string;
let ca: TestCa;
let d2: MfsdHandle | undefined;
let host: HostingMfsd | undefined;
let other: MfsMount | undefined;

beforeAll(async () => {
  tmp = await makeTempDir('omfs-local-consistency-');
  ca = await makeTestCa(tmp);
  d2 = await startMfsd({ ca, nodeId: 2 });
  host = await startHostingMfsd({ ca, nodeId: 1, others: [d2] });
  other = await startMfsMount({ ca, node: 3, daemons: [host.daemon, d2], args: ['-o', 'cache=3600'] });
}, 120_000);

afterAll(async () => {
  await other?.unmount();
  await host?.cleanup();
  await d2?.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const stale: string[] = [];
function check(kind: string, got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) stale.push(`${kind}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
const attrs = (p: string): { mode: number; size: string; nlink: number; mtimeNs: string } => {
  const s = fs.lstatSync(p, { bigint: true });
  return { mode: Number(s.mode), size: String(s.size), nlink: Number(s.nlink), mtimeNs: String(s.mtimeNs) };
};
const names = (d: string): string[] => fs.readdirSync(d).sort();

/** Rounds where `reader` caches and `writer` changes; both are /mfs/1 of their mount. */
function rounds(label: string, reader: string, writer: string, bare: string): void {
  const dir = `${label}-dir`;
  fs.mkdirSync(join(bare, dir), { recursive: true });
  for (let i = 0; i < ROUNDS; i++) {
    const f = join(dir, 'f');
    fs.writeFileSync(join(bare, f), `round ${i} start`);
    // The reader caches data, attributes and the listing.
    fs.readFileSync(join(reader, f));
    attrs(join(reader, f));
    names(join(reader, dir));

    const data = `${label} round ${i}: ${'x'.repeat(i * 7)}`;
    fs.writeFileSync(join(writer, f), data);
    check('data', fs.readFileSync(join(reader, f), 'utf8'), data);
    check('size+mtime', attrs(join(reader, f)), attrs(join(bare, f)));

    fs.truncateSync(join(writer, f), 3);
    check('truncate', fs.readFileSync(join(reader, f), 'utf8'), data.slice(0, 3));
    fs.chmodSync(join(writer, f), 0o600 + (i % 2) * 0o40);
    check('mode', attrs(join(reader, f)).mode, attrs(join(bare, f)).mode);
    fs.utimesSync(join(writer, f), new Date(1_600_000_000_000 + i * 1000), new Date(1_600_000_000_000 + i * 1000));
    check('utimes', attrs(join(reader, f)).mtimeNs, attrs(join(bare, f)).mtimeNs);

    fs.writeFileSync(join(writer, dir, `new${i}`), 'n');
    check('create', names(join(reader, dir)), names(join(bare, dir)));
    fs.linkSync(join(writer, dir, `new${i}`), join(writer, dir, `hard${i}`));
    check('link nlink', attrs(join(reader, dir, `new${i}`)).nlink, 2);
    fs.renameSync(join(writer, dir, `hard${i}`), join(writer, dir, `moved${i}`));
    check('rename', names(join(reader, dir)), names(join(bare, dir)));
    fs.unlinkSync(join(writer, dir, `moved${i}`));
    check('unlink', names(join(reader, dir)), names(join(bare, dir)));
    check('unlink nlink', attrs(join(reader, dir, `new${i}`)).nlink, 1);
    fs.unlinkSync(join(writer, dir, `new${i}`));
  }
}

describe('hosted mount, own node in process, against a mount through a session', () => {
  it('changes through the other mount are seen at once through the hosted one', () => {
    rounds('in', host!.own, join(other!.mnt, '1'), host!.daemon.exports[0]!.path);
    expect(stale).toEqual([]);
  });

  it('changes through the hosted mount are seen at once through the other', () => {
    rounds('out', join(other!.mnt, '1'), host!.own, host!.daemon.exports[0]!.path);
    expect(stale).toEqual([]);
  });
});
