// copy_file_range(2) between two files the caller has open on this node: the data is copied here,
// on the node that stores both, and never crosses the network (cp and other programs ask for it;
// through /mfs/<K> a copy within node K then costs one request per COPY_MAX bytes). Built from the
// same read and write as the session's Read and Write, so the same checks apply: the input open
// for reading, the output for writing and not O_APPEND (EBADF, as copy_file_range(2) says), the
// setuid bits cleared as a write clears them, a read-only export refused.
import { constants as C } from 'node:fs';
import { Errno } from '../proto/errno.js';
import type { LocalFs } from './local-fs.js';
import type { OpenFiles } from './open-files.js';
import * as io from './ops-io.js';
import { u64, type WireCaller } from './wire.js';

/** Bytes one request copies at most: the caller asks again for the rest, as with a short write. */
export const COPY_MAX = 64 << 20;
/** Bytes held in memory at once. */
const PIECE = 1 << 20;
const O_ACCMODE = 3;

export interface CopyIn {
  caller: WireCaller;
  handle_in: Buffer; fh_in: string; offset_in: string;
  handle_out: Buffer; fh_out: string; offset_out: string;
  length: string; flags: number;
}

export async function copyFileRange(lfs: LocalFs, files: OpenFiles, req: CopyIn): Promise<{ written: string }> {
  if ((req.flags >>> 0) !== 0) throw new Errno('EINVAL', 'copy_file_range takes no flags');
  const out = await io.fileFor(lfs, files, { caller: req.caller, handle: req.handle_out, fh: req.fh_out, flags: C.O_WRONLY });
  try {
    if ((out.file.flags & O_ACCMODE) === C.O_RDONLY || (out.file.flags & C.O_APPEND) !== 0) {
      throw new Errno('EBADF', 'the output is not open for writing, or is open with O_APPEND');
    }
  } finally {
    out.done();
  }
  const length = Math.min(u64(req.length, 'length'), COPY_MAX);
  const from = u64(req.offset_in, 'offset_in');
  const to = u64(req.offset_out, 'offset_out');
  let copied = 0;
  while (copied < length) {
    const parts: Buffer[] = [];
    const want = Math.min(PIECE, length - copied);
    await io.read(lfs, files, { caller: req.caller, handle: req.handle_in, fh: req.fh_in, flags: C.O_RDONLY, offset: String(from + copied), size: String(want) },
      async (chunk) => void parts.push(chunk));
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (data.length === 0) break; // the end of the input
    const chunk: io.WriteChunkIn = { caller: req.caller, handle: req.handle_out, fh: req.fh_out, flags: C.O_WRONLY, offset: String(to + copied), data };
    await io.write(lfs, files, (async function* () { yield chunk; })());
    copied += data.length;
    if (data.length < want) break;
  }
  return { written: String(copied) };
}
