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
  sessions: number;
  sessions_held: number;
}
export interface IdentifyReply { node: number; version: string; exports: ExportInfo[]; hostname: string; tls: boolean; health: Health }

/** A load report on the wire; uint64 fields arrive as decimal strings and may be sent as numbers. */
export interface LoadReportMsg {
  node: number;
  load: number;
  cpus: number;
  speed: number;
  free_mem_kb: string | number;
  read_kbps: number;
  write_kbps: number;
  age_ms: string | number;
}
export interface LoadMessageMsg { from: number; reports: LoadReportMsg[] }
export interface LoadRequestMsg { node: number; local_only: boolean }
export interface LoadReplyMsg { self: number; reports: LoadReportMsg[]; asked_directly: boolean }
export interface ClusterRequestMsg { node: number }
export interface NodeStatusMsg { node: number; addresses: string[]; up: boolean; error: string; identity?: IdentifyReply | null }
export interface ClusterReplyMsg { self: number; map: string; nodes: NodeStatusMsg[] }
export interface ProcessIoCountMsg { process: string; node: number; calls: number; read_kb: number; write_kb: number }
export interface ProcessIoReportMsg { exec: string[]; io: ProcessIoCountMsg[]; exit: string[] }

export interface ProbeRequestMsg { payload: Buffer; reply_bytes: number }
export interface ProbeReplyMsg { payload: Buffer; cpu_user_us: string | number; cpu_system_us: string | number; received_bytes: number }
export interface ProcessIoMsg { node: number; calls: number; read_kb: number; write_kb: number }
export interface ProcessProfileMsg { process: string; decay: string; io: ProcessIoMsg[] }
export interface ProcessesReplyMsg { self: number; processes: ProcessProfileMsg[]; tracked: number }

/** The NodeService client constructor; its `.service` is the server-side definition. */
export function loadNodeServiceConstructor(): ServiceClientConstructor {
  const def = loadSync(join(here, 'node.proto'), LOAD_OPTIONS);
  const omfs = loadPackageDefinition(def)['omfs'] as GrpcObject;
  return omfs['NodeService'] as ServiceClientConstructor;
}
