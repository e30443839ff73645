// Loads proto/advisor.proto (the DFSA Advisor service) with the options every omfs side shares,
// and types its messages as proto-loader delivers them (uint64 as decimal strings, oneof named).
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const LOAD_OPTIONS: Options = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true };
const here = dirname(fileURLToPath(import.meta.url));

export interface NodeIoMsg { node: number; calls: number; read_kb: number; write_kb: number }
export interface IoProfileMsg { io: NodeIoMsg[]; cpu: number; dirty_pages: string | number; here: number }
export interface AdviseRequestMsg { process?: string; profile?: IoProfileMsg; subject?: 'process' | 'profile' }
export interface NodeCostMsg { node: number; io_us: number; cpu_us: number; total_us: number }
export interface AdviceMsg {
  process: string;
  here: number;
  move: boolean;
  to: number;
  ranked: NodeCostMsg[];
  saving_us_per_s: number;
  migration_us: number;
  reason: string;
}
export interface AdviseReplyMsg { advice: AdviceMsg }
export interface WatchRequestMsg { processes: string[]; interval_ms: number }

/** The Advisor client constructor; its `.service` is the server-side definition. */
export function loadAdvisorConstructor(): ServiceClientConstructor {
  const def = loadSync(join(here, 'advisor.proto'), LOAD_OPTIONS);
  const omfs = loadPackageDefinition(def)['omfs'] as GrpcObject;
  return omfs['Advisor'] as ServiceClientConstructor;
}
