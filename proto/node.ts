// Loads proto/node.proto (NodeService) with the options every omfs side shares, and types its
// messages as proto-loader delivers them (64-bit integers as decimal strings).
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const LOAD_OPTIONS: Options = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true };
const here = dirname(fileURLToPath(import.meta.url));

export interface ExportInfo { path: string; dfsa: number; read_only: boolean; root_squash: boolean }
export interface Health {
  uptime_seconds: number;
  load_average: number[];
  free_memory_bytes: string;
  total_memory_bytes: string;
  cpu_count: number;
}
export interface IdentifyReply { node: number; version: string; exports: ExportInfo[]; hostname: string; tls: boolean; health: Health }

/** The NodeService client constructor; its `.service` is the server-side definition. */
export function loadNodeServiceConstructor(): ServiceClientConstructor {
  const def = loadSync(join(here, 'node.proto'), LOAD_OPTIONS);
  const omfs = loadPackageDefinition(def)['omfs'] as GrpcObject;
  return omfs['NodeService'] as ServiceClientConstructor;
}
