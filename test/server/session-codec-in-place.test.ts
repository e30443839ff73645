// Bulk frames encoded in place (proto/session-codec.ts HEADROOM): a Write or a read reply whose 1 MiB
// data has marked headroom before it is encoded around the data without copying it, and decodes to
// exactly what protobufjs's own encoding of the same frame decodes to. Without a mark, with too
// little room, or a second time (the mark is used up), the frame is encoded the ordinary way.
import { describe, expect, it } from 'vitest';
import {
  decodeClientFrame, decodeServerFrame, encodeClientFrame, encodeServerFrame, HEADROOM, markHeadroom,
} from '../../proto/session-codec.js';

const MIB = 1 << 20;

/** `size` bytes of a recognisable pattern, after `room` spare bytes of the same memory. */
function payload(size: number, room: number): Buffer {
  const data = Buffer.allocUnsafeSlow(room + size).subarray(room);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) & 0xff;
  return data;
}

function sameMemory(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer;
}

const writeFrame = (data: Buffer) => ({
  id: 77,
  write: { caller: { uid: 1000, gid: 1000, groups: [4, 24, 27], pid: 4242 }, handle: Buffer.alloc(40, 9), fh: 12, flags: 2, offset: 5 * MIB, data },
});

describe('session frames encoded in place', () => {
  it('a Write frame with headroom is a view of the data\'s memory and decodes like the ordinary encoding', () => {
    const data = payload(MIB, 512);
    const reference = decodeClientFrame(encodeClientFrame(writeFrame(Buffer.from(data))));
    markHeadroom(data);
    const frame = encodeClientFrame(writeFrame(data));
    expect(sameMemory(frame, data)).toBe(true);
    expect(frame.byteOffset + frame.length).toBe(data.byteOffset + data.length);
    const decoded = decodeClientFrame(frame);
    expect(decoded.id).toBe(77);
    const w = decoded['write'] as Record<string, unknown>;
    const r = reference['write'] as Record<string, unknown>;
    expect(Buffer.compare(w['data'] as Buffer, data)).toBe(0);
    for (const k of ['fh', 'flags', 'offset']) expect(w[k]).toEqual(r[k]);
    expect(Buffer.compare(w['handle'] as Buffer, r['handle'] as Buffer)).toBe(0);
    expect({ ...(w['caller'] as object) }).toEqual({ ...(r['caller'] as object) });
  });

  it('a read reply with headroom is encoded in place; id, after and data survive', () => {
    const data = payload(MIB - 100, 64);
    markHeadroom(data);
    const frame = encodeServerFrame({ id: 9, data: { data }, after: 2 ** 40 + 5 });
    expect(sameMemory(frame, data)).toBe(true);
    const decoded = decodeServerFrame(frame);
    expect(decoded.id).toBe(9);
    expect(decoded.reply ?? 'data').toBe('data');
    expect(decoded['after']).toBe(2 ** 40 + 5);
    expect(Buffer.compare((decoded['data'] as { data: Buffer }).data, data)).toBe(0);
  });

  it('the mark is used once: a second encoding (a resent Write) copies, and both decode the same', () => {
    const data = payload(MIB, 512);
    markHeadroom(data);
    const first = encodeClientFrame(writeFrame(data));
    expect((data.buffer as { [HEADROOM]?: number })[HEADROOM]).toBeUndefined();
    const firstCopy = Buffer.from(first);
    const second = encodeClientFrame(writeFrame(data));
    expect(sameMemory(second, data)).toBe(false);
    expect(Buffer.compare(first, firstCopy)).toBe(0);
    expect(Buffer.compare((decodeClientFrame(second)['write'] as { data: Buffer }).data, data)).toBe(0);
  });

  it('too little headroom, a view not at the mark, or a small payload: the ordinary encoding', () => {
    const tight = payload(MIB, 8);
    markHeadroom(tight);
    expect(sameMemory(encodeClientFrame(writeFrame(tight)), tight)).toBe(false);

    const whole = payload(MIB + 16, 512);
    markHeadroom(whole);
    const inner = whole.subarray(16);
    expect(sameMemory(encodeClientFrame(writeFrame(inner)), whole)).toBe(false);

    const small = payload(4096, 512);
    markHeadroom(small);
    expect(sameMemory(encodeServerFrame({ id: 1, data: { data: small }, after: 0 }), small)).toBe(false);
    for (const d of [tight, inner, small]) {
      const f = Buffer.isBuffer(d) && d.length === 4096
        ? (decodeServerFrame(encodeServerFrame({ id: 1, data: { data: d }, after: 0 }))['data'] as { data: Buffer }).data
        : (decodeClientFrame(encodeClientFrame(writeFrame(d)))['write'] as { data: Buffer }).data;
      expect(Buffer.compare(f, d)).toBe(0);
    }
  });
});
