// Node has no public API to wait for an arbitrary fd to become readable. The pipe handle of
// `pipe_wrap` (one of the bindings process.binding still allows; DEP0111 is documentation-only,
// but the binding is gone under Node's permission model) adopts any pollable fd as a libuv
// stream, which epoll then watches like a socket: reads happen on the event loop the moment data
// arrives, with no thread parked in read(2). Used for /dev/fuse and for inotify descriptors.
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

interface PipeHandle {
  /** Adopts fd as a libuv stream; returns 0 or a negative libuv error. */
  open(fd: number): number;
}
interface PipeWrapBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

/**
 * A read-only net.Socket over `fd` (which must be pollable). The socket owns the fd from here on:
 * destroying it closes the fd. `options` may set `onread` to read into buffers of the caller's.
 */
export function readStreamOfFd(fd: number, options: { onread?: OnReadOpts } = {}): Socket {
  const binding = (process as unknown as { binding(name: string): unknown }).binding('pipe_wrap') as PipeWrapBinding;
  const handle = new binding.Pipe(binding.constants.SOCKET);
  const err = handle.open(fd);
  if (err !== 0) throw new Error(`cannot watch fd ${fd}: libuv error ${err}`);
  return new Socket({ ...options, handle, readable: true, writable: false } as SocketConstructorOpts);
}
