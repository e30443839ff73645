// fd-based I/O as promises over Node's callback API: lighter than FileHandle objects, and positions
// are always explicit so concurrent READs/WRITEs of one handle never share a file offset.
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export const open = promisify(fs.open);
export const close = promisify(fs.close);
export const fstat = (fd: number): Promise<fs.BigIntStats> =>
  new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (e, s) => (e ? reject(e) : resolve(s))));
export const fchmod = promisify(fs.fchmod);
export const fchown = promisify(fs.fchown);
export const ftruncate = promisify(fs.ftruncate);
export const fsync = promisify(fs.fsync);
export const fdatasync = promisify(fs.fdatasync);
export const futimes = promisify(fs.futimes);

export function pread(fd: number, size: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, 0, size, position, (e, n) => (e ? reject(e) : resolve(n === size ? buf : buf.subarray(0, n)))),
  );
}

export function pwrite(fd: number, data: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, data, 0, data.length, position, (e, n) => (e ? reject(e) : resolve(n))),
  );
}
