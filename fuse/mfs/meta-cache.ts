// The mount's own cache of what nodes said about names and attributes, kept right by the same
// callbacks as the kernel's cache (node-conn.ts fresh()), so that it survives what the kernel
// forgets: a dentry or inode the kernel evicted (memory pressure, drop_caches) is looked up again,
// and that lookup is answered here instead of by a round trip to the node. This is AFS's idea: the
// client keeps what the server promised to call back about.
//
// What is kept, per node:
// - attributes by inode (valid while no invalidation of that inode arrived since the reply);
// - entries by (directory, name): the entry, or "no such name" (the node registers its NAMES
//   callback on the directory for negative lookups too);
// - complete directories: every name of a directory, known from a whole listing or from making it
//   (an mkdir's reply registers NAMES on the new, empty directory): a name not in the set does not
//   exist, with no round trip.
// Everything of a directory is valid while no invalidation of the directory arrived since it was
// learnt; the node never tells a session about its own changes, so this mount applies its own
// changes here itself (entered, removed, touched), and a reply that raced one of them (it was asked
// for before our change and came back after) is not stored: every change bumps a local tick, and a
// reply is stored only if nothing it describes was touched since its request's ticket.
//
// Permissions: the kernel checks search permission on each directory of a path (default_permissions)
// before a LOOKUP reaches us, as it does before using a dentry it cached; an answer from here is
// given to exactly the requests the kernel's own cache would have answered.
import { LRUCache } from 'lru-cache';
import type { Attr, Entry } from '../../proto/session-client.js';

/** The freshness test of the node's connection: nothing about `inos` was invalidated since `since`. */
export interface Freshness {
  mark(): number;
  fresh(since: number, ...inos: bigint[]): boolean;
}

interface Stamped<T> { value: T; since: number }
interface Listing { names: Set<string>; since: number }

/** Beyond this many touched keys remembered, everything asked before the oldest forgotten one is refused. */
const TOUCHED_MAX = 65536;

const nameKey = (name: Buffer): string => name.toString('latin1');

class NodeMeta {
  readonly attrs: LRUCache<bigint, Stamped<Attr>>;
  readonly entries: LRUCache<string, Stamped<Entry | null>>;
  readonly listings: LRUCache<bigint, Listing>;
  private tick = 0;
  private floor = 0;
  private readonly touched = new Map<string, number>();

  constructor(max: number) {
    this.attrs = new LRUCache({ max });
    this.entries = new LRUCache({ max });
    this.listings = new LRUCache({ max: Math.max(16, max >> 6) });
  }

  ticket(): number {
    return this.tick;
  }

  touch(key: string): void {
    if (this.touched.size >= TOUCHED_MAX) {
      this.touched.clear();
      this.floor = this.tick + 1;
    }
    this.touched.set(key, ++this.tick);
  }

  /** Nothing under `keys` changed through this mount since `ticket`. */
  untouched(ticket: number, ...keys: string[]): boolean {
    if (ticket < this.floor) return false;
    for (const k of keys) if ((this.touched.get(k) ?? 0) > ticket) return false;
    return true;
  }
}

const attrKey = (ino: bigint): string => `a${ino}`;
const dirKey = (dir: bigint): string => `d${dir}`;
const entryKey = (dir: bigint, name: Buffer): string => `${dir}/${nameKey(name)}`;

export class MetaCache {
  private readonly nodes = new Map<number, NodeMeta>();

  constructor(private readonly maxPerNode = 100_000) {}

  private of(node: number): NodeMeta {
    let m = this.nodes.get(node);
    if (!m) this.nodes.set(node, (m = new NodeMeta(this.maxPerNode)));
    return m;
  }

  /** Taken before a request: its reply is stored only if nothing it describes changed here since. */
  ticket(node: number): number {
    return this.of(node).ticket();
  }

  /** Whether the attributes of `ino` were not changed through this mount since `ticket`. */
  attrUntouched(node: number, ticket: number, ino: bigint): boolean {
    return this.of(node).untouched(ticket, attrKey(ino));
  }

  /** The attributes of `ino`, if known and still valid. */
  attr(node: number, conn: Freshness, ino: bigint): Attr | undefined {
    const m = this.nodes.get(node);
    const got = m?.attrs.get(ino);
    if (!got) return undefined;
    if (conn.fresh(got.since, ino)) return got.value;
    m!.attrs.delete(ino);
    return undefined;
  }

  /** Stores attributes asked for at (`since`, `ticket`). */
  putAttr(node: number, conn: Freshness, attr: Attr, since: number, ticket: number): void {
    const m = this.of(node);
    const ino = BigInt(attr.ino);
    if (conn.fresh(since, ino) && m.untouched(ticket, attrKey(ino))) m.attrs.set(ino, { value: attr, since });
  }

  /**
   * What `name` in `dir` is: an Entry, null for "no such name", undefined when not known. The
   * entry's attributes are the inode's current ones when this cache has them.
   */
  entry(node: number, conn: Freshness, dir: bigint, name: Buffer): { entry: Entry | null; since: number } | undefined {
    const m = this.nodes.get(node);
    if (!m) return undefined;
    const key = entryKey(dir, name);
    const got = m.entries.get(key);
    if (got) {
      if (!conn.fresh(got.since, dir)) {
        m.entries.delete(key);
      } else if (got.value === null) {
        return { entry: null, since: got.since };
      } else {
        // The name is current; its attributes must be too (they change without the name, and a
        // change through this mount drops them): without them the entry is not known.
        const ino = BigInt(got.value.attr.ino);
        const a = m.attrs.get(ino);
        if (a && conn.fresh(a.since, ino)) return { entry: { handle: got.value.handle, attr: a.value }, since: Math.min(got.since, a.since) };
        return undefined;
      }
    }
    const listing = m.listings.get(dir);
    if (listing && !listing.names.has(nameKey(name))) {
      if (conn.fresh(listing.since, dir)) return { entry: null, since: listing.since };
      m.listings.delete(dir);
    }
    return undefined;
  }

  /** Where `name` in `dir` is known to lead (its handle), whatever the state of its attributes. */
  placeOf(node: number, dir: bigint, name: Buffer): { node: number; ino: bigint; handle: Buffer } | undefined {
    const e = this.nodes.get(node)?.entries.get(entryKey(dir, name))?.value;
    return e ? { node, ino: BigInt(e.attr.ino), handle: e.handle } : undefined;
  }

  /** Stores what a lookup (or a listing with attributes) said `name` in `dir` is; null: no such name. */
  putEntry(node: number, conn: Freshness, dir: bigint, name: Buffer, entry: Entry | null, since: number, ticket: number): void {
    const m = this.of(node);
    if (!conn.fresh(since, dir) || !m.untouched(ticket, dirKey(dir))) return;
    m.entries.set(entryKey(dir, name), { value: entry, since });
    if (entry) this.putAttr(node, conn, entry.attr, since, ticket);
  }

  /** Every name of `dir`, from a whole listing asked for at (`since`, `ticket`). */
  putListing(node: number, conn: Freshness, dir: bigint, names: Buffer[], since: number, ticket: number): void {
    const m = this.of(node);
    if (!conn.fresh(since, dir) || !m.untouched(ticket, dirKey(dir))) return;
    m.listings.set(dir, { names: new Set(names.map(nameKey)), since });
  }

  // ---- changes made through this mount (the node does not tell us about them) ----

  /** `name` now names `entry` in `dir` (create, mkdir, link, rename's target): `since` taken before the call. */
  entered(node: number, dir: bigint, name: Buffer, entry: Entry, since: number): void {
    const m = this.of(node);
    this.changedDir(m, dir);
    m.entries.set(entryKey(dir, name), { value: entry, since });
    m.listings.get(dir)?.names.add(nameKey(name));
    m.attrs.set(BigInt(entry.attr.ino), { value: entry.attr, since });
  }

  /** A new directory made through this mount: empty, its names known (its node registered NAMES on it). */
  madeDir(node: number, dir: bigint, since: number): void {
    this.of(node).listings.set(dir, { names: new Set(), since });
  }

  /**
   * `name` in `dir` is gone (unlink, rmdir, rename's source): `since` taken before the call.
   * `victim`: the inode it named, when the mount knows it (its link count and ctime changed).
   */
  removed(node: number, dir: bigint, name: Buffer, since: number, victim?: bigint): void {
    const m = this.of(node);
    const was = m.entries.get(entryKey(dir, name))?.value;
    if (was) this.touched(node, BigInt(was.attr.ino));
    if (victim !== undefined) this.touched(node, victim);
    this.changedDir(m, dir);
    m.entries.set(entryKey(dir, name), { value: null, since });
    m.listings.get(dir)?.names.delete(nameKey(name));
  }

  /**
   * `name` in `from` moved to `newName` in `to` (rename; `exchange`: the two swapped): the moved
   * inode keeps its handle but its ctime changed, and so did the attributes of what `newName` named
   * before; `inos`: those inodes as the mount knows them (the entries here may not).
   */
  renamed(node: number, from: bigint, name: Buffer, to: bigint, newName: Buffer, since: number, inos: bigint[], exchange: boolean): void {
    const m = this.of(node);
    for (const i of inos) this.touched(node, i);
    const moved = m.entries.get(entryKey(from, name))?.value ?? null;
    const replaced = m.entries.get(entryKey(to, newName))?.value ?? null;
    for (const e of [moved, replaced]) if (e) this.touched(node, BigInt(e.attr.ino));
    this.changedDir(m, from);
    this.changedDir(m, to);
    const put = (dir: bigint, n: Buffer, e: Entry | null): void => {
      if (e) m.entries.set(entryKey(dir, n), { value: e, since });
      else m.entries.delete(entryKey(dir, n));
    };
    if (exchange) {
      put(from, name, replaced);
      put(to, newName, moved);
      return;
    }
    m.entries.set(entryKey(from, name), { value: null, since });
    m.listings.get(from)?.names.delete(nameKey(name));
    m.listings.get(to)?.names.add(nameKey(newName));
    put(to, newName, moved);
  }

  /** `name` in `dir` is no longer known (a change whose outcome we did not see). */
  forgetName(node: number, dir: bigint, name: Buffer): void {
    const m = this.of(node);
    this.changedDir(m, dir);
    m.entries.delete(entryKey(dir, name));
    m.listings.delete(dir);
  }

  /** The attributes of `ino` changed through this mount (write, setattr, link count...). */
  touched(node: number, ino: bigint): void {
    const m = this.of(node);
    m.touch(attrKey(ino));
    m.attrs.delete(ino);
  }

  /** Replaces the attributes of `ino` by those a change through this mount returned. */
  changedAttr(node: number, attr: Attr, since: number): void {
    const m = this.of(node);
    const ino = BigInt(attr.ino);
    m.touch(attrKey(ino));
    m.attrs.set(ino, { value: attr, since });
  }

  /** Everything from `node` (its session was lost, or the mount let go of it). */
  dropNode(node: number): void {
    this.nodes.delete(node);
  }

  private changedDir(m: NodeMeta, dir: bigint): void {
    m.touch(dirKey(dir));
    m.touch(attrKey(dir));
    m.attrs.delete(dir);
  }
}
