// File handles and node-local file ids, persisted in LevelDB so they survive a daemon restart.
//
// Node-local file id (48 bits): the file's st_dev is given a small persisted index (8 bits, 0..254)
// and the id is `devIndex << 40 | st_ino` when st_ino < 2^40. When st_ino does not fit, the id is
// `255 << 40 | n` with n allocated from a persisted counter (and the (dev, ino) -> id mapping stored).
// Inode numbers reported to clients: `nodeId << 48 | localId`, unique across the cluster as long as
// node numbers are (16 bits of node number, 48 bits of local id), and stable across restarts.
//
// A handle is `version (1) | export id (2) | local id (6) | HMAC-SHA256(secret, first 9 bytes)[0..16]`.
// The secret is per node and kept in the state dir, so a forged handle or one minted by another node
// fails verification (ESTALE). LevelDB maps local id -> {parent id, name, dev, ino}: a directory
// rename rewrites one record, and on use the (dev, ino) found is checked against the record.
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
 * not report it. `others`: earlier names of a file with several hard links, newest first.
 */
export interface FileRecord extends FileName { dev: number; ino: bigint; btime: number; others?: FileName[] }

/** The stored form. Records written before names were bytes have `name` as text and `ino` as a number. */
interface StoredRecord {
  parent: string; name?: string; name64?: string; dev: number; ino: number | string; btime: number;
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
const sameIdentity = (a: FileRecord, b: FileRecord): boolean => a.dev === b.dev && a.ino === b.ino && a.btime === b.btime;

/** Every name a record knows, the newest first. */
export function namesOf(rec: FileRecord): FileName[] {
  return [{ parent: rec.parent, name: rec.name }, ...(rec.others ?? [])];
}

function withNames(rec: FileRecord, names: FileName[]): FileRecord {
  const unique: FileName[] = [];
  for (const n of names) if (!unique.some((u) => sameName(u, n))) unique.push({ parent: n.parent, name: ownName(n.name) });
  const [first, ...others] = unique;
  const out: FileRecord = { parent: first!.parent, name: first!.name, dev: rec.dev, ino: rec.ino, btime: rec.btime };
  if (others.length > 0) out.others = others.slice(0, MAX_OTHER_NAMES);
  return out;
}

function encode(rec: FileRecord): string {
  const stored: StoredRecord = {
    parent: rec.parent, name64: rec.name.toString('base64'), dev: rec.dev, ino: rec.ino.toString(), btime: rec.btime,
  };
  if (rec.others) stored.others = rec.others.map((o) => ({ parent: o.parent, name64: o.name.toString('base64') }));
  return JSON.stringify(stored);
}

function decode(raw: string): FileRecord {
  const s = JSON.parse(raw) as StoredRecord;
  const rec: FileRecord = {
    parent: s.parent,
    name: s.name64 !== undefined ? Buffer.from(s.name64, 'base64') : Buffer.from(s.name ?? '', 'utf8'),
    dev: s.dev, ino: BigInt(s.ino), btime: s.btime,
  };
  if (s.others) rec.others = s.others.map((o) => ({ parent: o.parent, name: Buffer.from(o.name64, 'base64') }));
  return rec;
}

const VERSION = 1;
const HANDLE_LENGTH = 25;
const MAC_LENGTH = 16;
const INO_BITS = 40n;
const ALLOCATED_DEV_INDEX = 255n;

export class HandleStore {
  private readonly records = new LRUCache<string, FileRecord>({ max: 200_000 });
  private readonly devIndexes = new Map<number, bigint>();
  // Handles already verified: saves the HMAC on the hot path (a handle's validity never changes).
  private readonly verified = new LRUCache<string, { exportId: number; id: bigint }>({ max: 100_000 });
  private constructor(private readonly db: Level<string, string>, private readonly secret: Buffer) {}

  static async open(dir: string): Promise<HandleStore> {
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    let secretHex = await db.get('secret');
    if (secretHex === undefined) {
      secretHex = randomBytes(32).toString('hex');
      await db.put('secret', secretHex);
    }
    return new HandleStore(db, Buffer.from(secretHex, 'hex'));
  }

  async close(): Promise<void> { await this.db.close(); }

  /** The persisted id of an export path; assigned on first sight, never reused. */
  async exportId(path: string): Promise<number> {
    const known = await this.db.get(`export:${path}`);
    if (known !== undefined) return Number(known);
    const next = Number((await this.db.get('export-next')) ?? '1');
    if (next > 0xffff) throw new Errno('ENOSPC', 'too many exports');
    await this.db.batch([{ type: 'put', key: `export:${path}`, value: String(next) }, { type: 'put', key: 'export-next', value: String(next + 1) }]);
    return next;
  }

  private async devIndex(dev: number): Promise<bigint> {
    const cached = this.devIndexes.get(dev);
    if (cached !== undefined) return cached;
    let value = await this.db.get(`dev:${dev}`);
    if (value === undefined) {
      const next = Number((await this.db.get('dev-next')) ?? '0');
      if (BigInt(next) >= ALLOCATED_DEV_INDEX) throw new Errno('ENOSPC', 'too many devices under the exports');
      value = String(next);
      await this.db.batch([{ type: 'put', key: `dev:${dev}`, value }, { type: 'put', key: 'dev-next', value: String(next + 1) }]);
    }
    const index = BigInt(value);
    this.devIndexes.set(dev, index);
    return index;
  }

  /** The node-local id of the file (dev, ino). */
  async localId(dev: number, ino: bigint): Promise<bigint> {
    const index = await this.devIndex(dev);
    if (ino < 1n << INO_BITS) return (index << INO_BITS) | ino;
    const key = `big:${dev}:${ino}`;
    const known = await this.db.get(key);
    if (known !== undefined) return BigInt(known);
    const n = BigInt((await this.db.get('big-next')) ?? '1');
    const id = (ALLOCATED_DEV_INDEX << INO_BITS) | n;
    await this.db.batch([{ type: 'put', key, value: id.toString() }, { type: 'put', key: 'big-next', value: (n + 1n).toString() }]);
    return id;
  }

  /**
   * Remembers that a file was seen under `rec`'s name; writes to LevelDB only when the record is
   * new or changed. When `linked` (a non-directory with more than one link) the names it was seen
   * under before are kept as other names: one of them may outlive the newest.
   */
  async remember(id: bigint, rec: FileRecord, linked = false): Promise<void> {
    const old = await this.record(id);
    if (old && sameIdentity(old, rec)) {
      if (sameName(old, rec)) return;
      await this.put(id, withNames(rec, linked ? [rec, ...namesOf(old)] : [rec]));
    } else {
      await this.put(id, withNames(rec, [rec]));
    }
  }

  /** The file was renamed from `from` to `rec`'s name: `from` is gone, its other names stay. */
  async moved(id: bigint, from: FileName, rec: FileRecord): Promise<void> {
    const old = await this.record(id);
    const kept = old && sameIdentity(old, rec) ? namesOf(old).filter((n) => !sameName(n, from)) : [];
    await this.put(id, withNames(rec, [rec, ...kept]));
  }

  /** The file was found under one of its other names: that one becomes the first tried. */
  async promote(id: bigint, at: FileName): Promise<void> {
    const old = await this.record(id);
    if (old && !sameName(old, at)) await this.put(id, withNames(old, [at, ...namesOf(old)]));
  }

  private async put(id: bigint, rec: FileRecord): Promise<void> {
    const key = id.toString();
    this.records.set(key, rec);
    await this.db.put(`file:${key}`, encode(rec));
  }

  async record(id: bigint): Promise<FileRecord | undefined> {
    const key = id.toString();
    return this.records.get(key) ?? (await this.load(key));
  }

  private async load(key: string): Promise<FileRecord | undefined> {
    const raw = await this.db.get(`file:${key}`);
    if (raw === undefined) return undefined;
    const rec = decode(raw);
    this.records.set(key, rec);
    return rec;
  }

  mint(exportId: number, id: bigint): Buffer {
    const handle = Buffer.alloc(HANDLE_LENGTH);
    handle.writeUInt8(VERSION, 0);
    handle.writeUInt16BE(exportId, 1);
    handle.writeUIntBE(Number(id), 3, 6);
    this.mac(handle.subarray(0, 9)).copy(handle, 9);
    return handle;
  }

  /** Verifies a handle; anything not minted by this node's secret is ESTALE. */
  parse(handle: unknown): { exportId: number; id: bigint } {
    if (!Buffer.isBuffer(handle) || handle.length !== HANDLE_LENGTH || handle[0] !== VERSION) throw new Errno('ESTALE', 'not a handle of this node');
    const key = handle.toString('latin1');
    const known = this.verified.get(key);
    if (known) return known;
    if (!timingSafeEqual(this.mac(handle.subarray(0, 9)), handle.subarray(9))) throw new Errno('ESTALE', 'handle not minted by this node');
    const parsed = { exportId: handle.readUInt16BE(1), id: BigInt(handle.readUIntBE(3, 6)) };
    this.verified.set(key, parsed);
    return parsed;
  }

  private mac(data: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(data).digest().subarray(0, MAC_LENGTH);
  }
}
