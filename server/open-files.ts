// Open files: fh -> fd. An fh is only a cache: Read/Write also carry the handle and open flags, so
// after a daemon restart (fh unknown) the file is reopened from its handle with the same checks.
import * as fs from 'node:fs';

const { O_WRONLY, O_RDWR } = fs.constants;
const O_ACCMODE = 3;

/** An open file; `uid` is the caller it was opened for: only that caller may use it through its fh. */
export interface OpenFile { fd: number; id: bigint; flags: number; uid: number }

export function openForWriting(f: OpenFile): boolean {
  const mode = f.flags & O_ACCMODE;
  return mode === O_WRONLY || mode === O_RDWR;
}

export class OpenFiles {
  private readonly files = new Map<bigint, OpenFile>();
  // Fresh fhs start from a random point so an fh from before a restart is unlikely to name another file.
  private next = BigInt(Date.now()) << 16n;

  add(file: OpenFile): bigint {
    const fh = ++this.next;
    this.files.set(fh, file);
    return fh;
  }

  /** The open file `fh` when it is open on file `id` for caller `uid` (anything else must reopen with checks). */
  get(fh: bigint, id: bigint, uid: number): OpenFile | undefined {
    const f = this.files.get(fh);
    return f && f.id === id && f.uid === uid ? f : undefined;
  }

  /**
   * Adopts a reopened file under the fh the client already holds (after a restart). Returns false
   * when that fh is in use by another open file: the caller then uses the file for this call only.
   */
  adopt(fh: bigint, file: OpenFile): boolean {
    if (fh === 0n || this.files.has(fh)) return false;
    this.files.set(fh, file);
    return true;
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
