// Fork, exec and exit of every process on the machine, from the kernel's proc connector
// (NETLINK_CONNECTOR, multicast group CN_IDX_PROC). Layouts from include/uapi/linux/netlink.h,
// connector.h and cn_proc.h (the same on every architecture: all fields are 32-bit but one
// 8-aligned u64).
//
// Needs CAP_NET_ADMIN in the initial user and pid namespaces: bind() to the group fails with EPERM
// otherwise. openProcEvents() then throws, tryOpenProcEvents() returns undefined with the reason,
// and callers do without: they forget exited processes by bounding their tables (LRU), and detect
// an exec lazily by a change of execSignature() (sys/process.ts), or not at all.
//
// Reading: a non-blocking socket drained on the event loop, by a timer every pollMs and by drain(),
// not a worker thread blocked in recv(). The kernel queues a process's exec event on our socket
// before its execve() returns, and its fork event before fork() returns in the parent, so a caller
// that drain()s before answering a request of that process has already seen them: a FUSE lookup
// made after an exec is answered knowing about the exec, which a worker's postMessage could not
// promise. An empty drain is one recv() through koffi, about 1 us (measured on the development VM:
// see the test); each event costs one recv() more.
//
// Loss: the socket's receive buffer is raised to 4 MiB (SO_RCVBUFFORCE, root), a few thousand
// events; when the machine forks faster than pollMs lets us drain, the kernel drops events and
// recv() says ENOBUFS: 'overflow' is emitted so callers know some exits or execs went unseen.
import { EventEmitter } from 'node:events';
import koffi from 'koffi';
import { SysError } from './errors.js';

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const bind = libc.func('int bind(int fd, const uint8_t *addr, uint32_t len)');
const send = libc.func('intptr_t send(int fd, const uint8_t *buf, size_t len, int flags)');
const recv = libc.func('intptr_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const uint8_t *value, uint32_t len)');
const closeFd = libc.func('int close(int fd)');

const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_CONNECTOR = 11;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const CN_IDX_PROC = 1;
const CN_VAL_PROC = 1;
const NLMSG_DONE = 3;
const PROC_CN_MCAST_LISTEN = 1;
const PROC_CN_MCAST_IGNORE = 2;
const EAGAIN = 11;
const EINTR = 4;
const ENOBUFS = 105;

const PROC_EVENT_FORK = 0x1;
const PROC_EVENT_EXEC = 0x2;
const PROC_EVENT_EXIT = 0x80000000;

/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32. */
const NLMSG_HDRLEN = 16;
/** struct cn_msg: id {idx u32, val u32}, seq u32, ack u32, len u16, flags u16, data[]. */
const CN_MSG_LEN = 20;
/** struct proc_event: what u32, cpu u32, timestamp_ns u64, then the union event_data. */
const EV = { WHAT: 0, DATA: 16 } as const;

/** A thread group's thread: `pid` is the thread (task) id, `tgid` its process. */
export interface ExecEvent { pid: number; tgid: number }
export interface ExitEvent { pid: number; tgid: number; exitCode: number; exitSignal: number }
/** A new task: a process when child.pid === child.tgid, else a thread of `parent.tgid`. */
export interface ForkEvent { parent: { pid: number; tgid: number }; child: { pid: number; tgid: number } }

export interface ProcEventsOptions {
  /** Background drain interval (ms). */
  pollMs?: number;
}

export interface ProcEvents {
  on(event: 'exec', listener: (e: ExecEvent) => void): this;
  on(event: 'exit', listener: (e: ExitEvent) => void): this;
  on(event: 'fork', listener: (e: ForkEvent) => void): this;
  /** Events were dropped by the kernel (receive buffer full). */
  on(event: 'overflow', listener: () => void): this;
}

/** The control message LISTEN or IGNORE: nlmsghdr + cn_msg + enum proc_cn_mcast_op (u32). */
function controlMessage(op: number): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + CN_MSG_LEN + 4);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(NLMSG_DONE, 4);
  b.writeUInt32LE(process.pid, 12);
  b.writeUInt32LE(CN_IDX_PROC, NLMSG_HDRLEN);
  b.writeUInt32LE(CN_VAL_PROC, NLMSG_HDRLEN + 4);
  b.writeUInt16LE(4, NLMSG_HDRLEN + 16);
  // The 4-byte op (not 6.6's struct proc_input with an event filter): older kernels ignore a
  // control message of any other length, and fork/exec/exit are most of the traffic anyway.
  b.writeUInt32LE(op, NLMSG_HDRLEN + CN_MSG_LEN);
  return b;
}

export class ProcEvents extends EventEmitter {
  private fd: number;
  private readonly timer: NodeJS.Timeout;
  private readonly buf = Buffer.alloc(8192);

  private constructor(fd: number, pollMs: number) {
    super();
    this.fd = fd;
    this.timer = setInterval(() => this.drain(), pollMs);
    this.timer.unref();
  }

  /** Subscribes to the proc connector; throws SysError (EPERM without CAP_NET_ADMIN). */
  static open(options: ProcEventsOptions = {}): ProcEvents {
    const fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) throw new SysError(koffi.errno(), 'socket(NETLINK_CONNECTOR)');
    try {
      const size = Buffer.alloc(4);
      size.writeInt32LE(4 << 20);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4); // best effort: the default still works
      // struct sockaddr_nl: family u16, pad u16, pid u32 (0: the kernel picks), groups u32.
      const addr = Buffer.alloc(12);
      addr.writeUInt16LE(AF_NETLINK, 0);
      addr.writeUInt32LE(CN_IDX_PROC, 8);
      if (bind(fd, addr, addr.length) < 0) throw new SysError(koffi.errno(), 'bind(CN_IDX_PROC)');
      const listen = controlMessage(PROC_CN_MCAST_LISTEN);
      if (Number(send(fd, listen, listen.length, 0)) < 0) throw new SysError(koffi.errno(), 'send(PROC_CN_MCAST_LISTEN)');
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return new ProcEvents(fd, options.pollMs ?? 50);
  }

  /** Reads and emits every event queued now. Cheap when none are: call it before answering a request. */
  drain(): void {
    while (this.fd >= 0) {
      const n = Number(recv(this.fd, this.buf, this.buf.length, 0));
      if (n < 0) {
        const e = koffi.errno();
        if (e === EINTR) continue;
        if (e === ENOBUFS) {
          this.emit('overflow');
          continue;
        }
        if (e === EAGAIN) return;
        throw new SysError(e, 'recv(proc connector)');
      }
      if (n === 0) return;
      this.parse(n);
    }
  }

  private parse(n: number): void {
    const b = this.buf;
    // One datagram may in principle carry several netlink messages, each 4-aligned.
    for (let at = 0; at + NLMSG_HDRLEN + CN_MSG_LEN <= n;) {
      const len = b.readUInt32LE(at);
      if (len < NLMSG_HDRLEN || at + len > n) return;
      const cn = at + NLMSG_HDRLEN;
      if (b.readUInt32LE(cn) === CN_IDX_PROC && b.readUInt32LE(cn + 4) === CN_VAL_PROC) {
        this.emitEvent(cn + CN_MSG_LEN, b.readUInt16LE(cn + 16));
      }
      at += (len + 3) & ~3;
    }
  }

  private emitEvent(ev: number, len: number): void {
    const b = this.buf;
    if (len < EV.DATA + 8) return;
    const what = b.readUInt32LE(ev + EV.WHAT);
    const d = ev + EV.DATA;
    if (what === PROC_EVENT_EXEC) {
      this.emit('exec', { pid: b.readInt32LE(d), tgid: b.readInt32LE(d + 4) } satisfies ExecEvent);
    } else if (what === PROC_EVENT_EXIT && len >= EV.DATA + 16) {
      this.emit('exit', {
        pid: b.readInt32LE(d), tgid: b.readInt32LE(d + 4), exitCode: b.readUInt32LE(d + 8), exitSignal: b.readUInt32LE(d + 12),
      } satisfies ExitEvent);
    } else if (what === PROC_EVENT_FORK && len >= EV.DATA + 16) {
      this.emit('fork', {
        parent: { pid: b.readInt32LE(d), tgid: b.readInt32LE(d + 4) },
        child: { pid: b.readInt32LE(d + 8), tgid: b.readInt32LE(d + 12) },
      } satisfies ForkEvent);
    }
    // PROC_EVENT_NONE (the ack of our LISTEN), UID, GID, SID, COMM, PTRACE, COREDUMP: not needed.
  }

  /** Unsubscribes (the kernel counts listeners and stops building events when none are left) and closes the socket. */
  close(): void {
    if (this.fd < 0) return;
    clearInterval(this.timer);
    const ignore = controlMessage(PROC_CN_MCAST_IGNORE);
    send(this.fd, ignore, ignore.length, 0);
    closeFd(this.fd);
    this.fd = -1;
  }
}

export const openProcEvents = (options?: ProcEventsOptions): ProcEvents => ProcEvents.open(options);

/** The proc connector, or undefined and why (EPERM when not root, EPROTONOSUPPORT without CONFIG_PROC_EVENTS). */
export function tryOpenProcEvents(options?: ProcEventsOptions): { events: ProcEvents } | { events: undefined; reason: string } {
  try {
    return { events: ProcEvents.open(options) };
  } catch (err) {
    if (err instanceof SysError) return { events: undefined, reason: err.message };
    throw err;
  }
}
