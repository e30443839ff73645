// Directory listings of the /mfs mount: the mount's own directories (the root, a node's virtual
// directories leading to its exports, .control/.admin), and a node's directories, fetched in
// batches and given to the kernel as they come (READDIRPLUS: with attributes, each entry a lookup
// the kernel counts). "." and ".." lead every listing, as on a local directory. A listing read
// whole is remembered (meta-cache.ts: names it lacks do not exist), and one that raced a change of
// the directory is dropped from the kernel's cache right after the reply.
import type { DirBuffer, RequestContext, RequestOf } from '../kernel/index.js';
import type { DirEntry, U64 } from '../../proto/session-client.js';
import { bigOf, callerOf, direntType, isDevice, kernelAttr, S_IFMT } from './attrs.js';
import { viewOf, type InodeTable, type MfsInode } from './inodes.js';
import type { KernelCache } from './kernel-cache.js';
import type { MetaCache } from './meta-cache.js';
import type { NodeConn } from './node-conn.js';
import type { SpecialNodes } from './special-nodes.js';

type Remote = MfsInode & { kind: 'remote' };

const DT_DIR = 4;
const DT_REG = 8;
/** "." and "..", listed first. */
const DOTS = 2;
const DOT_NAMES = [Buffer.from('.'), Buffer.from('..')];
/** The inode number the kernel shows for `i`: a node's for its files, the mount's own id for its directories. */
const inoOf = (i: MfsInode): number | bigint => (i.kind === 'remote' ? i.ino : i.id);

/** What listings need of the mount. */
export interface ListingDeps {
  inodes: InodeTable;
  meta: MetaCache;
  cache: KernelCache;
  special: SpecialNodes;
  conn(node: number): NodeConn;
  /** The node numbers of the map, in order. */
  nodeList(): number[];
  /** The kernel timeout for a reply that is (or is not) known fresh. */
  timeout(fresh: boolean): number;
}

export class Listings {
  constructor(private readonly d: ListingDeps) {}

  /** A READDIR or READDIRPLUS reply for `dir` (resolved: /mfs/<K> as the node's root when it is one). */
  async list(ctx: RequestContext, dir: MfsInode, r: RequestOf<'READDIR' | 'READDIRPLUS'>, out: DirBuffer, plus: boolean): Promise<void> {
    // "." and ".." first, at cookies 1 and 2, as a local directory lists them; then the directory's
    // own entries, their cookies shifted by DOTS (a node's cookies are positions after an entry: >= 1).
    if (!this.listDots(dir, r.offset, out, plus)) return;
    const offset = Math.max(0, r.offset - DOTS);
    if (dir.kind === 'top') {
      const names = [...this.d.nodeList().map(String), ...this.d.special.topNames()];
      return this.listNames(offset, out, plus, names, (k) => this.d.special.topIno(k) ?? this.d.inodes.virtual(Number(k), '').id);
    }
    if (dir.kind === 'own') {
      const files = this.d.special.ownNames(dir);
      return this.listNames(offset, out, plus, files.map((f) => f.name), (name) => files.find((f) => f.name === name)!.ino, DT_REG);
    }
    if (dir.kind === 'virtual') {
      const children = childNames(this.d.conn(dir.node).exports.map((e) => e.path), dir.path);
      return this.listNames(offset, out, plus, children, (name) => this.d.inodes.virtual(dir.node, `${dir.path}/${name}`, dir.view).id);
    }
    const conn = this.d.conn(dir.node);
    const since = conn.mark();
    const ticket = this.d.meta.ticket(dir.node);
    const from = r.cookie <= BigInt(DOTS) ? 0n : r.cookie - BigInt(DOTS);
    // A listing read from its start to its end in this one request: every name of the directory.
    const whole: Buffer[] | undefined = from === 0n ? [] : undefined;
    // Cookies go back to the node as it sent them (a decimal string beyond 2^53).
    for (let cookie: U64 = from <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(from) : from.toString(); ;) {
      const batch = await conn.call((s) => s.readDirBatch(callerOf(ctx), dir.handle, cookie));
      for (const e of batch.entries) {
        whole?.push(e.name);
        if (e.entry) this.d.meta.putEntry(dir.node, conn, dir.ino, e.name, e.entry, since, ticket);
        if (e.entry && isDevice(e.entry.attr.mode)) {
          cookie = e.cookie;
          continue;
        }
        if (!this.addEntry(out, plus, dir, e, since)) return this.raced(dir, since);
        cookie = e.cookie;
      }
      if (batch.eof || batch.entries.length === 0) {
        if (whole) this.d.meta.putListing(dir.node, conn, dir.ino, whole, since, ticket);
        return this.raced(dir, since);
      }
    }
  }

  /** One remote entry into the reply; false when it does not fit. A plus entry counts as a lookup only once sent. */
  private addEntry(out: DirBuffer, plus: boolean, dir: Remote, e: DirEntry, since: number): boolean {
    const type = e.entry ? direntType(e.entry.attr.mode) : 0;
    const cookie = bigOf(e.cookie) + BigInt(DOTS);
    if (!plus || !e.entry) {
      const ino = e.entry ? bigOf(e.entry.attr.ino) : 1;
      return plus ? addPlusNameOnly(out, ino, cookie, type, e.name) : out.add(ino, cookie, type, e.name);
    }
    const ino = bigOf(e.entry.attr.ino);
    const child = this.d.inodes.remote(dir.node, ino, e.entry.handle, e.entry.attr.mode & S_IFMT, viewOf(dir, e.entry.attr.mode));
    const t = this.d.timeout(this.d.conn(dir.node).fresh(since, ino, dir.ino));
    const sent = out.addPlus({ nodeId: child.id, generation: 0, entryTimeout: t, attrTimeout: t, attr: kernelAttr(e.entry.attr) }, cookie, type, e.name);
    if (sent) this.d.inodes.entered(dir, e.name, child);
    else if (child.lookups === 0) this.d.inodes.forget(child.id, 0); // made for this entry, never sent: nobody will FORGET it
    return sent;
  }

  /**
   * The kernel caches listings (CACHE_DIR) as they are answered: one that raced a change of the
   * directory is dropped again right after the reply (the notification queues behind it).
   */
  private raced(dir: Remote, since: number): void {
    if (this.d.conn(dir.node).fresh(since, dir.ino)) return;
    setImmediate(() => void this.d.cache.invalidate(dir.node, { kind: 'name', ino: dir.ino, offset: 0, length: 0, name: Buffer.alloc(0) }));
  }

  /** A listing of the mount's own directories: entry k has cookie k+1 (READDIRPLUS: names only). */
  private listNames(offset: number, out: DirBuffer, plus: boolean, names: string[], idOf: (name: string) => number, type = DT_DIR): void {
    for (let k = offset; k < names.length; k++) {
      const name = Buffer.from(names[k]!);
      const ino = idOf(names[k]!);
      if (!(plus ? addPlusNameOnly(out, ino, k + 1 + DOTS, type, name) : out.add(ino, k + 1 + DOTS, type, name))) return;
    }
  }

  /** "." and ".." from `offset` (0, 1 or more: none); false when the reply is full. READDIRPLUS: names only (the kernel skips them). */
  private listDots(dir: MfsInode, offset: number, out: DirBuffer, plus: boolean): boolean {
    for (let k = offset; k < DOTS; k++) {
      const ino = k === 0 ? inoOf(dir) : inoOf(this.parentOf(dir) ?? dir);
      if (!(plus ? addPlusNameOnly(out, ino, k + 1, DT_DIR, DOT_NAMES[k]!) : out.add(ino, k + 1, DT_DIR, DOT_NAMES[k]!))) return false;
    }
    return true;
  }

  /** The directory `dir` was entered from (its first name), as the mount knows it. */
  private parentOf(dir: MfsInode): MfsInode | undefined {
    const link = dir.links.values().next().value;
    return link === undefined ? undefined : this.d.inodes.get(Number(link.slice(0, link.indexOf('/'))));
  }
}

/**
 * A READDIRPLUS record with no entry (node id 0: name and type only, the kernel looks it up if it
 * needs it), through DirBuffer.addCopied, which takes a dirent64-like record: ino, off, name.
 */
function addPlusNameOnly(out: DirBuffer, ino: number | bigint, cookie: number | bigint, type: number, name: Buffer): boolean {
  const rec = Buffer.alloc(16 + name.length);
  rec.writeBigUInt64LE(BigInt(ino), 0); // d_ino 0 reads as a deleted entry to some programs
  rec.writeBigUInt64LE(BigInt(cookie), 8);
  name.copy(rec, 16);
  return out.addCopied(rec, 0, type, 16, name.length, true);
}

/** The names directly under `path` ('' = /mfs/<K>) that lead to or are exports. */
export function childNames(exports: string[], path: string): string[] {
  const names = new Set<string>();
  for (const p of exports) {
    if (!p.startsWith(path + '/')) continue;
    const next = p.slice(path.length + 1).split('/')[0];
    if (next) names.add(next);
  }
  return [...names].sort();
}
