export { PASSTHROUGH_INIT_FLAGS, PassthroughFs, type PassthroughOptions } from './passthrough.js';
export { NodeTable, type Node } from './nodes.js';
