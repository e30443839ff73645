// The omfs FileService: a handle-based POSIX file service over gRPC (proto/omfs.proto).
// Stub: the contract S2 codes against; handlers follow.
import type * as grpc from '@grpc/grpc-js';
import type { LockTable } from './locks.js';

export interface ExportSpec { path: string; dfsa: number /* 0 = none, 1..8 */; readOnly: boolean; rootSquash: boolean }
export interface FileServiceOptions { nodeId: number; exports: ExportSpec[]; stateDir: string; locks: LockTable }
export interface FileService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  close(): Promise<void>;
}

export async function createFileService(_opts: FileServiceOptions): Promise<FileService> {
  throw new Error('createFileService: not implemented yet');
}
