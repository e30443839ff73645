// proto/run.proto (the Runner service and mfsrun's messages): the gRPC constructor for the
// home -> target hop, the message types as proto-loader delivers them (bytes as Buffer, oneof
// named in `what`), and the framing of the same messages on mfsrun's unix socket: a 4-byte
// big-endian length, then the protobuf encoding. protobufjs encodes those frames, so both hops
// carry exactly the same messages.
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const LOAD_OPTIONS: Options = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true };
const PROTO = join(dirname(fileURLToPath(import.meta.url)), 'run.proto');

/** Placement of RunStart.placement (mosrun's choices). */
export const Placement = { ADVISOR: 0, HOME: 1, NODE: 2, LIST: 3 } as const;

export interface RunWeightMsg { node: number; calls: number; read_kb: number }
export interface RunStartMsg {
  argv: Buffer[];
  cwd: Buffer;
  cwd_in_mount: boolean;
  mount_args: number[];
  env: Buffer[];
  placement: number;
  nodes: number[];
  fallback: boolean;
  locked: boolean;
  restartable: boolean;
  weights: RunWeightMsg[];
  uid: number;
  gid: number;
  groups: number[];
  home: number;
  job: string;
}
export interface MigrateRequestMsg { pid: number; job: string; to: string }
export interface StartedMsg { node: number; pid: number; job: string; home: number; starttime: string }
export interface ExitedMsg { code: number; signal: number }
export interface FailedMsg { errno: string; message: string }
export interface JobMsg {
  job: string; home: number; node: number; pid: number; client_pid: number; uid: number; argv: Buffer[];
  restartable: boolean; locked: boolean; restarts: number;
}
export interface JobsReplyMsg { jobs: JobMsg[] }

export type RunInputMsg =
  | { what: 'start'; start: RunStartMsg }
  | { what: 'stdin'; stdin: Buffer }
  | { what: 'stdin_eof'; stdin_eof: boolean }
  | { what: 'signal'; signal: number }
  | { what: 'migrate'; migrate: MigrateRequestMsg }
  | { what: 'jobs'; jobs: Record<string, never> };

export type RunOutputMsg =
  | { what: 'started'; started: StartedMsg }
  | { what: 'stdout'; stdout: Buffer }
  | { what: 'stderr'; stderr: Buffer }
  | { what: 'exited'; exited: ExitedMsg }
  | { what: 'failed'; failed: FailedMsg }
  | { what: 'restarted'; restarted: StartedMsg }
  | { what: 'notice'; notice: string }
  | { what: 'migrated'; migrated: string }
  | { what: 'jobs'; jobs: JobsReplyMsg };

/** The Runner client constructor; its `.service` is the server-side definition. */
export function loadRunnerConstructor(): ServiceClientConstructor {
  const omfs = loadPackageDefinition(loadSync(PROTO, LOAD_OPTIONS))['omfs'] as GrpcObject;
  return omfs['Runner'] as ServiceClientConstructor;
}

/** A RunStart with every field at its default, for callers that set a few. */
export function emptyStart(): RunStartMsg {
  return {
    argv: [], cwd: Buffer.alloc(0), cwd_in_mount: false, mount_args: [], env: [], placement: Placement.ADVISOR, nodes: [],
    fallback: false, locked: false, restartable: false, weights: [], uid: 0, gid: 0, groups: [], home: 0, job: '',
  };
}

/** Largest frame either side accepts (a start carries argv and env: Linux allows about 2 MiB of both). */
export const MAX_FRAME = 4 * 1024 * 1024;

let root: protobuf.Root | undefined;
function types(): { input: protobuf.Type; output: protobuf.Type } {
  // keepCase: the same field names proto-loader gives the gRPC hop (cwd_in_mount, not cwdInMount).
  root ??= protobuf.parse(readFileSync(PROTO, 'utf8'), { keepCase: true }).root;
  return { input: root.lookupType('omfs.RunInput'), output: root.lookupType('omfs.RunOutput') };
}
const CONVERT: protobuf.IConversionOptions = { longs: String, enums: Number, defaults: true, oneofs: true };

function frame(type: protobuf.Type, msg: object): Buffer {
  const body = type.encode(type.fromObject(msg)).finish();
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

export const encodeInputFrame = (m: RunInputMsg): Buffer => frame(types().input, m);
export const encodeOutputFrame = (m: RunOutputMsg): Buffer => frame(types().output, m);

/**
 * Splits a byte stream into decoded messages. `push` returns the messages complete so far and
 * throws on a frame larger than MAX_FRAME or one that does not decode (the peer is then dropped).
 */
export class FrameReader<T> {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly type: protobuf.Type) {}

  push(chunk: Buffer): T[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: T[] = [];
    while (this.pending.length >= 4) {
      const len = this.pending.readUInt32BE(0);
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes (at most ${MAX_FRAME})`);
      if (this.pending.length < 4 + len) break;
      const body = this.pending.subarray(4, 4 + len);
      this.pending = this.pending.subarray(4 + len);
      out.push(this.type.toObject(this.type.decode(body), CONVERT) as T);
    }
    return out;
  }
}

export const inputReader = (): FrameReader<RunInputMsg> => new FrameReader<RunInputMsg>(types().input);
export const outputReader = (): FrameReader<RunOutputMsg> => new FrameReader<RunOutputMsg>(types().output);
