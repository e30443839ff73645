// The operations of service-ops.ts with callbacks (callbacks.ts): what each reply lets a session
// cache is registered for it, and what each change touched is invalidated at every other session
// holding a callback on it before the change's reply goes back.
//
// What a reply registers (sessions only; a unary peer caches nothing the server promises to keep right):
//   lookup, root, create, mkdir, mknod, symlink, link  NAMES of the directory, ATTR of the entry
//   lookup answering ENOENT                           NAMES of the directory (a negative entry)
//   mkdir                                             also NAMES of the new directory (known empty)
//   unlink, rmdir, rename                             NAMES of the directories (the caller knows the name's new state)
//   getattr, setattr, readlink                        ATTR
//   readdir                                           NAMES of the directory, ATTR of each entry with attributes
//   open, create, read                                DATA (and ATTR for open/create: the size decides what is data)
// What a change invalidates:
//   write, fallocate                                  DATA of the range written (to the end after O_APPEND), ATTR
//   setattr                                           ATTR; DATA from the new size on when the size was set
//   create, mkdir, mknod, symlink                     the name in its directory, ATTR of the directory
//   link                                              the new name, ATTR of its directory and of the file (nlink)
//   unlink, rmdir                                     the name, ATTR of the directory and of the file removed
//   rename                                            both names, ATTR of both directories, of the file moved and of one replaced
//   set/remove xattr                                  ATTR (ctime)
// The file an unlink, rmdir or rename removes or replaces is looked up just before the call, as root
// and only when some session is attached: its attributes change (nlink, ctime) and a session may
// cache them under another name.
import * as sys from '../sys/index.js';
import { ATTR, NAMES, type Callbacks, type Change } from './callbacks.js';
import type { LocalFs } from './local-fs.js';
import type { OpenFileTable } from './open-files.js';
import type { Peer } from './peers.js';
import type { Caller } from './permissions.js';
import { setAfterChange } from '../proto/after-change.js';
import type { Attr } from '../proto/session-client.js';
import { bigU64, toAttr, type U64Out } from './wire.js';

const O_APPEND = 0o2000;
const ROOT: Caller = { uid: 0, gid: 0, groups: [], pid: 0 };

interface EntryOut { handle: Buffer; attr: { ino: U64Out } }
/** An operation as service-ops defines it, and as wrapped here (the unary service passes no signal). */
type Op<Q, R> = (peer: Peer, req: Q, signal: AbortSignal) => Promise<R>;
type Wrapped<Q, R> = (peer: Peer, req: Q, signal?: AbortSignal) => Promise<R>;
/** The signal of a caller that gave none: never aborts. */
const NO_ABORT = new AbortController().signal;

export interface CallbackDeps { lfs: LocalFs; callbacks: Callbacks; table: OpenFileTable }

// eslint-disable-next-line @typescript-eslint/explicit-function-return-type -- the helpers' types are their definitions
export function callbackRules({ lfs, callbacks, table }: CallbackDeps) {
  const ino = (u: U64Out): bigint => BigInt(u);
  /** The cluster inode of a handle that an operation just used successfully. */
  const inoOfHandle = (handle: unknown): bigint | undefined => {
    try {
      return lfs.clusterIno(lfs.store.parse(handle).id);
    } catch {
      return undefined;
    }
  };
  const attr = (i: bigint): Change => ({ kind: 'attr', ino: i });
  const name = (dir: bigint, n: Buffer): Change => ({ kind: 'name', dir, name: Buffer.from(n) });

  /**
   * Runs `op` and registers, for a session peer, what `cached` says its reply lets it cache. The
   * change counter is noted before the op: a change in between reaches the session as a recall.
   */
  function caching<Q, R>(
    op: Op<Q, R>, cached: (req: Q, reply: R) => Array<[bigint | undefined, number]>, absent?: (req: Q) => Array<[bigint | undefined, number]>,
  ): Wrapped<Q, R> {
    return async (peer, req, signal = NO_ABORT) => {
      if (!callbacks.isAttached(peer.key)) return op(peer, req, signal);
      const since = callbacks.now();
      let reply: R;
      try {
        reply = await op(peer, req, signal);
      } catch (err) {
        // "No such name" may be cached too (a negative entry): the directory's NAMES callback tells
        // the session when the name appears.
        if (absent && (err as { code?: string }).code === 'ENOENT') for (const [i, bits] of absent(req)) if (i !== undefined) callbacks.registered(peer.key, i, bits, since);
        throw err;
      }
      for (const [i, bits] of cached(req, reply)) if (i !== undefined) callbacks.registered(peer.key, i, bits, since);
      return reply;
    };
  }

  /**
   * Runs `op`, then invalidates what `changed` says it changed at every session but the caller's,
   * and returns its reply once they all acknowledged. `before` runs first (only when a session is
   * attached) to learn what the op will remove or replace.
   */
  function changing<Q, R, B = undefined>(
    op: Op<Q, R>, changed: (req: Q, reply: R, before: B | undefined, peer: Peer) => Array<Change | undefined>, before?: (req: Q) => Promise<B>,
  ): Wrapped<Q, R> {
    return async (peer, req, signal = NO_ABORT) => {
      const pre = before && callbacks.active ? await before(req).catch(() => undefined) : undefined;
      const reply = await op(peer, req, signal);
      if (callbacks.active) await callbacks.invalidate(changed(req, reply, pre, peer).filter((c): c is Change => c !== undefined), peer.key);
      return reply;
    };
  }

  /** The inode named `n` in directory `dir` right now (as root: only to know whom to tell), if any. */
  async function childIno(dir: Buffer, n: Buffer): Promise<bigint | undefined> {
    return (await child(dir, n))?.ino;
  }

  /** The file named `n` in directory `dir` right now (as root), with its cluster inode number, if any. */
  async function child(dir: Buffer, n: Buffer): Promise<{ st: sys.Stat; ino: bigint } | undefined> {
    const d = await lfs.resolveDir(dir, ROOT);
    const st = await d.exp.io.call(null, 'statatIfExists', d.fd, n, sys.AT_SYMLINK_NOFOLLOW);
    return st ? { st, ino: lfs.clusterIno(await lfs.store.localId(st.dev, st.ino)) } : undefined;
  }

  /**
   * Runs the change `op` and, for a session, gives its reply the attributes the change left on
   * `where(req)`'s directories (and a file in one of them: a renamed file), registered as ATTR at
   * the change counter noted before the op (a change by another in between recalls them). The
   * client then need not ask for what it would ask next (the kernel checks permissions on a
   * directory's attributes, which a change of the directory makes stale).
   */
  function withAttrsAfter<Q, R extends object>(
    op: Wrapped<Q, R>, where: (req: Q) => { dirs: Buffer[]; child?: { dir: Buffer; name: Buffer } },
  ): Wrapped<Q, R> {
    return async (peer, req, signal = NO_ABORT) => {
      if (!callbacks.isAttached(peer.key)) return op(peer, req, signal);
      const since = callbacks.now();
      const reply = { ...(await op(peer, req, signal)) };
      const attrs = await attrsNow(where(req)).catch(() => []);
      for (const a of attrs) callbacks.registered(peer.key, BigInt(a.ino), ATTR, since);
      setAfterChange(reply, attrs);
      return reply;
    };
  }

  /** The attributes of directories (by handle) and of one name in a directory, as they are now (as root). */
  async function attrsNow(at: { dirs: Buffer[]; child?: { dir: Buffer; name: Buffer } }): Promise<Attr[]> {
    const out: Attr[] = [];
    const seen = new Set<string>();
    for (const h of at.dirs) {
      const key = h.toString('hex');
      if (seen.has(key)) continue;
      seen.add(key);
      const d = await lfs.resolveDir(h, ROOT);
      out.push(toAttr(await d.exp.io.call(null, 'fstat', d.fd), lfs.clusterIno(d.id)) as Attr);
    }
    const moved = at.child ? await child(at.child.dir, at.child.name) : undefined;
    if (moved) out.push(toAttr(moved.st, moved.ino) as Attr);
    return out;
  }

  /** Whether the write went to the end of the file (O_APPEND): its offset is then not where it landed. */
  const appending = (peer: Peer, fh: unknown, handle: unknown): boolean => {
    try {
      const id = lfs.store.parse(handle).id;
      const f = table.get(peer, bigU64(fh as string));
      return f !== undefined && f.id === id && (f.flags & O_APPEND) !== 0;
    } catch {
      return false;
    }
  };

  const entryCaching = <Q extends { dir?: Buffer; new_dir?: Buffer }>(req: Q, e: EntryOut): Array<[bigint | undefined, number]> => [
    [inoOfHandle(req.dir ?? req.new_dir), NAMES], [ino(e.attr.ino), ATTR],
  ];
  const createdIn = (req: { dir: Buffer; name: Buffer }): Array<Change | undefined> => {
    const d = inoOfHandle(req.dir);
    return d === undefined ? [] : [name(d, req.name), attr(d)];
  };

  return { caching, changing, withAttrsAfter, childIno, appending, entryCaching, createdIn, inoOfHandle, attr, name, ino };
}

export type CallbackRules = ReturnType<typeof callbackRules>;
export type { EntryOut, Op, Wrapped };
