export { OPENLESS_INIT_FLAGS_OFF, PASSTHROUGH_INIT_FLAGS, PASSTHROUGH_INIT_FLAGS_OFF, PassthroughFs, type PassthroughOptions } from './passthrough.js';
export { NodeTable, type Node } from './nodes.js';
