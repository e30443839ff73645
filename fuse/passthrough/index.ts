export { PASSTHROUGH_INIT_FLAGS, PASSTHROUGH_INIT_FLAGS_OFF, PassthroughFs, type PassthroughOptions } from './passthrough.js';
export { NodeTable, type Node } from './nodes.js';
