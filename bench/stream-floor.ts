// The floor for the session benchmark (bench/server-rpc.ts): bare messages on ONE bidirectional
// gRPC stream over mutual TLS, with the same grpc-js and Buffer codecs (identity serializers: no
// protobuf, no filesystem). The server is its own process, as mfsd is: `node dist/bench/stream-floor.js
// --serve <cert dir>` prints "floor listening on <port>" and answers every message, in order, with
// a message of the size the request's first 4 bytes ask for. So a session's rows can be printed
// beside what the transport alone does with the same message sizes and the same number in flight.
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clientCredentials, readTlsMaterial, serverCredentials } from '../server/tls.js';

const PATH = '/omfs.bench.Floor/Echo';
const identity = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: {
    path: PATH, requestStream: true, responseStream: true,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
};

const tlsPaths = (dir: string) => ({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') });

async function serve(certDir: string): Promise<void> {
  const server = new grpc.Server();
  const replies = new Map<number, Buffer>();
  server.addService(definition, {
    Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (req: Buffer) => {
        const size = req.readUInt32LE(0);
        let reply = replies.get(size);
        if (!reply) replies.set(size, (reply = Buffer.alloc(size, 0x5a)));
        if (!call.write(reply)) call.pause();
      });
      call.on('drain', () => call.resume());
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const creds = serverCredentials(await readTlsMaterial(tlsPaths(certDir)));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  process.stdout.write(`floor listening on ${port}\n`);
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

/** A client of the floor: `call(requestSize, replySize)` resolves when its reply came (replies are in order). */
export class FloorClient {
  private readonly client: grpc.Client;
  private readonly stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly waiting: Array<() => void> = [];
  private readonly requests = new Map<string, Buffer>();

  private constructor(address: string, creds: grpc.ChannelCredentials) {
    this.client = new grpc.Client(address, creds, { 'grpc.max_receive_message_length': 8 << 20, 'grpc.use_local_subchannel_pool': 1 });
    this.stream = this.client.makeBidiStreamRequest(PATH, identity, identity, new grpc.Metadata());
    this.stream.on('data', () => this.waiting.shift()?.());
    this.stream.on('error', () => {});
  }

  static async open(address: string, certDir: string): Promise<FloorClient> {
    return new FloorClient(address, clientCredentials(await readTlsMaterial(tlsPaths(certDir))));
  }

  call(requestSize: number, replySize: number): Promise<void> {
    const key = `${requestSize}:${replySize}`;
    let req = this.requests.get(key);
    if (!req) {
      req = Buffer.alloc(Math.max(4, requestSize), 0x33);
      req.writeUInt32LE(replySize, 0);
      this.requests.set(key, req);
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.stream.write(req);
    });
  }

  close(): void {
    this.stream.end();
    this.client.close();
  }
}

if (process.argv[1]?.endsWith('stream-floor.js')) {
  const { values } = parseArgs({ options: { serve: { type: 'string' } } });
  if (!values.serve) {
    process.stderr.write('usage: stream-floor.js --serve <cert dir>\n');
    process.exit(2);
  }
  serve(values.serve).catch((err: unknown) => {
    process.stderr.write(`stream-floor: ${String(err)}\n`);
    process.exit(1);
  });
}
