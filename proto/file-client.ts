// A small typed client for the omfs FileService: promises instead of callbacks, errors as Errno
// (statusToErrno), large reads/writes split into streamed 1 MiB chunks.
import { credentials as grpcCredentials, type ChannelCredentials, type Client, type ServiceError, type ClientReadableStream } from '@grpc/grpc-js';
import { Errno, statusToErrno } from './errno.js';
import { loadFileServiceConstructor } from './load.js';

export interface Caller { uid: number; gid: number; groups: number[]; pid: number }
export interface Timespec { sec: string; nsec: number }
export interface Attr {
  ino: string; mode: number; nlink: number; uid: number; gid: number; rdev: string; size: string; blocks: string;
  blksize: number; atime: Timespec; mtime: Timespec; ctime: Timespec;
}
export interface Entry { handle: Buffer; attr: Attr }
export interface DirEntry { name: string; cookie: string; entry: Entry }
export interface LockReply { conflict: boolean; start: string; end: string; type: number; pid: number }

export const ROOT_CALLER: Caller = { uid: 0, gid: 0, groups: [], pid: process.pid };
const CHUNK = 1 << 20;

type UnaryFn = (req: object, cb: (err: ServiceError | null, reply: unknown) => void) => unknown;

export class FileClient {
  readonly raw: Client & Record<string, unknown>;

  constructor(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure()) {
    const Ctor = loadFileServiceConstructor();
    this.raw = new Ctor(address, creds, { 'grpc.max_receive_message_length': 8 * CHUNK }) as Client & Record<string, unknown>;
  }

  close(): void { this.raw.close(); }

  /** Any unary RPC by name. */
  call<T>(method: string, req: object): Promise<T> {
    const fn = this.raw[method] as UnaryFn | undefined;
    if (!fn) return Promise.reject(new Errno('ENOSYS', method));
    return new Promise<T>((resolve, reject) => {
      fn.call(this.raw, req, (err, reply) => (err ? reject(statusToErrno(err)) : resolve(reply as T)));
    });
  }

  root(caller: Caller, exportPath: string): Promise<Entry> { return this.call('Root', { caller, export_path: exportPath }); }
  lookup(caller: Caller, dir: Buffer, name: string): Promise<Entry> { return this.call('Lookup', { caller, dir, name }); }
  async getAttr(caller: Caller, handle: Buffer): Promise<Attr> { return (await this.call<{ attr: Attr }>('GetAttr', { caller, handle })).attr; }
  async setAttr(caller: Caller, handle: Buffer, fields: Record<string, unknown>): Promise<Attr> {
    return (await this.call<{ attr: Attr }>('SetAttr', { caller, handle, ...fields })).attr;
  }
  mkdir(caller: Caller, dir: Buffer, name: string, mode = 0o755, umask = 0): Promise<Entry> { return this.call('Mkdir', { caller, dir, name, mode, umask }); }
  create(caller: Caller, dir: Buffer, name: string, flags: number, mode = 0o644, umask = 0): Promise<{ entry: Entry; fh: string }> {
    return this.call('Create', { caller, dir, name, flags, mode, umask });
  }
  async open(caller: Caller, handle: Buffer, flags: number): Promise<string> { return (await this.call<{ fh: string }>('Open', { caller, handle, flags })).fh; }
  release(caller: Caller, fh: string, handle?: Buffer): Promise<unknown> { return this.call('Release', { caller, fh, handle }); }
  unlink(caller: Caller, dir: Buffer, name: string): Promise<unknown> { return this.call('Unlink', { caller, dir, name }); }
  rmdir(caller: Caller, dir: Buffer, name: string): Promise<unknown> { return this.call('Rmdir', { caller, dir, name }); }
  rename(caller: Caller, oldDir: Buffer, oldName: string, newDir: Buffer, newName: string, flags = 0): Promise<unknown> {
    return this.call('Rename', { caller, old_dir: oldDir, old_name: oldName, new_dir: newDir, new_name: newName, flags });
  }
  symlink(caller: Caller, dir: Buffer, name: string, target: string): Promise<Entry> { return this.call('Symlink', { caller, dir, name, target }); }
  async readlink(caller: Caller, handle: Buffer): Promise<string> { return (await this.call<{ target: string }>('Readlink', { caller, handle })).target; }

  /** Reads up to `size` bytes at `offset` (streamed in chunks, no message-size cap). */
  read(caller: Caller, handle: Buffer, fh: string, offset: number, size: number, flags = 0): Promise<Buffer> {
    const stream = (this.raw['Read'] as (req: object) => ClientReadableStream<{ data: Buffer }>).call(this.raw, {
      caller, handle, fh, flags, offset: String(offset), size: String(size),
    });
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: { data: Buffer }) => parts.push(c.data));
      stream.on('error', (err: ServiceError) => reject(statusToErrno(err)));
      stream.on('end', () => resolve(Buffer.concat(parts)));
    });
  }

  /** Writes `data` at `offset` as a stream of 1 MiB chunks; resolves with the bytes written. */
  write(caller: Caller, handle: Buffer, fh: string, offset: number, data: Buffer, flags = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = (this.raw['Write'] as (cb: (err: ServiceError | null, r?: { written: string }) => void) => NodeJS.WritableStream)
        .call(this.raw, (err, r) => (err ? reject(statusToErrno(err)) : resolve(Number(r?.written ?? 0))));
      for (let off = 0; off < data.length || (off === 0 && data.length === 0); off += CHUNK) {
        stream.write({ caller, handle, fh, flags, offset: String(offset + off), data: data.subarray(off, off + CHUNK) } as never);
        if (data.length === 0) break;
      }
      stream.end();
    });
  }

  /** All entries after `cookie`. */
  readDir(caller: Caller, dir: Buffer, cookie = '0'): Promise<DirEntry[]> {
    const stream = (this.raw['ReadDir'] as (req: object) => ClientReadableStream<DirEntry>).call(this.raw, { caller, dir, cookie });
    return new Promise((resolve, reject) => {
      const out: DirEntry[] = [];
      stream.on('data', (e: DirEntry) => out.push(e));
      stream.on('error', (err: ServiceError) => reject(statusToErrno(err)));
      stream.on('end', () => resolve(out));
    });
  }
}
