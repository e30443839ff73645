// Changes made directly in an export's directory, not through mfsd (a local process, an admin):
// noticed and sent as invalidations to every session holding a callback on what changed, within
// settings.directChangeMs. STUB: the watcher is being written (issue 9).
import type { Callbacks } from './callbacks.js';
import type { SessionSettings } from './config.js';
import type { LocalFs } from './local-fs.js';

export interface DirectChanges { close(): void }

export function watchDirectChanges(_lfs: LocalFs, _callbacks: Callbacks, _settings: SessionSettings): DirectChanges {
  return { close() {} };
}
