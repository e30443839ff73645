// openMosix's special directories under /mfs (issue 10; ../shared/docs/omfs-reference.md section 1):
// here, home, magic, lastexec and selected, each "a node's root, chosen for the calling process".
//
// HOW THE MOUNT MUST REPLY FOR THESE ENTRIES (or the kernel serves one process's answer to another):
// - LOOKUP of a special name in the /mfs root resolves the caller (RequestContext.pid is a THREAD
//   id: resolveSpecial maps it to its process) and replies with a nodeid of its own for the pair
//   (special name, node it resolved to), never the nodeid of /mfs/<N> itself. The kernel keeps one
//   dentry per name in a directory; with entry timeout 0 (next point) every walk re-LOOKUPs it with the
//   walker's pid, and a walker answered another node gets another nodeid, which drops the dentry,
//   so process A never walks into the node process B was given. Processes answered the same node
//   may share the nodeid (fuse/mfs/special-nodes.ts does: the table grows with names x nodes, not
//   with processes). specialInstanceKey() below names one process's view, for per-process state.
// - entry_valid 0 (and its nsec 0) on that reply, so the dcache revalidates "/mfs/selected" with a
//   LOOKUP at every path walk (fuse-protocol.md: after expiry the kernel re-LOOKUPs and a
//   different nodeid drops the dentry). attr_valid 0 too, and on GETATTR of that nodeid, unless
//   the nodeid stands for one node's root whoever gets it (special-nodes.ts: then its attributes
//   are that root's and are cached like it). Two processes walking it at once with different
//   answers thrash one dentry, each LOOKUP answering its own caller: correct, just uncached.
//   READDIR of /mfs lists the five names (d_type DT_DIR) with no per-process answer.
//   `here` is the one exception: it is this node for every local caller, so one shared nodeid
//   with ordinary timeouts is safe for it.
// - Below a special directory, entries are node N's own files. A directory inode has a single
//   dentry in Linux, so returning /mfs/N/tmp's nodeid for /mfs/selected/tmp would MOVE that dentry
//   (d_splice_alias) between the two paths, and getcwd() of a process in /mfs/2/tmp would read
//   /mfs/selected/tmp. Nodeids of directories below an instance are therefore per (instance,
//   remote inode), with the long cache timeouts of ordinary entries: they are only reachable
//   through the instance, whose name is never cached. Other files may keep their ordinary nodeid
//   (a non-directory may have several dentries): one page cache and one set of attributes for a
//   file, whatever path reached it.
// - magic/: at LOOKUP time the kernel does not say which syscall follows. The name "magic" always
//   resolves (op 'lookup'); a LOOKUP of a child inside it uses the last magic node, or this node
//   when the process has none (op 'lookup' again); a CREATE or MKNOD in it (op 'create') goes to
//   this node, and once it succeeds the mount calls table.noteMagicCreate(tid, node). So a temp
//   file that does not exist yet is created here and found again by the same process's unlink,
//   as in openMosix; unlike openMosix, an open(O_CREAT) of a name that already exists on the last
//   magic node opens that file (the kernel LOOKUPs first and never sends the CREATE).
// - An unresolvable name (selected never set, or magic with no create yet for an op 'other')
//   answers ENOENT; lookups of it must not be cached negatively (entry_valid 0 on the error).
import { Errno } from '../../../proto/errno.js';
import type { ProcessKey } from '../../../sys/process.js';
import type { ProcessTable } from './process-table.js';

export const SPECIAL_NAMES = ['here', 'home', 'magic', 'lastexec', 'selected'] as const;
export type SpecialName = (typeof SPECIAL_NAMES)[number];

const specialNames: ReadonlySet<string> = new Set(SPECIAL_NAMES);
export const isSpecialName = (name: string): name is SpecialName => specialNames.has(name);

/**
 * 'create': a CREATE/MKNOD (creat(), open(O_CREAT)) inside magic/; 'lookup': a path walk inside
 * magic/ whose final syscall is not known yet; 'other': any call known not to create.
 */
export type SpecialOp = 'create' | 'lookup' | 'other';

export interface SpecialContext {
  /** RequestContext.pid: the caller's thread id. */
  tid: number;
  thisNode: number;
  op: SpecialOp;
}

/** The node whose root `name` stands for, for the caller; Errno ENOENT when it has none. */
export function resolveSpecial(table: ProcessTable, name: SpecialName, ctx: SpecialContext): number {
  if (name === 'here') return ctx.thisNode; // no /proc read: every process here runs here
  const state = table.stateOf(ctx.tid);
  switch (name) {
    case 'home':
      return state.home;
    case 'lastexec':
      return state.lastexec;
    case 'selected':
      if (state.selected === undefined) throw new Errno('ENOENT', 'no node selected by this process or its ancestors');
      return state.selected;
    case 'magic':
      if (ctx.op === 'create') return ctx.thisNode;
      if (state.magic !== undefined) return state.magic;
      if (ctx.op === 'lookup') return ctx.thisNode;
      throw new Errno('ENOENT', 'this process has created no file through magic/');
  }
}

/** The identity of one process's view of a special directory (the mount keys node ids by name and node instead: see the header). */
export const specialInstanceKey = (name: SpecialName, process: ProcessKey): string => `${name}@${process}`;

/** The process key for a special lookup (for specialInstanceKey), read through the table's cache. */
export const callerKey = (table: ProcessTable, tid: number): ProcessKey => table.stateOf(tid).key;
