// Open files: fh -> fd. An fh is only a cache: Read/Write also carry the handle and open flags, so
// after a daemon restart (fh unknown) the file is reopened from its handle with the same checks.
import * as fs from 'node:fs';

const { O_WRONLY, O_RDWR } = fs.constants;
const O_ACCMODE = 3;

export interface OpenFile { fd: number; id: bigint; flags: number }

export class OpenFiles {
  private readonly files = new Map<bigint, OpenFile>();
  // Fresh fhs start from a random point so an fh from before a restart is unlikely to name another file.
  private next = BigInt(Date.now()) << 16n;

  add(file: OpenFile): bigint {
    const fh = ++this.next;
    this.files.set(fh, file);
    return fh;
  }

  /** The open file `fh` when it is open on file `id`. */
  get(fh: bigint, id: bigint): OpenFile | undefined {
    const f = this.files.get(fh);
    return f && f.id === id ? f : undefined;
  }

  getWritable(fh: bigint, id: bigint): number | undefined {
    const f = this.get(fh, id);
    if (!f) return undefined;
    const mode = f.flags & O_ACCMODE;
    return mode === O_WRONLY || mode === O_RDWR ? f.fd : undefined;
  }

  /** Adopts a reopened file under the fh the client already holds. */
  adopt(fh: bigint, file: OpenFile): void {
    const old = this.files.get(fh);
    if (old) fs.closeSync(old.fd);
    this.files.set(fh, file);
  }

  release(fh: bigint): OpenFile | undefined {
    const f = this.files.get(fh);
    if (!f) return undefined;
    this.files.delete(fh);
    fs.closeSync(f.fd);
    return f;
  }

  closeAll(): void {
    for (const f of this.files.values()) fs.closeSync(f.fd);
    this.files.clear();
  }
}
