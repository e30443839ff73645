// One line per request for --debug: `LOOKUP n1 "a" p4242`.
import type { Request } from './decode.js';

/** A name for a log line: printable ASCII as is, any other byte as \xNN. */
export function showName(name: Buffer | string): string {
  if (typeof name === 'string') return JSON.stringify(name);
  let s = '"';
  for (const c of name) s += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s + '"';
}

export function describeRequest(req: Request): string {
  const h = req.header;
  const base = `${req.op === 'UNKNOWN' ? `OP${req.opcode}` : req.op} n${h.nodeId}`;
  let detail = '';
  switch (req.op) {
    case 'LOOKUP': case 'UNLINK': case 'RMDIR': case 'MKDIR': case 'MKNOD': case 'CREATE': case 'REMOVEXATTR': case 'GETXATTR': case 'SETXATTR':
      detail = ` ${showName(req.name)}`;
      break;
    case 'SYMLINK': detail = ` ${showName(req.name)} -> ${showName(req.target)}`; break;
    case 'RENAME': detail = ` ${showName(req.name)} -> n${req.newDir} ${showName(req.newName)}`; break;
    case 'LINK': detail = ` n${req.oldNodeId} ${showName(req.name)}`; break;
    case 'READ': case 'READDIR': case 'READDIRPLUS': detail = ` fh${req.fh} @${req.offset} ${req.size}B`; break;
    case 'WRITE': detail = ` fh${req.fh} @${req.offset} ${req.data.length}B`; break;
    case 'FORGET': detail = ` -${req.nlookup}`; break;
    case 'BATCH_FORGET': detail = ` ${req.forgets.length} nodes`; break;
    case 'INTERRUPT': detail = ` of ${req.targetUnique}`; break;
    case 'SETATTR': detail = ` valid=0x${req.valid.toString(16)}`; break;
    default: break;
  }
  return `${base}${detail} p${h.pid}`;
}
