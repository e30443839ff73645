// In-process FileService on 127.0.0.1:<random port> with temp exports and a typed client.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileService, type ExportSpec, type FileService } from '../../server/file-service.js';
import { LockTable } from '../../server/locks.js';
import { FileClient } from '../../proto/file-client.js';

export interface Harness {
  dir: string; stateDir: string; exports: string[]; address: string; client: FileClient; service: FileService;
  server: grpc.Server; locks: LockTable;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface HarnessOptions { nodeId?: number; exports?: Array<Partial<ExportSpec> & { name: string }> }

async function serve(service: FileService): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  server.addService(service.definition, service.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, address: `127.0.0.1:${port}` };
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'omfs-fs-'));
  const stateDir = join(dir, 'state');
  const specs: ExportSpec[] = (opts.exports ?? [{ name: 'a' }]).map((e, i) => {
    const path = join(dir, e.name);
    mkdirSync(path, { recursive: true });
    return { path, dfsa: e.dfsa ?? i + 1, readOnly: e.readOnly ?? false, rootSquash: e.rootSquash ?? false };
  });
  const locks = new LockTable();
  const nodeId = opts.nodeId ?? 7;
  let service = await createFileService({ nodeId, exports: specs, stateDir, locks });
  let { server, address } = await serve(service);
  const h: Harness = {
    dir, stateDir, exports: specs.map((s) => s.path), address, client: new FileClient(address), service, server, locks,
    async restart() {
      h.server.forceShutdown();
      await h.service.close();
      service = await createFileService({ nodeId, exports: specs, stateDir, locks: new LockTable() });
      ({ server, address } = await serve(service));
      h.client.close();
      Object.assign(h, { service, server, address, client: new FileClient(address) });
    },
    async stop() {
      h.client.close();
      h.server.forceShutdown();
      await h.service.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
