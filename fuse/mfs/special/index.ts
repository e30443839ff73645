// Per-process state and openMosix's special directories for the /mfs mount (issue 10). The mount
// wires them in: special-dirs.ts says how it must reply for these entries, selected-control.ts
// what the control file does, process-table.ts what is kept per process and for how long.
export { ProcessTable, type ProcessState, type ProcessTableOptions, type ProcessSource, type ProcessEventSource } from './process-table.js';
export { SPECIAL_NAMES, isSpecialName, resolveSpecial, specialInstanceKey, callerKey, type SpecialName, type SpecialOp, type SpecialContext } from './special-dirs.js';
export { SelectedControl, CONTROL_DIR, SELECTED_CONTROL_NAME, SELECTED_CONTROL_PATH, type CallerContext } from './selected-control.js';
