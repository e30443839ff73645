// Session frames (proto/session.proto) encoded and decoded with protobufjs directly, not through
// proto-loader: the hot path then builds no intermediate objects (proto-loader's toObject copies
// every message), decodes `bytes` as Buffer views into the received frame, and reads 64-bit
// integers as plain numbers when they fit in 2^53 (the common case: sizes, offsets, fhs, times)
// and as decimal strings only when they do not (cluster inode numbers, directory cookies), never as
// Long or BigInt. Every consumer of these values (server/wire.ts u64/bigU64, the client) accepts
// both forms.
//
// The gRPC method's serializers are the identity: each side encodes and decodes the frames itself,
// so a frame that does not decode is an error the session answers, not a failure inside grpc-js.
import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));

/** A 64-bit integer as decoded: a number when it is a safe integer, else its decimal string. */
export type U64 = number | string;

/** A decoded frame: the oneof's name and its message (fields as in omfs.proto, snake_case). */
export interface ClientFrameIn { id: number; op?: string; [field: string]: unknown }
export interface ServerFrameIn { id: number; reply?: string; [field: string]: unknown }

const root = new protobuf.Root();
root.loadSync(join(here, 'session.proto'), { keepCase: true });
root.resolveAll();
const ClientFrame = root.lookupType('omfs.ClientFrame');
const ServerFrame = root.lookupType('omfs.ServerFrame');

const EMPTY = Buffer.alloc(0);
// Decoded messages take absent fields from their prototype. protobufjs puts a Long there for 64-bit
// fields and an empty array for `bytes`; ours get 0 and an empty Buffer, the forms present ones have.
for (const t of [ClientFrame, ServerFrame]) fixDefaults(t, new Set());
function fixDefaults(type: protobuf.Type, seen: Set<protobuf.Type>): void {
  if (seen.has(type)) return;
  seen.add(type);
  const proto = type.ctor.prototype as Record<string, unknown>;
  for (const f of type.fieldsArray) {
    f.resolve();
    if (f.repeated) continue;
    if (f.long) proto[f.name] = 0;
    else if (f.type === 'bytes') proto[f.name] = EMPTY;
    if (f.resolvedType instanceof protobuf.Type) fixDefaults(f.resolvedType, seen);
  }
  for (const f of type.fieldsArray) if (f.repeated && f.resolvedType instanceof protobuf.Type) fixDefaults(f.resolvedType, seen);
}

interface LongLike { low: number; high: number; toString(): string }
const TWO_32 = 2 ** 32;
function fromLong(l: LongLike, unsigned: boolean): U64 {
  const hi = unsigned ? l.high >>> 0 : l.high | 0;
  // |value| < 2^53 exactly when hi is within +-2^21.
  if (hi < 0x200000 && hi >= -0x200000) return hi * TWO_32 + (l.low >>> 0);
  return l.toString();
}

const baseUint64 = protobuf.Reader.prototype.uint64 as unknown as (this: protobuf.Reader) => LongLike;
const baseInt64 = protobuf.Reader.prototype.int64 as unknown as (this: protobuf.Reader) => LongLike;

/** protobufjs's Buffer reader (bytes as views), with 64-bit integers as U64. */
class FrameReader extends protobuf.BufferReader {
  override uint64(): never {
    return (this.safeVarint() ?? fromLong(baseUint64.call(this), true)) as never;
  }
  override int64(): never {
    return (this.safeVarint() ?? fromLong(baseInt64.call(this), false)) as never;
  }
  /**
   * A varint whose value is at most 2^53-1, read with plain number arithmetic (no Long); null, with
   * the position unchanged, for anything larger (negative int64s included: protobufjs's path then).
   * The sum is exact: every partial sum is at most the value.
   */
  private safeVarint(): number | null {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 8 && pos < this.len; i++) {
      const b = buf[pos++]!;
      value += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) return null;
        this.pos = pos;
        return value;
      }
      mul *= 128;
    }
    return null;
  }
}

function decodeAs<T>(type: protobuf.Type, buf: Buffer): T {
  return type.decode(new FrameReader(buf)) as unknown as T;
}

/** Throws (a protobufjs Error) when `buf` is not a ClientFrame. */
export const decodeClientFrame = (buf: Buffer): ClientFrameIn => decodeAs(ClientFrame, buf);
export const decodeServerFrame = (buf: Buffer): ServerFrameIn => decodeAs(ServerFrame, buf);

/**
 * Frames to encode: `{ id, <oneof field>: message }`. 64-bit fields may be numbers or decimal
 * strings, `bytes` Buffers. Throws on a value protobufjs cannot write.
 *
 * A Write's or a read reply's 1 MiB `data` whose memory has headroom (see HEADROOM) is not copied:
 * the frame's other bytes are written into the headroom right before it, and the frame is a view
 * of that memory. Every other frame is encoded by protobufjs, which copies `bytes` fields.
 */
export const encodeClientFrame = (frame: object): Buffer =>
  encodeInPlace(ClientFrame, frame, 'write') ?? (ClientFrame.encode(frame).finish() as Buffer);
export const encodeServerFrame = (frame: object): Buffer =>
  encodeInPlace(ServerFrame, frame, 'data') ?? (ServerFrame.encode(frame).finish() as Buffer);

/**
 * The headroom convention, shared with fuse/kernel/device.ts and server/export-io.ts (which may not
 * import each other, hence a registered symbol): an ArrayBuffer with a number under this key N
 * holds, in its first N bytes, nothing anyone reads any more, and its data starts at byte N. The
 * encoder may write its frame's other fields there once (it takes the mark away): the frame of a
 * 1 MiB payload then costs no copy and no 1 MiB allocation (and so fewer of the full garbage
 * collections that V8 starts for every 64 MiB of new Buffer memory).
 */
export const HEADROOM: unique symbol = Symbol.for('omfs.headroom') as never;
type Marked = ArrayBufferLike & { [HEADROOM]?: number };

/** Marks `data`'s memory before it as free to overwrite; `data` must start right after it. */
export function markHeadroom(data: Buffer): void {
  (data.buffer as Marked)[HEADROOM] = data.byteOffset;
}

function varintBytes(v: number): number[] {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Large payloads only: below this a copy costs less than the extra encode calls. */
const IN_PLACE_MIN = 64 * 1024;

/**
 * `frame` = `{ ...top-level fields, [op]: { ...fields, data } }` encoded into the headroom before
 * `data`; null (encode normally) when its memory has none, or too little, or data is not at its start.
 * Fields in a different order than protobufjs writes them are valid protobuf (any order decodes).
 */
function encodeInPlace(type: protobuf.Type, frame: object, op: string): Buffer | null {
  const f = frame as Record<string, unknown>;
  const msg = f[op] as Record<string, unknown> | undefined;
  const data = msg?.['data'];
  if (!Buffer.isBuffer(data) || data.length < IN_PLACE_MIN) return null;
  const memory = data.buffer as Marked;
  const room = memory[HEADROOM];
  if (room === undefined || room !== data.byteOffset) return null;
  const opField = type.fields[op]!;
  const msgType = opField.resolvedType as protobuf.Type;
  const rest: Record<string, unknown> = { ...f };
  delete rest[op];
  const fields: Record<string, unknown> = { ...msg };
  delete fields['data'];
  const top = type.encode(rest).finish();
  const inner = msgType.encode(fields).finish();
  const dataTag = varintBytes((msgType.fields['data']!.id << 3) | 2);
  const dataLen = varintBytes(data.length);
  const innerLen = inner.length + dataTag.length + dataLen.length + data.length;
  const opHead = [...varintBytes((opField.id << 3) | 2), ...varintBytes(innerLen)];
  const headLen = top.length + opHead.length + inner.length + dataTag.length + dataLen.length;
  if (headLen > room) return null;
  delete memory[HEADROOM];
  const out = Buffer.from(memory, data.byteOffset - headLen, headLen + data.length);
  let at = 0;
  out.set(top, at);
  at += top.length;
  out.set(opHead, at);
  at += opHead.length;
  out.set(inner, at);
  at += inner.length;
  out.set(dataTag, at);
  at += dataTag.length;
  out.set(dataLen, at);
  return out;
}

/**
 * The field numbers present at the top level of a frame (diagnostics of a frame with no known
 * operation: was it a reply, 64..127, or an operation this server does not know?). Never throws.
 */
export function topLevelFields(buf: Buffer): number[] {
  const out: number[] = [];
  try {
    const r = new protobuf.BufferReader(buf);
    while (r.pos < r.len) {
      const tag = r.uint32();
      out.push(tag >>> 3);
      r.skipType(tag & 7);
    }
  } catch {
    // a truncated frame: what was read so far
  }
  return out;
}

const identity = (b: Buffer): Buffer => b;
export const SESSION_METHOD_PATH = '/omfs.SessionService/Session';

/** The Session method with raw Buffer frames both ways (a hand-made definition: no proto-loader). */
export const sessionServiceDefinition: ServiceDefinition = {
  Session: {
    path: SESSION_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'session',
  },
};

/** Bytes per Read or Write request on a session. */
export const SESSION_MAX_IO = 1 << 20;
/**
 * HTTP/2 flow control for session connections, both ways. With HTTP/2's default 64 KiB windows and
 * 16 KiB frames, one 1 MiB write crossed as 64 frames and waited for 16 WINDOW_UPDATEs, each a turn
 * of both event loops: a 1 MiB write to another node took 3.4-4 ms, half of it waiting (bench:mfs seq
 * write 116 MB/s; 290 with these). A stream may have 8 messages of SESSION_MAX_IO in flight, a
 * connection 32 MiB, and frames carry up to one whole message: bounded memory per connection.
 */
export const SESSION_STREAM_WINDOW = 8 * SESSION_MAX_IO;
export const SESSION_CONNECTION_WINDOW = 32 * SESSION_MAX_IO;
export const SESSION_MAX_FRAME = SESSION_MAX_IO + 64 * 1024;
/** Entries per ReadDir reply on a session. */
export const SESSION_DIR_BATCH = 1024;
export const SESSION_VERSION = 1;
