// One line per request for --debug: `LOOKUP n1 "a" p4242`.
import type { Request } from './decode.js';

export function describeRequest(req: Request): string {
  const h = req.header;
  const base = `${req.op === 'UNKNOWN' ? `OP${req.opcode}` : req.op} n${h.nodeId}`;
  let detail = '';
  switch (req.op) {
    case 'LOOKUP': case 'UNLINK': case 'RMDIR': case 'MKDIR': case 'MKNOD': case 'CREATE': case 'REMOVEXATTR': case 'GETXATTR': case 'SETXATTR':
      detail = ` ${JSON.stringify(req.name)}`;
      break;
    case 'SYMLINK': detail = ` ${JSON.stringify(req.name)} -> ${JSON.stringify(req.target)}`; break;
    case 'RENAME': detail = ` ${JSON.stringify(req.name)} -> n${req.newDir} ${JSON.stringify(req.newName)}`; break;
    case 'LINK': detail = ` n${req.oldNodeId} ${JSON.stringify(req.name)}`; break;
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
