// The files the kernel has open through this mount: the kernel's fh (ours, a small number) to the
// node's fh, the inode and the node's connection; and, per inode, which are open, so calls the
// kernel sends without an fh (fstat, fchmod, fchown, xattrs) can still go through an open file of
// it: on the node, a file whose last name is gone is reachable only that way, as on a local disk.
import type { MfsInode } from './inodes.js';
import type { NodeConn } from './node-conn.js';

type Remote = MfsInode & { kind: 'remote' };

export interface OpenFile {
  inode: Remote;
  conn: NodeConn;
  /** The node's fh. */
  fh: number | string;
  /** The open's flags, less those that only mean something at open. */
  flags: number;
  /** POSIX locks were taken through it: close must release the owner's. */
  locked: boolean;
}

const keyOf = (i: { node: number; ino: bigint }): string => `${i.node}:${i.ino}`;

export class OpenFiles {
  private readonly byFh = new Map<number, OpenFile>();
  private readonly byInode = new Map<string, Set<OpenFile>>();
  private nextFh = 1;

  /** Registers an open file; returns the kernel's fh for it. */
  add(file: OpenFile): number {
    const fh = this.nextFh++;
    this.byFh.set(fh, file);
    const key = keyOf(file.inode);
    const open = this.byInode.get(key);
    if (open) open.add(file);
    else this.byInode.set(key, new Set([file]));
    file.conn.openFiles++;
    return fh;
  }

  get(fh: number): OpenFile | undefined {
    return this.byFh.get(fh);
  }

  /** The kernel released `fh`: the file, no longer registered, or undefined if unknown. */
  remove(fh: number): OpenFile | undefined {
    const file = this.byFh.get(fh);
    if (!file) return undefined;
    this.byFh.delete(fh);
    const key = keyOf(file.inode);
    const open = this.byInode.get(key);
    open?.delete(file);
    if (open?.size === 0) this.byInode.delete(key);
    file.conn.openFiles--;
    return file;
  }

  /** The node's fh of some file open on `i`, or 0 when none is. */
  nodeFhOf(i: MfsInode): number | string {
    if (i.kind !== 'remote') return 0;
    const open = this.byInode.get(keyOf(i));
    return open ? open.values().next().value!.fh : 0;
  }
}
