// The tables behind /mfs/.admin (fuse/mfs/admin-files.ts): its three files over a node's state
// directory, through the same functions as `mfsctl get*|set*` (tuning.ts), so a file shows exactly
// what mfsctl prints and a write is checked exactly as mfsctl checks. A refused value is Errno
// EINVAL with tables.ts's message (which field and why); nothing is written then.
import { Errno } from '../proto/errno.js';
import { TableError } from './tables.js';
import { getTune, setTune, type TuneTable } from './tuning.js';

export type AdminTableFile = 'mfscosts' | 'overheads' | 'decay';

const TABLE_OF: Record<AdminTableFile, TuneTable> = { mfscosts: 'costs', overheads: 'tune', decay: 'decay' };

export interface AdminTableAccess {
  read(file: AdminTableFile): Promise<string>;
  write(file: AdminTableFile, text: string): Promise<void>;
}

export function adminTables(stateDir: string): AdminTableAccess {
  return {
    async read(file) {
      try {
        return await getTune(stateDir, TABLE_OF[file]);
      } catch (err) {
        // A table file that no longer parses: EIO says the file is there but unreadable as a table.
        if (err instanceof TableError) throw new Errno('EIO', err.message);
        throw err;
      }
    },
    async write(file, text) {
      try {
        await setTune(stateDir, TABLE_OF[file], [text]);
      } catch (err) {
        if (err instanceof TableError) throw new Errno('EINVAL', err.message);
        throw err;
      }
    },
  };
}
