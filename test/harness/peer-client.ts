// A FileClient on a connection of its own, i.e. a peer of its own as mfsd counts peers. grpc-js
// shares one connection among all clients of a process that dial the same address with the same
// options (its global subchannel pool), so two plain FileClients would be ONE peer to the daemon.
import { credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { FileClient } from '../../proto/file-client.js';

export function peerClient(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure()): FileClient {
  return new FileClient(address, creds, { 'grpc.use_local_subchannel_pool': 1 });
}
