// Serving one FUSE connection: decode, dispatch through the opcode table, answer every request
// exactly once. An errno thrown by the filesystem becomes an error reply; any other throw is logged
// and becomes EIO, so a bug never kills the mount.
import { constants } from 'node:os';
import {
  InitFlag, KERNEL_MINOR_VERSION, KERNEL_VERSION, MAX_BACKGROUND, MAX_PAGES, MAX_READAHEAD, MAX_WRITE,
  PASSTHROUGH_STACK_DEPTH, READ_BUFFER_SIZE, WANTED_INIT_FLAGS,
} from './abi.js';
import { DecodeError, decodeRequest, opcodeName, type Request } from './decode.js';
import { type BusyPoll, FuseDevice } from './device.js';
import { encodeError, encodeInit } from './encode.js';
import { type FileSystem, RequestContext } from './filesystem.js';
import { Notifier } from './notify.js';
import { errnoName, type MaybeReply, operations, type Reply } from './operations.js';
import { describeRequest } from './trace.js';

export interface SessionOptions {
  debug?: boolean;
  /** INIT flags this filesystem does not want even though the layer supports them. */
  withoutFlags?: bigint;
  /** INIT flags beyond the default set, e.g. PASSTHROUGH for a filesystem that registers backing files. */
  withFlags?: bigint;
  /**
   * Reuse the memory of a large WRITE's payload for a later request once its handler has fulfilled
   * (not when it failed or was interrupted: something may still hold the payload then). Only for a
   * filesystem that keeps no reference to `data` beyond the promise (or value) its write returns:
   * saves a 1 MiB allocation per WRITE, and the garbage collections that come with them.
   */
  reuseWriteBuffers?: boolean;
  /** Keep reading the device for a moment after the last answer (see BusyPoll); default: never. */
  busyPoll?: BusyPoll;
  /** Where debug lines and bug reports go (default: stderr). */
  log?: (line: string) => void;
}

const errnoByName: Readonly<Record<string, number>> = constants.errno;

interface InFlight {
  ctx: RequestContext;
  answered: boolean;
}

export class Session {
  readonly device: FuseDevice;
  readonly notifier: Notifier;
  private readonly inFlight = new Map<bigint, InFlight>();
  private readonly log: (line: string) => void;
  private readonly debug: boolean;
  private initDone!: () => void;
  private ended!: (reason: string) => void;
  /** Resolves once INIT has been answered. */
  readonly initialized = new Promise<void>((r) => (this.initDone = r));
  /** Resolves with the reason when the connection ends (ENODEV = unmounted). */
  readonly closed = new Promise<string>((r) => (this.ended = r));
  negotiatedFlags = 0n;

  constructor(readonly fd: number, private readonly fs: FileSystem, private readonly options: SessionOptions = {}) {
    this.device = new FuseDevice(fd);
    this.notifier = new Notifier(this.device);
    this.debug = options.debug ?? false;
    this.log = options.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Serve requests; call once mount(8) has attached the fd (see FuseDevice.start). */
  start(): void {
    this.device.start({
      bufferSize: READ_BUFFER_SIZE,
      onFrame: (frame) => this.handle(frame),
      busyPoll: this.options.busyPoll,
      allAnswered: () => this.inFlight.size === 0,
      onEnd: (reason) => {
        this.fs.destroy?.();
        this.ended(reason);
      },
    });
  }

  handle(frame: Buffer): void {
    let req: Request;
    try {
      req = decodeRequest(frame);
    } catch (err) {
      // A frame we cannot read is answered EIO when it has a unique; it never ends the session.
      const unique = err instanceof DecodeError ? err.unique : undefined;
      this.log(`omfs fuse: ${err instanceof Error ? err.message : String(err)}`);
      if (unique !== undefined) this.send(unique, encodeError(unique, constants.errno.EIO));
      return;
    }
    if (this.debug) this.log(`rx ${req.header.unique}: ${describeRequest(req)}`);
    switch (req.op) {
      case 'INIT': return this.init(req);
      case 'INTERRUPT': return this.interrupt(req.targetUnique);
      case 'DESTROY':
        this.fs.destroy?.();
        this.send(req.header.unique, encodeError(req.header.unique, 0));
        return;
      default: this.dispatch(req);
    }
  }

  /**
   * Run the request's handler. A synchronous answer is sent at once; only a pending one is
   * registered in inFlight, where an INTERRUPT can find it.
   */
  private dispatch(req: Request): void {
    const unique = req.header.unique;
    const handler = operations[req.op] as ((fs: FileSystem, ctx: RequestContext, r: Request) => MaybeReply) | undefined;
    const h = req.header;
    const ctx = new RequestContext(h.uid, h.gid, h.pid, unique);
    let answer: MaybeReply;
    let threw = false;
    try {
      if (!handler) throw Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' });
      answer = handler(this.fs, ctx, req);
    } catch (err) {
      threw = true;
      const errno = this.errnoOf(err, req);
      // FORGET and BATCH_FORGET are never answered, not even with an error.
      answer = req.op === 'FORGET' || req.op === 'BATCH_FORGET' ? null : encodeError(unique, errno);
    }
    const lent = req.op === 'WRITE' && this.options.reuseWriteBuffers ? req.data : undefined;
    if (!(answer instanceof Promise)) {
      if (answer !== null) this.send(unique, answer);
      if (lent && !threw) this.device.giveBack(lent);
      return;
    }
    const entry: InFlight = { ctx, answered: false };
    this.inFlight.set(unique, entry);
    const finish = (reply: Reply): void => {
      this.inFlight.delete(unique);
      if (entry.answered || reply === null) return;
      entry.answered = true;
      this.send(unique, reply);
    };
    // Once answered, and a WRITE's buffer given back (the poll may read into it), the device may
    // poll for the next request: it does if nothing else is in flight.
    answer.then((reply) => {
      finish(reply);
      if (lent) this.device.giveBack(lent);
    }, (err: unknown) => finish(encodeError(unique, this.errnoOf(err, req)))).then(() => this.device.spinIfIdle());
  }

  private errnoOf(err: unknown, req: Request): number {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && errnoByName[code] !== undefined) return errnoByName[code];
    // A code Node does not name (EHOSTDOWN, EKEYEXPIRED...): the error's number, positive (ours)
    // or negative (libuv's, which is -errno on Linux).
    const n = (err as { errno?: unknown } | null)?.errno;
    if (typeof n === 'number' && Number.isInteger(n) && n !== 0 && Math.abs(n) < 4096) return Math.abs(n);
    this.log(`omfs fuse: ${opcodeName(req.header.opcode)} ${req.header.unique} failed with a non-errno error (EIO): ${err instanceof Error ? err.stack : String(err)}`);
    return constants.errno.EIO;
  }

  private init(req: Extract<Request, { op: 'INIT' }>): void {
    const unique = req.header.unique;
    if (req.major !== KERNEL_VERSION) {
      this.log(`omfs fuse: kernel protocol ${req.major}.${req.minor} unsupported`);
      this.send(unique, encodeError(unique, constants.errno.EPROTO));
      return;
    }
    const wanted = (WANTED_INIT_FLAGS | (this.options.withFlags ?? 0n)) & ~(this.options.withoutFlags ?? 0n);
    this.negotiatedFlags = req.flags & wanted;
    // flags2 is only read by the kernel when INIT_EXT is set in our reply.
    if (this.negotiatedFlags >> 32n !== 0n) this.negotiatedFlags |= InitFlag.INIT_EXT;
    this.send(unique, encodeInit(unique, {
      major: KERNEL_VERSION,
      minor: Math.min(req.minor, KERNEL_MINOR_VERSION),
      maxReadahead: Math.min(req.maxReadahead, MAX_READAHEAD),
      flags: this.negotiatedFlags,
      maxBackground: MAX_BACKGROUND,
      congestionThreshold: (MAX_BACKGROUND * 3) / 4,
      maxWrite: MAX_WRITE,
      timeGran: 1,
      maxPages: MAX_PAGES,
      maxStackDepth: this.negotiatedFlags & InitFlag.PASSTHROUGH ? PASSTHROUGH_STACK_DEPTH : 0,
    }));
    this.fs.init?.({ major: req.major, minor: req.minor, flags: this.negotiatedFlags });
    this.initDone();
  }

  /** The kernel gave up on a request: fire its signal and answer EINTR now; its late reply is dropped. */
  private interrupt(target: bigint): void {
    // One reader sees frames in the kernel's order, and the kernel interrupts only requests it has
    // handed us: an unknown target was answered already.
    const entry = this.inFlight.get(target);
    if (!entry || entry.answered) return;
    entry.answered = true;
    entry.ctx.interrupt();
    this.send(target, encodeError(target, constants.errno.EINTR));
  }

  private send(unique: bigint, reply: Buffer | Buffer[]): void {
    const err = this.device.reply(reply);
    if (this.debug) {
      const first = Buffer.isBuffer(reply) ? reply : reply[0]!;
      const e = first.readInt32LE(4);
      const len = first.readUInt32LE(0);
      this.log(`tx ${unique}: ${e === 0 ? 'OK' : codeName(-e)} ${len}B${err ? ` (write ${err})` : ''}`);
    }
    // ENOENT: the kernel no longer waits for this request (interrupted, aborted): normal.
    if (err && err !== 'ENOENT') this.log(`omfs fuse: reply ${unique} failed: ${err}`);
  }
}

function codeName(errno: number): string {
  return errnoName(errno) ?? `errno ${errno}`;
}
