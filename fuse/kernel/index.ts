// The FUSE kernel protocol layer: knows nothing of gRPC, the cluster or the rest of omfs.
export * from './abi.js';
export * from './decode.js';
export * from './encode.js';
export * from './filesystem.js';
export { errnoName, operations, KernelErrno, type Reply } from './operations.js';
export { Session, type SessionOptions } from './session.js';
export { type BusyPoll, DEFAULT_BUSY_POLL_US, FuseDevice } from './device.js';
export { Notifier } from './notify.js';
export * from './mount.js';
