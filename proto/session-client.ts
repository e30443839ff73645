// The client side of an omfs session (proto/session.proto): one bidirectional stream to one node's
// mfsd, over which every FileService operation is a request frame with an id; replies are matched
// to their requests by id, in whatever order they come. The methods mirror FileClient's
// (proto/file-client.ts): names and targets as Buffer or UTF-8 string, handles as Buffer, errors as
// Errno. 64-bit values come back as numbers when they fit in 2^53 and as decimal strings when they
// do not (inode numbers, directory cookies): pass them back as they are, or read them with
// Number()/BigInt(), which take both.
//
// Failure: when the stream fails or ends, every call in flight and every later call is rejected
// with an Errno: the one the server's status carries (EACCES for a Hello refused) or EHOSTDOWN (the
// node cannot be talked to). Nothing here throws from a gRPC callback (issue 8).
//
// Streams: the session's main stream carries every operation but reads and writes, which go on a
// second, bulk stream of the same session (SessionOptions.bulkStream), so that a getattr's reply
// is not queued behind whole 1 MiB messages: HTTP/2 interleaves the two streams' data.
//
// Not yet (issue 9, next steps): reconnect, leases, hard/soft mounts. 'invalidate' events are
// emitted for Invalidate frames and acknowledged after the listeners ran; no server sends any yet.
import { Client, credentials as grpcCredentials, Metadata, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Errno, statusToErrno, toErrno } from './errno.js';
import { nameBytes, type Caller, type Name } from './file-client.js';
import {
  SESSION_MAX_IO, SESSION_METHOD_PATH, SESSION_VERSION, decodeServerFrame, encodeClientFrame, type ServerFrameIn, type U64,
} from './session-codec.js';

export type { Caller, Name, U64 };
export interface Timespec { sec: U64; nsec: number }
export interface Attr {
  ino: U64; mode: number; nlink: number; uid: number; gid: number; rdev: U64; size: U64; blocks: U64;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}
export interface Entry { handle: Buffer; attr: Attr }
/** `entry` is absent when the caller may read the directory but not search it (names only). */
export interface DirEntry { name: Buffer; cookie: U64; entry?: Entry }
export interface LockReply { conflict: boolean; start: U64; end: U64; type: number; pid: number }
export interface Welcome { node: number; boot_id: Buffer; max_in_flight: number; max_io: number; version: number }
export interface Invalidation { seq: U64; what?: string; [field: string]: unknown }

export interface SessionOptions {
  /** This client's node number: under mutual TLS it must be the one its certificate names (node<N>). */
  node: number;
  /** Default: 16 random bytes. */
  sessionId?: Buffer;
  /** Default: one random id per process (a restarted client is a new client). */
  bootId?: Buffer;
  /** Extra gRPC channel options (e.g. grpc.use_local_subchannel_pool for a connection of its own). */
  channelOptions?: ChannelOptions;
  /** Reads and writes on a bulk stream of their own (default true); false: everything on one stream. */
  bulkStream?: boolean;
}

const PROCESS_BOOT_ID = randomBytes(16);
/** Hello.channel: the session's main stream, a bulk stream joining it. */
const MAIN = 0;
const BULK = 1;
/** 1 MiB requests one read() keeps in flight. */
const READ_AHEAD = 8;
const identity = (b: Buffer): Buffer => b;

interface Waiting { expect: string; resolve(v: unknown): void; reject(e: Errno): void }

export class Session extends EventEmitter {
  private readonly client: Client;
  private readonly stream: ClientDuplexStream<Buffer, Buffer>;
  /** Where reads and writes go: the bulk stream once it is open, else the main one. */
  private bulk: ClientDuplexStream<Buffer, Buffer>;
  private readonly pending = new Map<number, Waiting>();
  private nextId = 0;
  /** Set once: the stream failed or ended; every call is rejected with it. */
  private failure: Errno | null = null;
  /** What the server said in its Welcome. */
  welcome: Welcome | null = null;

  private constructor(address: string, creds: ChannelCredentials, opts: SessionOptions) {
    super();
    this.client = new Client(address, creds, { 'grpc.max_receive_message_length': 8 * SESSION_MAX_IO, ...opts.channelOptions });
    this.stream = this.openStream();
    this.bulk = this.stream;
  }

  /** A stream of this session; its replies resolve the shared pending calls, its failure fails the session. */
  private openStream(): ClientDuplexStream<Buffer, Buffer> {
    const stream = this.client.makeBidiStreamRequest(SESSION_METHOD_PATH, identity, identity, new Metadata());
    stream.on('data', (buf: Buffer) => this.guard(() => this.onFrame(buf, stream)));
    stream.on('error', (err: ServiceError) => this.guard(() => this.fail(this.errnoOf(err))));
    stream.on('end', () => this.guard(() => this.fail(new Errno('EHOSTDOWN', 'the session stream ended'))));
    return stream;
  }

  /** Opens a session (Hello, Welcome). Rejects with the server's Errno (EACCES: wrong node) or EHOSTDOWN. */
  static async open(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure(), opts: SessionOptions): Promise<Session> {
    const s = new Session(address, creds, opts);
    const hello = { node: opts.node, session_id: opts.sessionId ?? randomBytes(16), boot_id: opts.bootId ?? PROCESS_BOOT_ID, version: SESSION_VERSION };
    try {
      s.welcome = await s.request<Welcome>('hello', { ...hello, channel: MAIN }, 'welcome');
      if (opts.bulkStream ?? true) {
        const bulk = s.openStream();
        await s.request<Welcome>('hello', { ...hello, channel: BULK }, 'welcome', bulk);
        s.bulk = bulk;
      }
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  /** Ends the session: the server closes its open files and drops its locks. Calls in flight fail EHOSTDOWN. */
  close(): void {
    this.fail(new Errno('EHOSTDOWN', 'session closed'));
    for (const stream of new Set([this.bulk, this.stream])) {
      try {
        stream.cancel();
      } catch {
        // already gone
      }
    }
    this.client.close();
  }

  /** Requests in flight (tests, diagnostics). */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one operation (the ClientFrame field name, e.g. 'get_attr') and resolves with its reply
   * message (the ServerFrame field `expect`). Every typed method below is this.
   */
  request<T>(op: string, req: object, expect: string, stream = this.stream): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      try {
        const id = this.freeId();
        const frame = encodeClientFrame({ id, [op]: req });
        this.pending.set(id, { expect, resolve: resolve as (v: unknown) => void, reject });
        stream.write(frame);
      } catch (err) {
        reject(toErrno(err));
      }
    });
  }

  private freeId(): number {
    do {
      this.nextId = (this.nextId + 1) >>> 0;
    } while (this.nextId === 0 || this.pending.has(this.nextId));
    return this.nextId;
  }

  private onFrame(buf: Buffer, from: ClientDuplexStream<Buffer, Buffer>): void {
    let f: ServerFrameIn;
    try {
      f = decodeServerFrame(buf);
    } catch {
      return this.fail(new Errno('EIO', 'undecodable frame from the server'));
    }
    if (f.reply === 'invalidate') {
      const inv = f['invalidate'] as Invalidation;
      this.emit('invalidate', inv);
      from.write(encodeClientFrame({ id: 0, ack: { seq: inv.seq } }));
      return;
    }
    const w = this.pending.get(f.id);
    // id 0 (a frame the server could not read) or an id not in flight (a duplicate): nothing waits.
    if (!w) return;
    this.pending.delete(f.id);
    if (f.reply === 'error') {
      const e = f['error'] as { errno: number; message: string };
      w.reject(Errno.fromNumber(e.errno, e.message));
    } else if (f.reply === w.expect) {
      w.resolve(f[f.reply]);
    } else {
      w.reject(new Errno('EIO', `unexpected reply ${f.reply ?? 'none'} (expected ${w.expect})`));
    }
  }

  private errnoOf(err: ServiceError): Errno {
    const e = statusToErrno(err);
    // A status without our errno is the transport's failure: the node cannot be talked to.
    return err.metadata?.get('omfs-errno').length ? e : new Errno('EHOSTDOWN', e.message);
  }

  private fail(err: Errno): void {
    if (this.failure) return;
    this.failure = err;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiting) w.reject(err);
  }

  /** Runs a stream event handler; whatever it throws fails the session instead of escaping into grpc-js. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(toErrno(err));
    }
  }

  // ---- typed operations (as FileClient) ----

  root(caller: Caller, exportPath: string): Promise<Entry> { return this.request('root', { caller, export_path: exportPath }, 'entry'); }
  lookup(caller: Caller, dir: Buffer, name: Name): Promise<Entry> { return this.request('lookup', { caller, dir, name: nameBytes(name) }, 'entry'); }
  async getAttr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Attr> {
    return (await this.request<{ attr: Attr }>('get_attr', { caller, handle, fh }, 'attr')).attr;
  }
  async setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr> {
    return (await this.request<{ attr: Attr }>('set_attr', { caller, handle, ...fields }, 'attr')).attr;
  }
  access(caller: Caller, handle: Buffer, mask: number): Promise<unknown> { return this.request('access', { caller, handle, mask }, 'empty'); }
  mkdir(caller: Caller, dir: Buffer, name: Name, mode = 0o755, umask = 0): Promise<Entry> {
    return this.request('mkdir', { caller, dir, name: nameBytes(name), mode, umask }, 'entry');
  }
  mknod(caller: Caller, dir: Buffer, name: Name, mode: number, umask = 0, rdev: U64 = 0): Promise<Entry> {
    return this.request('mknod', { caller, dir, name: nameBytes(name), mode, umask, rdev }, 'entry');
  }
  create(caller: Caller, dir: Buffer, name: Name, flags: number, mode = 0o644, umask = 0): Promise<{ entry: Entry; fh: U64 }> {
    return this.request('create', { caller, dir, name: nameBytes(name), flags, mode, umask }, 'create');
  }
  async open(caller: Caller, handle: Buffer, flags: number): Promise<U64> {
    return (await this.request<{ fh: U64 }>('open', { caller, handle, flags }, 'open')).fh;
  }
  /** flushLocks: also drop the locks `clientId:lockOwner` holds on the file (close(2) semantics). */
  release(caller: Caller, fh: U64, handle?: Buffer, locks?: { clientId: string; lockOwner: U64 }): Promise<unknown> {
    return this.request('release', {
      caller, fh, handle, flush_locks: locks !== undefined, client_id: locks?.clientId ?? '', lock_owner: locks?.lockOwner ?? 0,
    }, 'empty');
  }
  unlink(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.request('unlink', { caller, dir, name: nameBytes(name) }, 'empty'); }
  rmdir(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.request('rmdir', { caller, dir, name: nameBytes(name) }, 'empty'); }
  /** flags: 1 = RENAME_NOREPLACE, 2 = RENAME_EXCHANGE. */
  rename(caller: Caller, oldDir: Buffer, oldName: Name, newDir: Buffer, newName: Name, flags = 0): Promise<unknown> {
    return this.request('rename', { caller, old_dir: oldDir, old_name: nameBytes(oldName), new_dir: newDir, new_name: nameBytes(newName), flags }, 'empty');
  }
  link(caller: Caller, handle: Buffer, newDir: Buffer, newName: Name): Promise<Entry> {
    return this.request('link', { caller, handle, new_dir: newDir, new_name: nameBytes(newName) }, 'entry');
  }
  symlink(caller: Caller, dir: Buffer, name: Name, target: Name): Promise<Entry> {
    return this.request('symlink', { caller, dir, name: nameBytes(name), target: nameBytes(target) }, 'entry');
  }
  async readlink(caller: Caller, handle: Buffer): Promise<Buffer> {
    return (await this.request<{ target: Buffer }>('readlink', { caller, handle }, 'link_target')).target;
  }
  statFs(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<Record<string, U64>> { return this.request('stat_fs', { caller, handle, fh }, 'stat_fs'); }
  fsync(caller: Caller, handle: Buffer, fh: U64, datasync = false): Promise<unknown> { return this.request('fsync', { caller, handle, fh, datasync }, 'empty'); }
  /** mode: Linux FALLOC_FL_* bits, passed to fallocate(2) as they are. */
  fallocate(caller: Caller, handle: Buffer, fh: U64, offset: number, length: number, mode = 0): Promise<unknown> {
    return this.request('fallocate', { caller, handle, fh, offset, length, mode }, 'empty');
  }
  async getXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<Buffer> {
    return (await this.request<{ value: Buffer }>('get_xattr', { caller, handle, name, fh }, 'xattr')).value;
  }
  /** flags: 1 = XATTR_CREATE, 2 = XATTR_REPLACE. */
  setXattr(caller: Caller, handle: Buffer, name: string, value: Buffer, flags = 0, fh: U64 = 0): Promise<unknown> {
    return this.request('set_xattr', { caller, handle, name, value, flags, fh }, 'empty');
  }
  async listXattr(caller: Caller, handle: Buffer, fh: U64 = 0): Promise<string[]> {
    return (await this.request<{ names: string[] }>('list_xattr', { caller, handle, fh }, 'xattr_names')).names;
  }
  removeXattr(caller: Caller, handle: Buffer, name: string, fh: U64 = 0): Promise<unknown> {
    return this.request('remove_xattr', { caller, handle, name, fh }, 'empty');
  }
  /** type: 0 = F_RDLCK, 1 = F_WRLCK, 2 = F_UNLCK; end inclusive. */
  getLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<LockReply> { return this.request('get_lk', lockReq(caller, handle, lock), 'lock'); }
  setLk(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.request('set_lk', lockReq(caller, handle, lock), 'empty'); }
  /** Waits for the lock (until it is granted, the session ends, or deadlock: EDEADLK). */
  setLkW(caller: Caller, handle: Buffer, lock: LockArgs): Promise<unknown> { return this.request('set_lkw', lockReq(caller, handle, lock), 'empty'); }

  /** One read of at most 1 MiB: one request, one reply. */
  async readChunk(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags = 0): Promise<Buffer> {
    return (await this.request<{ data: Buffer }>('read', { caller, handle, fh, flags, offset, size }, 'data', this.bulk)).data;
  }

  /**
   * Reads up to `size` bytes at `offset` in 1 MiB requests, READ_AHEAD of them in flight at a time
   * (well under any server's in-flight cap); stops at the first short one (end of file).
   */
  async read(caller: Caller, handle: Buffer, fh: U64, offset: number, size: number, flags = 0): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let off = 0; off < size || off === 0; off += READ_AHEAD * SESSION_MAX_IO) {
      const batch: Array<Promise<Buffer>> = [];
      for (let k = 0; k < READ_AHEAD && (off + k * SESSION_MAX_IO < size || (size === 0 && k === 0)); k++) {
        const at = off + k * SESSION_MAX_IO;
        batch.push(this.readChunk(caller, handle, fh, offset + at, Math.min(SESSION_MAX_IO, size - at), flags));
      }
      const got = await Promise.all(batch);
      for (let k = 0; k < got.length; k++) {
        parts.push(got[k]!);
        if (got[k]!.length < Math.min(SESSION_MAX_IO, size - off - k * SESSION_MAX_IO)) return Buffer.concat(parts);
      }
      if (size === 0) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** One write of at most 1 MiB; resolves with the bytes written. */
  async writeChunk(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags = 0): Promise<number> {
    return Number((await this.request<{ written: U64 }>('write', { caller, handle, fh, flags, offset, data }, 'written', this.bulk)).written);
  }

  /** Writes `data` at `offset` in 1 MiB requests, one after the other (O_APPEND keeps their order). */
  async write(caller: Caller, handle: Buffer, fh: U64, offset: number, data: Buffer, flags = 0): Promise<number> {
    let written = 0;
    for (let off = 0; off < data.length || off === 0; off += SESSION_MAX_IO) {
      written += await this.writeChunk(caller, handle, fh, offset + off, data.subarray(off, off + SESSION_MAX_IO), flags);
      if (data.length === 0) break;
    }
    return written;
  }

  /** One batch of entries after `cookie` (at most 1024) and whether the listing ended. */
  async readDirBatch(caller: Caller, dir: Buffer, cookie: U64 = 0): Promise<{ entries: DirEntry[]; eof: boolean }> {
    const b = await this.request<{ entries: DirEntry[]; eof: boolean }>('read_dir', { caller, dir, cookie }, 'dir');
    return { entries: b.entries.map((e) => (e.entry ? e : { name: e.name, cookie: e.cookie })), eof: b.eof };
  }

  /** All entries after `cookie`, batch after batch. */
  async readDir(caller: Caller, dir: Buffer, cookie: U64 = 0): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    for (let at = cookie; ;) {
      const { entries, eof } = await this.readDirBatch(caller, dir, at);
      out.push(...entries);
      if (eof || entries.length === 0) return out;
      at = entries[entries.length - 1]!.cookie;
    }
  }
}

export interface LockArgs { clientId: string; lockOwner: U64; start: U64; end: U64; type: number }
const lockReq = (caller: Caller, handle: Buffer, l: LockArgs): object => ({
  caller, handle, client_id: l.clientId, lock_owner: l.lockOwner, start: l.start, end: l.end, type: l.type,
});
