// Loads proto/omfs.proto with the options every omfs side shares (64-bit integers as decimal strings).
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const PROTO_LOAD_OPTIONS: Options = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true };

const here = dirname(fileURLToPath(import.meta.url));

/** The FileService client constructor; its `.service` is the server-side definition. */
export function loadFileServiceConstructor(): ServiceClientConstructor {
  const def = loadSync(join(here, 'omfs.proto'), PROTO_LOAD_OPTIONS);
  const omfs = loadPackageDefinition(def)['omfs'] as GrpcObject;
  return omfs['FileService'] as ServiceClientConstructor;
}

export function fileServiceDefinition(): ServiceDefinition {
  return loadFileServiceConstructor().service;
}
