// The worker side of blocking.ts: plain synchronous libc calls, errno read on this same thread.
import { parentPort } from 'node:worker_threads';
import * as c from './libc.js';

parentPort!.on('message', (m: { id: number; fn: string; args: number[] }) => {
  let ret: number;
  const a = m.args;
  switch (m.fn) {
    case 'fallocate': ret = c.fallocate(a[0], a[1], a[2], a[3]); break;
    default: ret = -1;
  }
  parentPort!.postMessage({ id: m.id, ret, errno: ret === -1 ? c.errno() : 0 });
});
