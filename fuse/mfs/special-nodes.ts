// openMosix's special directories and the selected control file, as the /mfs mount serves them
// (the rules are in special/special-dirs.ts's header; this file applies them to the mount's node
// ids, inodes.ts's views).
//
// - /mfs/here is this node for every local caller: one view ('here'), cached like /mfs/<K>, but
//   its own node ids (not /mfs/<this node>'s), so getcwd() of a process in one never reads the
//   other.
// - /mfs/home, magic, lastexec, selected: a LOOKUP resolves the caller and answers the node id of
//   the view "<name>><node>", entry timeout 0, so every path walk through the name asks again
//   with the walker's pid. The attributes of that node id are the node's root's, the same for
//   every process that gets it, and the node's invalidations reach it: they are cached as the
//   root's are (special/special-dirs.ts asked for 0 when node ids were per process). The node id differs whenever the answer does (the node is part
//   of the view): a walker given another node gets another node id, and the kernel drops the
//   dentry (and what it cached below it) rather than show node 2's files under a name that now
//   means node 3 for this caller. Processes that get the same node share the view and what the
//   kernel cached below it, which is right (it is that node's tree) and keeps the table bounded by
//   names x nodes, not by processes. What must never be shared is /mfs/<N>'s own node ids:
//   getcwd() (inodes.ts's header).
// - magic/: a CREATE or MKNOD in it goes to this node. When the caller's magic view points
//   elsewhere (its last magic create was on another node), the directory is found again on this
//   node by its path below the view's top (the names the kernel walked, kept in inodes.ts's links).
// - /mfs/.control/selected: special/selected-control.ts's file, opened with DIRECT_IO so every
//   read(2) and write(2) reaches us with the caller's thread id.
// - /mfs/.admin/{mfscosts,overheads,decay}: the node's DFSA tables (admin-files.ts), served the same
//   way, once the host gave them (setAdmin): a mount without them has no .admin.
import { Errno } from '../../proto/errno.js';
import { OpenFlag, type AttrOut, type EntryOut, type OpenOut, type RequestContext } from '../kernel/index.js';
import { controlFileAttr, S_IFDIR, S_IFREG, syntheticDirAttr } from './attrs.js';
import { ADMIN_DIR, ADMIN_FILES, AdminFiles, adminFileAttr, isAdminFile, type AdminFile, type AdminTables } from './admin-files.js';
import { keyName, type InodeTable, type MfsInode } from './inodes.js';
import {
  CONTROL_DIR, isSpecialName, ProcessTable, resolveSpecial, SELECTED_CONTROL_NAME, SelectedControl, SPECIAL_NAMES,
} from './special/index.js';

export const HERE_VIEW = 'here';
const MAGIC_PREFIX = 'magic>';
/** d_ino of the special names in the root's listing: below 2^48 (no cluster inode) and far above any node id. */
const LISTING_INO_BASE = 2 ** 40;
/** A path below a view's top deeper than this is not followed (a bound, not a limit anyone meets). */
const MAX_DEPTH = 4096;

export interface SpecialNodesOptions {
  /** The mount's node: here, and where magic creates go. */
  thisNode: number;
  /** Whether node n is in the map. */
  knownNode: (node: number) => boolean;
  cacheSeconds: number;
}

/** Where a special name points for the caller: the view's top, and how long the kernel may keep the entry. */
export interface SpecialEntry { gateway: MfsInode; entryTimeout: number }

export class SpecialNodes {
  readonly control: SelectedControl;
  private readonly controlDir: MfsInode;
  private readonly selectedFile: MfsInode;
  private readonly adminDir: MfsInode;
  /** Node id → the .admin file it is. */
  private readonly adminNodes = new Map<number, AdminFile>();
  private admin: AdminFiles | undefined;

  constructor(private readonly inodes: InodeTable, readonly table: ProcessTable, private readonly opts: SpecialNodesOptions) {
    this.control = new SelectedControl(table, opts.knownNode);
    this.controlDir = inodes.ownNode('control-dir', S_IFDIR);
    this.selectedFile = inodes.ownNode('selected-file', S_IFREG);
    // inodes.ts's OwnRole names only the .control roles; its table is keyed by any string.
    this.adminDir = inodes.ownNode('admin-dir', S_IFDIR);
    for (const f of ADMIN_FILES) this.adminNodes.set(inodes.ownNode(`admin-${f}`, S_IFREG).id, f);
  }

  /** Serve /mfs/.admin from the node's tables; `log` hears each write and why one was refused. */
  setAdmin(tables: AdminTables, log: (line: string) => void): void {
    this.admin = new AdminFiles(tables, log);
  }

  private adminFileOf(nodeId: number): AdminFile | undefined {
    return this.admin ? this.adminNodes.get(nodeId) : undefined;
  }

  get thisNode(): number {
    return this.opts.thisNode;
  }

  /** The names the root lists beside the node numbers. */
  topNames(): string[] {
    return [...SPECIAL_NAMES, CONTROL_DIR, ...(this.admin ? [ADMIN_DIR] : [])];
  }

  /** d_ino of a name of topNames(), undefined for a node number. */
  topIno(name: string): number | undefined {
    if (name === CONTROL_DIR) return this.controlDir.id;
    if (name === ADMIN_DIR && this.admin) return this.adminDir.id;
    const k = (SPECIAL_NAMES as readonly string[]).indexOf(name);
    return k < 0 ? undefined : LISTING_INO_BASE + k;
  }

  /** The entry of the control directory or of .admin, or undefined when `name` is neither. */
  lookupControlDir(name: string): EntryOut | undefined {
    const dir = name === CONTROL_DIR ? this.controlDir : name === ADMIN_DIR && this.admin ? this.adminDir : undefined;
    if (!dir) return undefined;
    const t = this.opts.cacheSeconds;
    return { nodeId: dir.id, generation: 0, entryTimeout: t, attrTimeout: t, attr: this.ownAttr(dir).attr };
  }

  /**
   * A special name in the root, resolved for the caller (not counted as a lookup yet: the mount
   * does that once its reply is ready); undefined when `name` is not special. ENOENT when the
   * caller has no such node (selected never set) or it is not in the map.
   */
  lookupSpecial(ctx: RequestContext, name: string): SpecialEntry | undefined {
    if (!isSpecialName(name)) return undefined;
    const node = resolveSpecial(this.table, name, { tid: ctx.pid, thisNode: this.opts.thisNode, op: 'lookup' });
    if (!this.opts.knownNode(node)) throw new Errno('ENOENT', `node ${node} is not in the cluster map`);
    if (name === 'here') return { gateway: this.inodes.virtual(node, '', HERE_VIEW), entryTimeout: this.opts.cacheSeconds };
    const view = `${name}>${node}`;
    return { gateway: this.inodes.virtual(node, '', view), entryTimeout: 0 };
  }

  // ---- magic ----

  isMagic(i: MfsInode): boolean {
    return i.view.startsWith(MAGIC_PREFIX);
  }

  /** A create through `dir` succeeded on `node`: a magic create, if `dir` is in a magic view. */
  created(ctx: RequestContext, dir: MfsInode, node: number): void {
    if (this.isMagic(dir)) this.table.noteMagicCreate(ctx.pid, node);
  }

  /**
   * The names from the top of `dir`'s view down to `dir` (empty for the top), as the kernel walked
   * them; ENOENT when the kernel's path to it is no longer known (it was forgotten or renamed away).
   */
  pathInView(dir: MfsInode): Buffer[] {
    const names: Buffer[] = [];
    for (let cur = dir; !cur.viewRoot;) {
      if (names.length > MAX_DEPTH) throw new Errno('ELOOP', 'path below a special directory too deep');
      const up = this.parentLink(cur);
      if (!up) throw new Errno('ENOENT', 'the path of this directory below magic/ is no longer known');
      names.unshift(up.name);
      cur = up.dir;
    }
    return names;
  }

  private parentLink(i: MfsInode): { dir: MfsInode; name: Buffer } | undefined {
    for (const link of i.links) {
      const slash = link.indexOf('/');
      const dir = this.inodes.get(Number(link.slice(0, slash)));
      if (dir && dir.view === i.view && dir.names.get(link.slice(slash + 1)) === i.id) return { dir, name: keyName(link.slice(slash + 1)) };
    }
    return undefined;
  }

  // ---- /mfs/.control ----

  /** Whether `nodeId` is one of the mount's own files (.control/selected, .admin/*): read and write go to read() and write(). */
  isOwnFile(nodeId: number): boolean {
    return nodeId === this.selectedFile.id || this.adminFileOf(nodeId) !== undefined;
  }

  /** A LOOKUP in the control directory or .admin. */
  lookupOwn(dir: MfsInode, name: string): EntryOut {
    if (dir === this.adminDir && this.admin && isAdminFile(name)) {
      const id = [...this.adminNodes].find(([, f]) => f === name)![0];
      return { nodeId: id, generation: 0, entryTimeout: this.opts.cacheSeconds, attrTimeout: 0, attr: adminFileAttr(id) };
    }
    if (dir !== this.controlDir || name !== SELECTED_CONTROL_NAME) throw new Errno('ENOENT', 'no such control file');
    return { nodeId: this.selectedFile.id, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: controlFileAttr(this.selectedFile.id) };
  }

  /** The listing of the control directory or .admin. */
  ownNames(dir: MfsInode): Array<{ name: string; ino: number }> {
    if (dir === this.adminDir && this.admin) return [...this.adminNodes].map(([ino, name]) => ({ name, ino }));
    return dir === this.controlDir ? [{ name: SELECTED_CONTROL_NAME, ino: this.selectedFile.id }] : [];
  }

  ownAttr(i: MfsInode): AttrOut {
    if (i === this.selectedFile) return { attr: controlFileAttr(i.id), attrTimeout: 0 };
    if (this.adminFileOf(i.id)) return { attr: adminFileAttr(i.id), attrTimeout: 0 };
    return { attr: syntheticDirAttr(i.id), attrTimeout: this.opts.cacheSeconds };
  }

  /** OPEN of an own file: direct I/O, so no process is ever answered from another's pages (or from stale ones). */
  open(i: MfsInode): OpenOut {
    if (i !== this.selectedFile && !this.adminFileOf(i.id)) throw new Errno('EISDIR', 'a directory');
    return { fh: 0, openFlags: OpenFlag.DIRECT_IO };
  }

  /** A READ of own file `nodeId`. */
  read(ctx: RequestContext, offset: number, size: number, nodeId: number): Buffer | Promise<Buffer> {
    const admin = this.adminFileOf(nodeId);
    if (admin) return this.admin!.read(admin, offset, size);
    return this.control.read({ tid: ctx.pid }, offset, size);
  }

  /** A WRITE of own file `nodeId`. */
  write(ctx: RequestContext, data: Buffer, nodeId: number): number | Promise<number> {
    const admin = this.adminFileOf(nodeId);
    if (admin) return this.admin!.write({ uid: ctx.uid, pid: ctx.pid }, admin, data);
    return this.control.writeSelected({ tid: ctx.pid }, data);
  }
}

/** A table for a mount given none (tests, a mount without proc events): the LRU fallback of process-table.ts. */
export const defaultProcessTable = (thisNode: number): ProcessTable => new ProcessTable({ thisNode });
