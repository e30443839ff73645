// A small typed client for the omfs FileService: promises instead of callbacks, errors as Errno
// (statusToErrno), large reads/writes split into streamed 1 MiB chunks. Names and symlink targets
// are bytes on the wire: pass a Buffer to send one exactly (a string is sent as its UTF-8 bytes);
// names and targets come back as Buffers.
//
// Never throws from a gRPC callback or stream event (issue 8: a TypeError there killed every
// FileClient user when a node was down): every failure, whatever it is, rejects the call's promise
// with an Errno. A node that cannot be reached (nothing listens, TLS refused either way) is
// EHOSTDOWN (proto/errno.ts statusToErrno).
import { credentials as grpcCredentials, type ChannelCredentials, type ChannelOptions, type Client, type ServiceError, type ClientReadableStream } from '@grpc/grpc-js';
import { Errno, statusToErrno, toErrno } from './errno.js';
import { loadFileServiceConstructor } from './load.js';

export interface Caller { uid: number; gid: number; groups: number[]; pid: number }
export interface Timespec { sec: string; nsec: number }
export interface Attr {
  ino: string; mode: number; nlink: number; uid: number; gid: number; rdev: string; size: string; blocks: string;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}
export interface Entry { handle: Buffer; attr: Attr }
/** `entry` is absent when the caller may read the directory but not search it (names only). */
export interface DirEntry { name: Buffer; cookie: string; entry?: Entry }
/** A file name or symlink target: bytes, or a string sent as UTF-8. */
export type Name = Buffer | string;
export interface LockReply { conflict: boolean; start: string; end: string; type: number; pid: number }

export const ROOT_CALLER: Caller = { uid: 0, gid: 0, groups: [], pid: process.pid };
const CHUNK = 1 << 20;

/** A name as the bytes the wire carries (proto-loader would read a string as base64). */
export const nameBytes = (n: Name): Buffer => (typeof n === 'string' ? Buffer.from(n, 'utf8') : n);

type UnaryFn = (req: object, cb: (err: ServiceError | null, reply: unknown) => void) => unknown;

/** Runs `fn`; anything it throws rejects with an Errno instead of escaping into gRPC's event code. */
function guarded<A extends unknown[]>(reject: (e: Errno) => void, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      reject(toErrno(err));
    }
  };
}

export class FileClient {
  readonly raw: Client & Record<string, unknown>;

  /** options: extra gRPC channel options (e.g. grpc.use_local_subchannel_pool for a connection of its own). */
  constructor(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure(), options: ChannelOptions = {}) {
    const Ctor = loadFileServiceConstructor();
    this.raw = new Ctor(address, creds, { 'grpc.max_receive_message_length': 8 * CHUNK, ...options }) as Client & Record<string, unknown>;
  }

  close(): void { this.raw.close(); }

  /** Any unary RPC by name. */
  call<T>(method: string, req: object): Promise<T> {
    const fn = this.raw[method] as UnaryFn | undefined;
    if (!fn) return Promise.reject(new Errno('ENOSYS', method));
    return new Promise<T>((resolve, reject) => {
      guarded(reject, () => {
        fn.call(this.raw, req, guarded(reject, (err: ServiceError | null, reply: unknown) => (err ? reject(statusToErrno(err)) : resolve(reply as T))));
      })();
    });
  }

  root(caller: Caller, exportPath: string): Promise<Entry> { return this.call('Root', { caller, export_path: exportPath }); }
  lookup(caller: Caller, dir: Buffer, name: Name): Promise<Entry> { return this.call('Lookup', { caller, dir, name: nameBytes(name) }); }
  /** fh: an open file of this caller, used instead of the handle's name (an unlinked open file works). */
  async getAttr(caller: Caller, handle: Buffer, fh = '0'): Promise<Attr> { return (await this.call<{ attr: Attr }>('GetAttr', { caller, handle, fh })).attr; }
  async setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr> {
    return (await this.call<{ attr: Attr }>('SetAttr', { caller, handle, ...fields })).attr;
  }
  access(caller: Caller, handle: Buffer, mask: number): Promise<unknown> { return this.call('Access', { caller, handle, mask }); }
  mkdir(caller: Caller, dir: Buffer, name: Name, mode = 0o755, umask = 0): Promise<Entry> { return this.call('Mkdir', { caller, dir, name: nameBytes(name), mode, umask }); }
  /** mode carries the file type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFREG); rdev a Linux dev_t. */
  mknod(caller: Caller, dir: Buffer, name: Name, mode: number, umask = 0, rdev: number | string = 0): Promise<Entry> {
    return this.call('Mknod', { caller, dir, name: nameBytes(name), mode, umask, rdev: String(rdev) });
  }
  create(caller: Caller, dir: Buffer, name: Name, flags: number, mode = 0o644, umask = 0): Promise<{ entry: Entry; fh: string }> {
    return this.call('Create', { caller, dir, name: nameBytes(name), flags, mode, umask });
  }
  async open(caller: Caller, handle: Buffer, flags: number): Promise<string> { return (await this.call<{ fh: string }>('Open', { caller, handle, flags })).fh; }
  release(caller: Caller, fh: string, handle?: Buffer): Promise<unknown> { return this.call('Release', { caller, fh, handle }); }
  unlink(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.call('Unlink', { caller, dir, name: nameBytes(name) }); }
  rmdir(caller: Caller, dir: Buffer, name: Name): Promise<unknown> { return this.call('Rmdir', { caller, dir, name: nameBytes(name) }); }
  /** flags: 1 = RENAME_NOREPLACE, 2 = RENAME_EXCHANGE. */
  rename(caller: Caller, oldDir: Buffer, oldName: Name, newDir: Buffer, newName: Name, flags = 0): Promise<unknown> {
    return this.call('Rename', { caller, old_dir: oldDir, old_name: nameBytes(oldName), new_dir: newDir, new_name: nameBytes(newName), flags });
  }
  link(caller: Caller, handle: Buffer, newDir: Buffer, newName: Name): Promise<Entry> {
    return this.call('Link', { caller, handle, new_dir: newDir, new_name: nameBytes(newName) });
  }
  symlink(caller: Caller, dir: Buffer, name: Name, target: Name): Promise<Entry> {
    return this.call('Symlink', { caller, dir, name: nameBytes(name), target: nameBytes(target) });
  }
  async readlink(caller: Caller, handle: Buffer): Promise<Buffer> { return (await this.call<{ target: Buffer }>('Readlink', { caller, handle })).target; }
  statFs(caller: Caller, handle: Buffer, fh = '0'): Promise<Record<string, string | number>> { return this.call('StatFs', { caller, handle, fh }); }
  fsync(caller: Caller, handle: Buffer, fh: string, datasync = false): Promise<unknown> { return this.call('Fsync', { caller, handle, fh, datasync }); }
  /** mode: Linux FALLOC_FL_* bits, passed to fallocate(2) as they are. */
  fallocate(caller: Caller, handle: Buffer, fh: string, offset: number, length: number, mode = 0): Promise<unknown> {
    return this.call('Fallocate', { caller, handle, fh, offset: String(offset), length: String(length), mode });
  }
  async getXattr(caller: Caller, handle: Buffer, name: string, fh = '0'): Promise<Buffer> {
    return (await this.call<{ value: Buffer }>('GetXattr', { caller, handle, name, fh })).value;
  }
  /** flags: 1 = XATTR_CREATE, 2 = XATTR_REPLACE. */
  setXattr(caller: Caller, handle: Buffer, name: string, value: Buffer, flags = 0, fh = '0'): Promise<unknown> {
    return this.call('SetXattr', { caller, handle, name, value, flags, fh });
  }
  async listXattr(caller: Caller, handle: Buffer, fh = '0'): Promise<string[]> {
    return (await this.call<{ names: string[] }>('ListXattr', { caller, handle, fh })).names;
  }
  removeXattr(caller: Caller, handle: Buffer, name: string, fh = '0'): Promise<unknown> { return this.call('RemoveXattr', { caller, handle, name, fh }); }

  /** Reads up to `size` bytes at `offset` (streamed in chunks, no message-size cap). */
  read(caller: Caller, handle: Buffer, fh: string, offset: number, size: number, flags = 0): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      guarded(reject, () => {
        const stream = (this.raw['Read'] as (req: object) => ClientReadableStream<{ data: Buffer }>).call(this.raw, {
          caller, handle, fh, flags, offset: String(offset), size: String(size),
        });
        const parts: Buffer[] = [];
        stream.on('data', guarded(reject, (c: { data: Buffer }) => void parts.push(c.data)));
        stream.on('error', guarded(reject, (err: ServiceError) => reject(statusToErrno(err))));
        stream.on('end', guarded(reject, () => resolve(Buffer.concat(parts))));
      })();
    });
  }

  /** Writes `data` at `offset` as a stream of 1 MiB chunks; resolves with the bytes written. */
  write(caller: Caller, handle: Buffer, fh: string, offset: number, data: Buffer, flags = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      guarded(reject, () => {
        const stream = (this.raw['Write'] as (cb: (err: ServiceError | null, r?: { written: string }) => void) => NodeJS.WritableStream)
          .call(this.raw, guarded(reject, (err: ServiceError | null, r?: { written: string }) => (err ? reject(statusToErrno(err)) : resolve(Number(r?.written ?? 0)))));
        // A failed call also emits 'error' on the stream; the callback above already rejected.
        stream.on('error', () => {});
        for (let off = 0; off < data.length || (off === 0 && data.length === 0); off += CHUNK) {
          stream.write({ caller, handle, fh, flags, offset: String(offset + off), data: data.subarray(off, off + CHUNK) } as never);
          if (data.length === 0) break;
        }
        stream.end();
      })();
    });
  }

  /** All entries after `cookie`. */
  readDir(caller: Caller, dir: Buffer, cookie = '0'): Promise<DirEntry[]> {
    return new Promise((resolve, reject) => {
      guarded(reject, () => {
        const stream = (this.raw['ReadDir'] as (req: object) => ClientReadableStream<DirEntry>).call(this.raw, { caller, dir, cookie });
        const out: DirEntry[] = [];
        stream.on('data', guarded(reject, (e: DirEntry) => void out.push(e)));
        stream.on('error', guarded(reject, (err: ServiceError) => reject(statusToErrno(err))));
        stream.on('end', guarded(reject, () => resolve(out)));
      })();
    });
  }
}
