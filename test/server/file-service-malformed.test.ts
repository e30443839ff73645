// Malformed input: random bytes and random field values in every request type, many iterations.
// Each gets an error (or a harmless answer), and the server stays up: a valid call succeeds after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from '../harness/file-service-server.js';
import { ROOT_CALLER as root, type Entry } from '../../proto/file-client.js';

let h: Harness;
let top: Entry;
let raw: grpc.Client;
let proto: protobuf.Root;
const protoPath = fileURLToPath(new URL('../../proto/omfs.proto', import.meta.url));

beforeAll(async () => {
  h = await startHarness();
  top = await h.client.root(root, h.exports[0]!);
  fs.writeFileSync(join(h.exports[0]!, 'f'), 'content');
  raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
  proto = await protobuf.load(protoPath);
});
afterAll(async () => {
  raw?.close();
  await h.stop();
});

const service = () => proto.lookupService('omfs.FileService');
const identity = (b: Buffer): Buffer => b;

/** Sends raw bytes to a method, whatever its kind; resolves with the status code (0 = OK). */
function sendRaw(method: protobuf.Method, bytes: Buffer): Promise<number> {
  const path = `/omfs.FileService/${method.name}`;
  return new Promise((resolve) => {
    const done = (err: grpc.ServiceError | null) => resolve(err ? err.code : 0);
    if (method.requestStream) {
      const call = raw.makeClientStreamRequest(path, identity, identity, (err) => done(err));
      call.write(bytes);
      call.end();
    } else if (method.responseStream) {
      const call = raw.makeServerStreamRequest(path, identity, identity, bytes, { deadline: Date.now() + 10_000 });
      call.on('data', () => {});
      call.on('error', (err: grpc.ServiceError) => done(err));
      call.on('end', () => done(null));
    } else {
      raw.makeUnaryRequest(path, identity, identity, bytes, { deadline: Date.now() + 10_000 }, (err) => done(err));
    }
  });
}

function randomValue(field: protobuf.Field): unknown {
  const pick = randomInt(6);
  switch (field.type) {
    case 'string': return [randomBytes(randomInt(300)).toString('latin1'), '..', '/', 'f', '', 'x'.repeat(300)][pick];
    case 'bytes': return [randomBytes(randomInt(40)), top.handle, Buffer.alloc(0), randomBytes(25), top.handle, Buffer.alloc(25)][pick];
    case 'bool': return pick % 2 === 0;
    case 'uint32': return [0, 1, 0xffffffff, randomInt(2 ** 31), 0o170777, 4][pick];
    case 'uint64': case 'int64': return ['0', '18446744073709551615', String(randomInt(2 ** 20)) /* no huge fallocate on a shared disk */, '9223372036854775807', '1', '4096'][pick];
    default: return undefined; // messages handled by the caller
  }
}

function randomMessage(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (randomInt(5) === 0) continue;
    field.resolve();
    if (field.resolvedType instanceof protobuf.Type) {
      if (depth < 2) out[field.name] = field.repeated ? [randomMessage(field.resolvedType, depth + 1)] : randomMessage(field.resolvedType, depth + 1);
    } else if (field.repeated) {
      out[field.name] = [randomValue(field), randomValue(field)];
    } else {
      out[field.name] = randomValue(field);
    }
  }
  return out;
}

describe('malformed requests', () => {
  it('random bytes to every method: an error each time, the server stays up', async () => {
    const methods = service().methodsArray;
    let errors = 0;
    for (let i = 0; i < 300; i++) {
      const m = methods[i % methods.length]!;
      if ((await sendRaw(m, randomBytes(randomInt(1, 200)))) !== 0) errors++;
    }
    // Random bytes can by chance decode to a harmless valid request (say, Release of an unknown fh).
    expect(errors).toBeGreaterThanOrEqual(285);
    expect((await h.client.getAttr(root, top.handle)).mode & 0o170000).toBe(0o040000);
  });

  it('random field values in every request type: errors, no crash, nothing outside touched', async () => {
    const sentinel = join(h.dir, 'sentinel');
    fs.writeFileSync(sentinel, 'outside');
    const methods = service().methodsArray;
    let errors = 0;
    for (let i = 0; i < 600; i++) {
      const m = methods[i % methods.length]!;
      if (m.name === 'SetLkW') continue; // a valid random lock request may legitimately wait forever
      const type = proto.lookupType(m.requestType);
      const msg = type.fromObject(randomMessage(type));
      const status = await sendRaw(m, Buffer.from(type.encode(msg).finish()));
      if (status !== 0) errors++;
    }
    expect(errors).toBeGreaterThan(300);
    expect(fs.readFileSync(sentinel, 'utf8')).toBe('outside');
    // The fuzz may legitimately have removed or renamed 'f' (it calls with valid handles too):
    // the proof the server is still sound is a full valid round trip.
    const { entry, fh } = await h.client.create(root, top.handle, 'after-fuzz', fs.constants.O_RDWR | fs.constants.O_CREAT);
    await h.client.write(root, entry.handle, fh, 0, Buffer.from('still up'));
    expect((await h.client.read(root, entry.handle, fh, 0, 100)).toString()).toBe('still up');
  });
});
