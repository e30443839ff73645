// The control file that replaces openMosix's /proc/self/selected: /mfs/.control/selected
// (SELECTED_CONTROL_PATH). Like a /proc/self file it answers for the caller:
// - read: the calling process's selected node and a newline ("3\n"), or "0\n" when it has none
//   (node ids start at 1, so 0 means "none", as openMosix's "0 = no node" convention);
// - write: a node number (surrounding blanks and a trailing newline allowed: `echo 3 > ...`) sets
//   it for the calling process, and every child the process starts from then on inherits it;
//   "0" clears it. Anything else fails with EINVAL; a number that is no node of the map with
//   EHOSTUNREACH (a node in the map that is down is accepted: /mfs/selected then fails as that
//   node's subtree does). A process may only set its own value.
//
// How the mount serves it: a regular file, mode 0666 (every process sets its own value; nothing
// of another's can be touched), size 0, entry and attr timeouts 0, and opened with
// FOPEN_DIRECT_IO so the page cache never holds one process's answer for another: every read(2)
// and write(2) reaches the mount with the caller's thread id. Like /proc files, reads return the
// whole text at offset 0 and nothing after it, and each write(2) is taken alone (a value split
// over two writes is refused).
import { Errno } from '../../../proto/errno.js';
import type { ProcessTable } from './process-table.js';

export const CONTROL_DIR = '.control';
export const SELECTED_CONTROL_NAME = 'selected';
export const SELECTED_CONTROL_PATH = `${CONTROL_DIR}/${SELECTED_CONTROL_NAME}`;

/** Node ids of the map file (setpe: 1-65535). */
const MAX_NODE = 65535;

export interface CallerContext {
  /** RequestContext.pid: the caller's thread id. */
  tid: number;
}

export class SelectedControl {
  /** `knownNode(n)`: whether node n is in the map (up or not). */
  constructor(private readonly table: ProcessTable, private readonly knownNode: (node: number) => boolean) {}

  /** The whole text for the caller. */
  readSelected(ctx: CallerContext): string {
    return `${this.table.stateOf(ctx.tid).selected ?? 0}\n`;
  }

  /** A READ of `size` bytes at `offset`: the caller's text sliced as a file. */
  read(ctx: CallerContext, offset: number, size: number): Buffer {
    return Buffer.from(this.readSelected(ctx)).subarray(offset, offset + size);
  }

  /** A WRITE: sets the caller's selected node; returns the bytes taken (all of them). */
  writeSelected(ctx: CallerContext, text: Buffer | string): number {
    const s = typeof text === 'string' ? text : text.toString('latin1');
    const value = s.trim();
    if (!/^\d{1,10}$/.test(value)) throw new Errno('EINVAL', `not a node number: ${JSON.stringify(s.slice(0, 32))}`);
    const node = Number(value);
    if (node > MAX_NODE) throw new Errno('EINVAL', `node ${node} is out of range (1-${MAX_NODE}, 0 to clear)`);
    if (node !== 0 && !this.knownNode(node)) throw new Errno('EHOSTUNREACH', `node ${node} is not in the cluster map`);
    this.table.setSelected(ctx.tid, node === 0 ? undefined : node);
    return typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  }
}
