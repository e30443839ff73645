// The differential test's hands: `node dist/test/differential/executor.js ROOT`, started by the
// driver under setpriv as one user, chdirs into ROOT and runs the operations it reads as JSON lines
// on stdin (ops.ts), answering one JSON line each: {ok: true, value} or {ok: false, code: 'ENOENT'}.
// Paths are relative to ROOT, so a path of PATH_MAX-1 bytes is the same length on every side. Open
// fds live in a table by logical id, so a descriptor outlives the name it was opened by.
import { createHash } from 'node:crypto';
import { closeSync, readdirSync, readSync, writeSync, ftruncateSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import koffi from 'koffi';
import * as sys from '../../sys/index.js';
import {
  O_DIRECTORY, O_NOATIME, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, typeName, unhex,
  type Op, type ProbeJson, type Reply, type StatJson, type Time, type WalkEntry, type XTarget,
} from './ops.js';

const libc = koffi.load('libc.so.6');
// What sys/ does not have: truncate(2) by path (node's truncateSync opens the file instead) and
// faccessat(2).
const cTruncate = libc.func('int truncate(const char *path, int64_t length)');
const cFaccessat = libc.func('int faccessat(int dirfd, const char *path, int mode, int flags)');

const root = process.argv[2];
if (!root) {
  process.stderr.write('usage: executor ROOT\n');
  process.exit(2);
}
process.chdir(root);

const AT = sys.AT_FDCWD;
const fds = new Map<number, number>();
const servers = new Map<string, Server>();

class Errno extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

function fdOf(id: number): number {
  const fd = fds.get(id);
  if (fd === undefined) throw new Errno('EBADF');
  return fd;
}

const path = (h: string): Buffer => unhex(h);

function statJson(st: sys.Stat): StatJson {
  return {
    type: typeName(st.mode), mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, rdev: st.rdev,
    ino: st.ino.toString(), atime: st.atime, mtime: st.mtime,
  };
}

function xtarget(t: XTarget): sys.XattrTarget {
  return 'id' in t ? { fd: fdOf(t.id) } : { path: path(t.path), follow: t.follow };
}

function time(t: Time): sys.TimeArg {
  return t;
}

function check(ret: number, what: string): number {
  if (ret === -1) throw new sys.SysError(koffi.errno(), what);
  return ret;
}

/**
 * A directory's names with getdents64, '.' and '..' included, sorted bytewise. A record longer than
 * its name needs (bytes after the name's NUL, which a C program does not see but the kernel was
 * given as part of the name) is listed with its length, so it differs from the bare directory's.
 */
function listDir(fd: number): Buffer[] {
  const buf = Buffer.alloc(64 * 1024);
  const names: Buffer[] = [];
  for (;;) {
    const n = sys.getdentsRaw(fd, buf);
    if (n === 0) break;
    for (let at = 0; at < n;) {
      const reclen = buf.readUInt16LE(at + sys.DIRENT64.RECLEN);
      const name = Buffer.from(buf.subarray(at + sys.DIRENT64.NAME, sys.direntNameEnd(buf, at)));
      const fits = reclen === ((sys.DIRENT64.NAME + name.length + 1 + 7) & ~7);
      names.push(fits ? name : Buffer.concat([name, Buffer.from(` <in a record of ${reclen} bytes>`)]));
      at += reclen;
    }
  }
  return names.sort(Buffer.compare);
}

function hashFd(fd: number): string {
  const h = createHash('sha256');
  const buf = Buffer.alloc(256 * 1024);
  for (let pos = 0; ;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return h.digest('hex');
}

function xattrsOf(target: sys.XattrTarget): [string, string][] {
  const list = sys.listxattr(target);
  const names = list.toString('latin1').split('\0').filter((n) => n !== '').sort();
  return names.map((n) => {
    try {
      return [n, sys.getxattr(target, n).toString('hex')];
    } catch (e) {
      return [n, `error ${(e as { code?: string }).code}`];
    }
  });
}

/**
 * Every name under the root (the root itself as ''), described through directory fds so that paths
 * longer than PATH_MAX are walked too. Reads use O_NOATIME so the walk itself changes no atime.
 */
function walk(): WalkEntry[] {
  const out: WalkEntry[] = [];
  const describe = (dirfd: number, name: Buffer, rel: Buffer): void => {
    let entry: WalkEntry;
    try {
      entry = { path: rel.toString('hex'), ...statJson(sys.statat(dirfd, name.length ? name : '.', sys.AT_SYMLINK_NOFOLLOW)) };
    } catch (e) {
      out.push({ path: rel.toString('hex'), err: (e as Errno).code } as WalkEntry);
      return;
    }
    out.push(entry);
    // /proc/self/fd/N/name names the entry itself without following it, at any depth.
    const magic = dirfd === AT ? Buffer.from('.') : Buffer.concat([Buffer.from(`/proc/self/fd/${dirfd}/`), name]);
    try {
      entry.xattrs = xattrsOf({ path: magic, follow: false });
    } catch (e) {
      entry.err = `listxattr ${(e as Errno).code}`;
    }
    try {
      if (entry.type === 'symlink') entry.target = sys.readlinkat(dirfd, name).toString('hex');
      if (entry.type === 'file') {
        const fd = sys.openat(dirfd, name, O_RDONLY | O_NOATIME | O_NOFOLLOW | O_NONBLOCK);
        try {
          entry.hash = hashFd(fd);
        } finally {
          sys.close(fd);
        }
      }
      if (entry.type === 'dir') {
        const fd = sys.openat(dirfd, name.length ? name : '.', O_RDONLY | O_DIRECTORY | O_NOATIME | O_NOFOLLOW);
        try {
          for (const child of listDir(fd)) {
            if (child.equals(Buffer.from('.')) || child.equals(Buffer.from('..'))) continue;
            describe(fd, child, rel.length ? Buffer.concat([rel, Buffer.from('/'), child]) : child);
          }
        } finally {
          sys.close(fd);
        }
      }
    } catch (e) {
      entry.err = (e as Errno).code ?? String(e);
    }
  };
  describe(AT, Buffer.alloc(0), Buffer.alloc(0));
  return out;
}

function probeOne(h: string): ProbeJson {
  let b = path(h);
  while (b.length > 1 && b[b.length - 1] === 0x2f) b = b.subarray(0, b.length - 1);
  const slash = b.lastIndexOf(0x2f);
  const parent = slash < 0 ? Buffer.from('.') : slash === 0 ? Buffer.from('/') : b.subarray(0, slash);
  const one = (p: Buffer, flags: number): { ino: string; type: string } | null => {
    try {
      const st = sys.statat(AT, p, flags);
      return { ino: st.ino.toString(), type: typeName(st.mode) };
    } catch {
      return null;
    }
  };
  return { l: one(path(h), sys.AT_SYMLINK_NOFOLLOW), s: one(path(h), 0), p: one(parent, 0) };
}

async function run(op: Op): Promise<Reply> {
  if ('umask' in op) process.umask(op.umask);
  switch (op.op) {
    case 'open': {
      if (fds.has(op.id)) throw new Error(`fd#${op.id} is open already`);
      const fd = sys.openat(AT, path(op.path), op.flags, op.mode);
      fds.set(op.id, fd);
      const st = sys.fstat(fd);
      return { ok: true, value: op.id, meta: { ino: st.ino.toString(), type: typeName(st.mode) } };
    }
    case 'close': {
      const fd = fdOf(op.id);
      fds.delete(op.id);
      closeSync(fd);
      return { ok: true };
    }
    case 'read': {
      const buf = Buffer.alloc(op.len);
      const n = readSync(fdOf(op.id), buf, 0, op.len, op.off ?? null);
      return { ok: true, value: buf.subarray(0, n).toString('hex') };
    }
    case 'write': {
      const data = unhex(op.data);
      return { ok: true, value: writeSync(fdOf(op.id), data, 0, data.length, op.off ?? null) };
    }
    case 'ftruncate': ftruncateSync(fdOf(op.id), op.len); return { ok: true };
    case 'truncate': check(cTruncate(sys.cstr(path(op.path)), op.len), 'truncate'); return { ok: true };
    case 'fstat': return { ok: true, value: statJson(sys.fstat(fdOf(op.id))) };
    case 'stat': return { ok: true, value: statJson(sys.statat(AT, path(op.path), op.follow ? 0 : sys.AT_SYMLINK_NOFOLLOW)) };
    case 'unlink': sys.unlinkat(AT, path(op.path), 0); return { ok: true };
    case 'rmdir': sys.unlinkat(AT, path(op.path), sys.AT_REMOVEDIR); return { ok: true };
    case 'link': sys.linkat(AT, path(op.from), AT, path(op.to), op.follow ? sys.AT_SYMLINK_FOLLOW : 0); return { ok: true };
    case 'rename': sys.renameat2(AT, path(op.from), AT, path(op.to), op.flags); return { ok: true };
    case 'mkdir': sys.mkdirat(AT, path(op.path), op.mode); return { ok: true };
    case 'mknod': sys.mknodat(AT, path(op.path), op.mode, sys.makedev(op.major, op.minor)); return { ok: true };
    case 'symlink': sys.symlinkat(path(op.target), AT, path(op.path)); return { ok: true };
    case 'readlink': return { ok: true, value: sys.readlinkat(AT, path(op.path)).toString('hex') };
    case 'chmod': sys.fchmodat(AT, path(op.path), op.mode, op.follow ? 0 : sys.AT_SYMLINK_NOFOLLOW); return { ok: true };
    case 'fchmod': sys.fchmod(fdOf(op.id), op.mode); return { ok: true };
    case 'chown': sys.fchownat(AT, path(op.path), op.uid, op.gid, op.follow ? 0 : sys.AT_SYMLINK_NOFOLLOW); return { ok: true };
    case 'fchown': sys.fchownat(fdOf(op.id), '', op.uid, op.gid, sys.AT_EMPTY_PATH); return { ok: true };
    case 'utimens': {
      const t = op.target;
      if ('id' in t) sys.utimensat(fdOf(t.id), '', time(op.atime), time(op.mtime), sys.AT_EMPTY_PATH);
      else sys.utimensat(AT, path(t.path), time(op.atime), time(op.mtime), t.follow ? 0 : sys.AT_SYMLINK_NOFOLLOW);
      return { ok: true };
    }
    case 'setxattr': sys.setxattr(xtarget(op.target), op.name, unhex(op.value), op.flags); return { ok: true };
    case 'getxattr': return { ok: true, value: sys.getxattr(xtarget(op.target), op.name).toString('hex') };
    case 'listxattr': {
      const names = sys.listxattr(xtarget(op.target)).toString('latin1').split('\0').filter((n) => n !== '');
      return { ok: true, value: names.sort() };
    }
    case 'removexattr': sys.removexattr(xtarget(op.target), op.name); return { ok: true };
    case 'fallocate': sys.fallocate(fdOf(op.id), op.mode, op.off, op.len); return { ok: true };
    case 'lseek': return { ok: true, value: sys.lseek(fdOf(op.id), op.off, op.whence) };
    case 'readdir': {
      const fd = sys.openat(AT, path(op.path), O_RDONLY | O_DIRECTORY | O_NONBLOCK);
      try {
        return { ok: true, value: listDir(fd).map((n) => n.toString('hex')) };
      } finally {
        sys.close(fd);
      }
    }
    case 'readdirNode': {
      const names = readdirSync(path(op.path), { encoding: 'buffer' }).sort(Buffer.compare);
      return { ok: true, value: names.map((n) => n.toString('hex')) };
    }
    case 'access': check(cFaccessat(AT, sys.cstr(path(op.path)), op.mode, 0), 'faccessat'); return { ok: true };
    case 'listen': {
      const server = createServer((sock) => sock.pipe(sock));
      const where = path(op.path).toString('latin1');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(where, () => resolve());
      });
      servers.set(op.path, server);
      return { ok: true };
    }
    case 'connect': {
      const data = unhex(op.data);
      const echoed = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let got = 0;
        const sock = createConnection(path(op.path).toString('latin1'), () => sock.write(data));
        sock.on('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
          if (got >= data.length) sock.end();
        });
        sock.on('end', () => resolve(Buffer.concat(chunks)));
        sock.on('error', reject);
      });
      return { ok: true, value: echoed.toString('hex') };
    }
    case 'unlisten': {
      const server = servers.get(op.path);
      if (!server) throw new Errno('EBADF');
      servers.delete(op.path);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return { ok: true };
    }
    case 'walk': return { ok: true, value: walk() };
    case 'fstatAll': {
      const all: Record<string, StatJson | { err: string }> = {};
      for (const [id, fd] of fds) {
        try {
          all[id] = statJson(sys.fstat(fd));
        } catch (e) {
          all[id] = { err: (e as Errno).code };
        }
      }
      return { ok: true, value: all };
    }
    case 'probe': return { ok: true, value: op.paths.map(probeOne) };
    case 'sleep': throw new Error('sleep is done by the driver');
  }
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    let reply: Reply;
    try {
      reply = await run(JSON.parse(line) as Op);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) {
        process.stderr.write(`executor: ${line.slice(0, 200)}: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(3);
      }
      reply = { ok: false, code };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
  for (const server of servers.values()) server.close();
  process.exit(0);
}

void main();
