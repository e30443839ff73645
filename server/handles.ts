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
import { Level } from 'level';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Errno } from '../proto/errno.js';

/**
 * Where a file lives. `btime` (birth time, ms) tells a file from a later one that reuses its inode
 * number (the NFS "generation" problem); 0 when the filesystem does not report it.
 */
export interface FileRecord { parent: string /* local id as decimal, '' for an export root */; name: string; dev: number; ino: number; btime: number }

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
  async localId(dev: number, ino: number): Promise<bigint> {
    const index = await this.devIndex(dev);
    const bigIno = BigInt(ino);
    if (bigIno < 1n << INO_BITS) return (index << INO_BITS) | bigIno;
    const key = `big:${dev}:${ino}`;
    const known = await this.db.get(key);
    if (known !== undefined) return BigInt(known);
    const n = BigInt((await this.db.get('big-next')) ?? '1');
    const id = (ALLOCATED_DEV_INDEX << INO_BITS) | n;
    await this.db.batch([{ type: 'put', key, value: id.toString() }, { type: 'put', key: 'big-next', value: (n + 1n).toString() }]);
    return id;
  }

  /** Remembers where a file lives; writes to LevelDB only when the record is new or changed. */
  async remember(id: bigint, rec: FileRecord): Promise<void> {
    const key = id.toString();
    const old = this.records.get(key) ?? (await this.load(key));
    if (old && old.parent === rec.parent && old.name === rec.name && old.dev === rec.dev && old.ino === rec.ino && old.btime === rec.btime) return;
    this.records.set(key, rec);
    await this.db.put(`file:${key}`, JSON.stringify(rec));
  }

  async record(id: bigint): Promise<FileRecord | undefined> {
    const key = id.toString();
    return this.records.get(key) ?? (await this.load(key));
  }

  private async load(key: string): Promise<FileRecord | undefined> {
    const raw = await this.db.get(`file:${key}`);
    if (raw === undefined) return undefined;
    const rec = JSON.parse(raw) as FileRecord;
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
