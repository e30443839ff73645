// A FileClient on a connection of its own, i.e. a peer of its own as mfsd counts peers. grpc-js
// shares one connection among all clients of a process that dial the same address with the same
// options (its global subchannel pool), so two plain FileClients would be ONE peer to the daemon.
import { credentials as grpcCredentials, type ChannelCredentials, type Client } from '@grpc/grpc-js';
import { FileClient } from '../../proto/file-client.js';
import { loadFileServiceConstructor } from '../../proto/load.js';

export function peerClient(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure()): FileClient {
  const client = new FileClient(address, creds);
  client.close();
  const Ctor = loadFileServiceConstructor();
  const raw = new Ctor(address, creds, { 'grpc.max_receive_message_length': 8 << 20, 'grpc.use_local_subchannel_pool': 1 });
  Object.defineProperty(client, 'raw', { value: raw as Client & Record<string, unknown> });
  return client;
}
