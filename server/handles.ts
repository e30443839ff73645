// File handles and node-local file ids, persisted in LevelDB so they survive a daemon restart.
//
// Node-local file id (48 bits): the file's st_dev is given a small persisted index (8 bits, 0..254)
// and the id is `devIndex << 40 | st_ino` when st_ino < 2^40. When st_ino does not fit, the id is
// `255 << 40 | n` with n allocated from a persisted counter (and the (dev, ino) -> id mapping stored).
// st_ino is a bigint everywhere here (it uses all 64 bits on some filesystems); the counter is checked
// against its 40 bits and a file past it is EOVERFLOW, as stat(2) answers for an inode number that
// does not fit. Allocations (device indexes, big inode ids) are serialized: two first sightings at
// once would otherwise read the same counter value and hand out one id twice.
// Inode numbers reported to clients: `nodeId << 48 | localId`, unique across the cluster as long as
// node numbers are (16 bits of node number, 48 bits of local id), and stable across restarts.
//
// A handle is `version (1) | export id (2) | local id (6) | generation (6) | HMAC-SHA256(secret,
// first 15 bytes)[0..16]`. The secret is per node and kept in the state dir, so a forged handle or
// one minted by another node fails verification (ESTALE). LevelDB maps local id -> {parent id, name,
// dev, ino, birth time, generation}: a directory rename rewrites one record, and on use the (dev,
// ino, birth time) found is checked against the record.
// Generation: a record made for an id whose stored identity (dev, ino, birth time) differs, i.e. a
// new file reusing an inode number, gets a fresh number from a persisted counter, and a handle
// carries the generation it was minted with: an old handle to a reused inode number no longer
// matches its record and is ESTALE, never the new file (the NFS generation rule). Generations are
// reserved from LevelDB in blocks (GEN_BLOCK), so a crash skips numbers but never repeats one.
// The export root's handle has generation 0 and is stable. Handles of version 1 (before
// generations) are ESTALE: clients look their files up again.
// Names are bytes (stored base64); a file with several hard links also keeps up to
// MAX_OTHER_NAMES other names it was seen under, tried in turn when its newest name is gone.
import { Level } from 'level';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Errno } from '../proto/errno.js';

/** One name of a file: the local id of its directory (decimal, '' for an export root) and the name's bytes in it. */
export interface FileName { parent: string; name: Buffer }

/**
 * Where a file lives. `btime` (birth time, ms, computed as Node's birthtimeMs) tells a file from a
 * later one that reuses its inode number (the NFS "generation" problem); 0 when the filesystem does
 * not report it. `gen`: the generation handles of this file carry (see the header); 0 in records
 * written before generations. `others`: earlier names of a file with several hard links, newest first.
 */
export interface FileRecord extends FileName { dev: number; ino: bigint; btime: number; gen: number; others?: FileName[] }

/** What a caller tells the store about a file it found: the generation is the store's to assign. */
export type FoundFile = Omit<FileRecord, 'gen'>;

/** The stored form. Records written before names were bytes have `name` as text and `ino` as a number. */
interface StoredRecord {
  parent: string; name?: string; name64?: string; dev: number; ino: number | string; btime: number; gen?: number;
  others?: Array<{ parent: string; name64: string }>;
}

export const MAX_OTHER_NAMES = 7;

/** A copy with its own memory: a name sliced from a request or a dirent buffer would pin all of it. */
export function ownName(name: Buffer): Buffer {
  const b = Buffer.allocUnsafeSlow(name.length);
  name.copy(b);
  return b;
}

const sameName = (a: FileName, b: FileName): boolean => a.parent === b.parent && a.name.equals(b.name);
const sameIdentity = (a: FoundFile, b: FoundFile): boolean => a.dev === b.dev && a.ino === b.ino && a.btime === b.btime;

/** Every name a record knows, the newest first. */
export function namesOf(rec: FileRecord): FileName[] {
  return [{ parent: rec.parent, name: rec.name }, ...(rec.others ?? [])];
}

function withNames(rec: FoundFile, gen: number, names: FileName[]): FileRecord {
  const unique: FileName[] = [];
  for (const n of names) if (!unique.some((u) => sameName(u, n))) unique.push({ parent: n.parent, name: ownName(n.name) });
  const [first, ...others] = unique;
  const out: FileRecord = { parent: first!.parent, name: first!.name, dev: rec.dev, ino: rec.ino, btime: rec.btime, gen };
  if (others.length > 0) out.others = others.slice(0, MAX_OTHER_NAMES);
  return out;
}

function encode(rec: FileRecord): string {
  const stored: StoredRecord = {
    parent: rec.parent, name64: rec.name.toString('base64'), dev: rec.dev, ino: rec.ino.toString(), btime: rec.btime, gen: rec.gen,
  };
  if (rec.others) stored.others = rec.others.map((o) => ({ parent: o.parent, name64: o.name.toString('base64') }));
  return JSON.stringify(stored);
}

function decode(raw: string): FileRecord {
  const s = JSON.parse(raw) as StoredRecord;
  const rec: FileRecord = {
    parent: s.parent,
    name: s.name64 !== undefined ? Buffer.from(s.name64, 'base64') : Buffer.from(s.name ?? '', 'utf8'),
    dev: s.dev, ino: BigInt(s.ino), btime: s.btime, gen: s.gen ?? 0,
  };
  if (s.others) rec.others = s.others.map((o) => ({ parent: o.parent, name: Buffer.from(o.name64, 'base64') }));
  return rec;
}

const VERSION = 2;
const SIGNED_LENGTH = 15;
const MAC_LENGTH = 16;
const HANDLE_LENGTH = SIGNED_LENGTH + MAC_LENGTH;
const INO_BITS = 40n;
const ALLOCATED_DEV_INDEX = 255n;
/** The counter for inodes >= 2^40 fills the 40 bits below ALLOCATED_DEV_INDEX: 1 .. 2^40 - 1. */
export const BIG_ID_LIMIT = 1n << INO_BITS;
const BIG_IDS_CACHED = 1 << 20;
/** Generations reserved per LevelDB write; a restart skips the unused rest of a block. */
const GEN_BLOCK = 4096;
const MAX_GEN = 2 ** 48 - 1;

/**
 * One file found under a name, for remember(). `linked`: see remember(). `fresh`: the inode was
 * just created by this daemon (O_CREAT|O_EXCL, mkdir, mknod, symlink), so any stored record of its
 * id belongs to an earlier file of the same inode number: it gets a new generation without reading
 * the old record.
 */
export interface Sighting { id: bigint; found: FoundFile; linked: boolean; fresh?: boolean }

export interface ParsedHandle { exportId: number; id: bigint; gen: number }

export class HandleStore {
  private readonly records = new LRUCache<string, FileRecord>({ max: 200_000 });
  // Records whose LevelDB write is still in flight: one evicted from the LRU meanwhile must not be
  // read back from the database in its older state.
  private readonly writing = new Map<string, FileRecord>();
  // Record writes go to LevelDB one batch after another, in the order they were decided: two batches
  // racing in LevelDB's threads could otherwise leave the older record on disk.
  private writes: Promise<void> = Promise.resolve();
  private readonly devIndexes = new Map<number, bigint>();
  // (dev:ino) -> id of the inodes >= 2^40 looked up since start: knownLocalId() answers from here
  // without touching LevelDB. Every inode a session was ever told about went through localId()
  // in this process, so it is here unless a million other big inodes were seen since.
  private readonly bigIds = new LRUCache<string, bigint>({ max: BIG_IDS_CACHED });
  // Counter allocations (device indexes, big inode ids) one after another: see the header.
  private allocating: Promise<unknown> = Promise.resolve();
  // Handles already verified: saves the HMAC on the hot path (a handle's validity never changes).
  private readonly verified = new LRUCache<string, ParsedHandle>({ max: 100_000 });
  private nextGen: number;
  private genLimit: number;
  private reserving: Promise<void> | undefined;
  private constructor(private readonly db: Level<string, string>, private readonly secret: Buffer, genLimit: number) {
    this.nextGen = this.genLimit = genLimit;
  }

  static async open(dir: string): Promise<HandleStore> {
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    let secretHex = await db.get('secret');
    if (secretHex === undefined) {
      secretHex = randomBytes(32).toString('hex');
      await db.put('secret', secretHex);
    }
    // Generation 0 is the export roots' (and records from before generations).
    return new HandleStore(db, Buffer.from(secretHex, 'hex'), Number((await db.get('gen-limit')) ?? '1'));
  }

  async close(): Promise<void> {
    await this.writes;
    await this.db.close();
  }

  /** The persisted id of an export path; assigned on first sight, never reused. */
  async exportId(path: string): Promise<number> {
    return this.serialized(async () => {
      const known = await this.db.get(`export:${path}`);
      if (known !== undefined) return Number(known);
      const next = Number((await this.db.get('export-next')) ?? '1');
      if (next > 0xffff) throw new Errno('ENOSPC', 'too many exports');
      await this.db.batch([{ type: 'put', key: `export:${path}`, value: String(next) }, { type: 'put', key: 'export-next', value: String(next + 1) }]);
      return next;
    });
  }

  /** Runs `fn` after every allocation queued before it (see `allocating`). */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.allocating.then(fn, fn);
    this.allocating = run.catch(() => {});
    return run;
  }

  private async devIndex(dev: number): Promise<bigint> {
    const cached = this.devIndexes.get(dev);
    if (cached !== undefined) return cached;
    return this.serialized(async () => {
      const again = this.devIndexes.get(dev);
      if (again !== undefined) return again;
      let value = await this.db.get(`dev:${dev}`);
      if (value === undefined) {
        const next = BigInt((await this.db.get('dev-next')) ?? '0');
        if (next >= ALLOCATED_DEV_INDEX) throw new Errno('ENOSPC', 'too many devices under the exports');
        value = next.toString();
        await this.db.batch([{ type: 'put', key: `dev:${dev}`, value }, { type: 'put', key: 'dev-next', value: (next + 1n).toString() }]);
      }
      const index = BigInt(value);
      this.devIndexes.set(dev, index);
      return index;
    });
  }

  /** The node-local id of the file (dev, ino); EOVERFLOW when ino >= 2^40 and the big-id counter is spent. */
  async localId(dev: number, ino: bigint): Promise<bigint> {
    const index = await this.devIndex(dev);
    if (ino < 1n << INO_BITS) return (index << INO_BITS) | ino;
    const key = `big:${dev}:${ino}`;
    const cached = this.bigIds.get(key);
    if (cached !== undefined) return cached;
    // A mapping made before is read in parallel with anything; only a new one waits its turn.
    const stored = await this.db.get(key);
    if (stored !== undefined) {
      const id = BigInt(stored);
      this.bigIds.set(key, id);
      return id;
    }
    return this.serialized(async () => {
      let id = this.bigIds.get(key);
      if (id !== undefined) return id;
      const known = await this.db.get(key); // made by an allocation that ran while this one waited
      if (known !== undefined) id = BigInt(known);
      else {
        const n = BigInt((await this.db.get('big-next')) ?? '1');
        if (n >= BIG_ID_LIMIT) {
          throw new Errno('EOVERFLOW', `inode ${ino} of device ${dev} needs a 40-bit id and all ${BIG_ID_LIMIT - 1n} are taken (state dir counter 'big-next')`);
        }
        id = (ALLOCATED_DEV_INDEX << INO_BITS) | n;
        await this.db.batch([{ type: 'put', key, value: id.toString() }, { type: 'put', key: 'big-next', value: (n + 1n).toString() }]);
      }
      this.bigIds.set(key, id);
      return id;
    });
  }

  /**
   * The local id of (dev, ino) if it is known without allocating or reading LevelDB: undefined for
   * a device never seen and for an inode >= 2^40 not looked up since start. For the direct-change
   * watcher, which must not give ids to files nobody asked about (and runs synchronously).
   */
  knownLocalId(dev: number, ino: bigint): bigint | undefined {
    const index = this.devIndexes.get(dev);
    if (index === undefined) return undefined;
    if (ino < 1n << INO_BITS) return (index << INO_BITS) | ino;
    return this.bigIds.peek(`big:${dev}:${ino}`);
  }

  /**
   * Remembers that a file was seen under `rec`'s name and returns the generation its handles carry;
   * writes to LevelDB only when the record is new or changed. When `linked` (a non-directory with
   * more than one link) the names it was seen under before are kept as other names: one of them may
   * outlive the newest. A file whose identity differs from the record's (an inode number reused)
   * gets a new generation.
   */
  async remember(id: bigint, rec: FoundFile, linked = false): Promise<number> {
    return (await this.rememberAll([{ id, found: rec, linked }]))[0]!;
  }

  /** remember() for many files: one LevelDB batch for every record that is new or changed. */
  async rememberAll(seen: Sighting[]): Promise<number[]> {
    return this.update(seen.map((s) => s.id), (i, old) => {
      const { found, linked, fresh } = seen[i]!;
      if (fresh || !old || !sameIdentity(old, found)) return withNames(found, this.takeGen(), [found]);
      if (sameName(old, found)) return old;
      return withNames(found, old.gen, linked ? [found, ...namesOf(old)] : [found]);
    }, seen.map((s) => s.fresh === true));
  }

  /** The file was renamed from `from` to `rec`'s name: `from` is gone, its other names stay. */
  async moved(id: bigint, from: FileName, rec: FoundFile): Promise<void> {
    await this.update([id], (_, old) => {
      if (!old || !sameIdentity(old, rec)) return withNames(rec, this.takeGen(), [rec]);
      return withNames(rec, old.gen, [rec, ...namesOf(old).filter((n) => !sameName(n, from))]);
    });
  }

  /** The file was found under one of its other names: that one becomes the first tried. */
  async promote(id: bigint, at: FileName): Promise<void> {
    await this.update([id], (_, old) => (old && !sameName(old, at) ? withNames(old, old.gen, [at, ...namesOf(old)]) : old));
  }

  /**
   * Applies `next` to the records of `ids` and returns their generations. From the last await to
   * the cache update nothing yields, so two requests about the same file never both decide it is
   * new (which would give it two generations, one of them handed out stale).
   */
  private async update(ids: bigint[], next: (i: number, old: FileRecord | undefined) => FileRecord | undefined, fresh: boolean[] = []): Promise<number[]> {
    const keys = ids.map((id) => id.toString());
    for (;;) {
      await this.loadMissing(keys.filter((_, i) => !fresh[i]));
      if (this.genLimit - this.nextGen < keys.length) {
        await this.reserveGens(keys.length);
        continue; // the records may have changed meanwhile
      }
      const changed: Array<[string, FileRecord]> = [];
      const gens = keys.map((key, i) => {
        const old = this.cached(key);
        const rec = next(i, old);
        if (rec && rec !== old) {
          this.records.set(key, rec);
          this.writing.set(key, rec);
          changed.push([key, rec]);
        }
        return rec?.gen ?? 0;
      });
      // Records are written behind: until one lands, this process serves it from memory
      // (`writing`), the writes stay in order, and close() waits for them. What a crash in between
      // costs: those files' handles are stale after the restart (a lookup by name gives new ones),
      // as with the session records, which are written behind too. Saves a create, a rename or the
      // first lookup of a file its wait for LevelDB's thread.
      if (changed.length > 0) {
        this.write(changed).catch((err: unknown) => process.stderr.write(`mfsd: handle store: a record write failed (those handles will be stale after a restart): ${String(err)}\n`));
      }
      return gens;
    }
  }

  private takeGen(): number {
    if (this.nextGen >= this.genLimit) throw new Error('generation taken without a reservation'); // update() reserves first
    return this.nextGen++;
  }

  /** Persists a higher generation limit before any generation below it is handed out. */
  private async reserveGens(atLeast: number): Promise<void> {
    this.reserving ??= (async () => {
      const limit = this.genLimit + Math.max(GEN_BLOCK, atLeast);
      if (limit > MAX_GEN) throw new Errno('ENOSPC', 'file generations exhausted');
      await this.db.put('gen-limit', String(limit));
      this.genLimit = limit;
    })().finally(() => {
      this.reserving = undefined;
    });
    await this.reserving;
  }

  private write(changed: Array<[string, FileRecord]>): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        await this.db.batch(changed.map(([key, rec]) => ({ type: 'put' as const, key: `file:${key}`, value: encode(rec) })));
      } finally {
        for (const [key, rec] of changed) if (this.writing.get(key) === rec) this.writing.delete(key);
      }
    };
    const done = this.writes.then(run, run);
    this.writes = done.catch(() => {});
    return done;
  }

  private cached(key: string): FileRecord | undefined {
    return this.records.get(key) ?? this.writing.get(key);
  }

  /** Loads into the cache the records of `keys` it lacks (one LevelDB read for all). */
  private async loadMissing(keys: string[]): Promise<void> {
    const missing = [...new Set(keys.filter((k) => !this.cached(k)))];
    if (missing.length === 0) return;
    const raws = await this.db.getMany(missing.map((k) => `file:${k}`));
    missing.forEach((key, i) => {
      const raw = raws[i];
      // A record decided while we read is newer than the stored one.
      if (raw !== undefined && !this.cached(key)) this.records.set(key, decode(raw));
    });
  }

  /**
   * Whether the record of `id` is in memory (no LevelDB read): a file some operation resolved
   * lately. A look that does not count as a use (the direct-change watcher asks about every event).
   */
  inMemory(id: bigint): boolean {
    const key = id.toString();
    return this.records.has(key) || this.writing.has(key);
  }

  async record(id: bigint): Promise<FileRecord | undefined> {
    const key = id.toString();
    const known = this.cached(key);
    if (known) return known;
    await this.loadMissing([key]);
    return this.cached(key);
  }

  /** A handle of file `id` of export `exportId` with generation `gen` (0 for an export root). */
  mint(exportId: number, id: bigint, gen: number): Buffer {
    const handle = Buffer.alloc(HANDLE_LENGTH);
    handle.writeUInt8(VERSION, 0);
    handle.writeUInt16BE(exportId, 1);
    handle.writeUIntBE(Number(id), 3, 6); // a local id: 48 bits, exact as a number (not an st_ino)
    handle.writeUIntBE(gen, 9, 6);
    this.mac(handle.subarray(0, SIGNED_LENGTH)).copy(handle, SIGNED_LENGTH);
    return handle;
  }

  /** Verifies a handle; anything not minted by this node's secret (or by an older version) is ESTALE. */
  parse(handle: unknown): ParsedHandle {
    if (!Buffer.isBuffer(handle) || handle.length !== HANDLE_LENGTH || handle[0] !== VERSION) throw new Errno('ESTALE', 'not a handle of this node');
    const key = handle.toString('latin1');
    const known = this.verified.get(key);
    if (known) return known;
    if (!timingSafeEqual(this.mac(handle.subarray(0, SIGNED_LENGTH)), handle.subarray(SIGNED_LENGTH))) throw new Errno('ESTALE', 'handle not minted by this node');
    const parsed = { exportId: handle.readUInt16BE(1), id: BigInt(handle.readUIntBE(3, 6)), gen: handle.readUIntBE(9, 6) };
    this.verified.set(key, parsed);
    return parsed;
  }

  private mac(data: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(data).digest().subarray(0, MAC_LENGTH);
  }
}
