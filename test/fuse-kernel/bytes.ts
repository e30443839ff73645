// Little-endian field builders for golden frames: each call is one struct field, so a test can
// write a frame as a list of fields with one comment each.
export const u16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
export const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
export const u64 = (v: number | bigint): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return [...b];
};
export const cstr = (s: string): number[] => [...Buffer.from(s, 'utf8'), 0];
export const zeros = (n: number): number[] => new Array<number>(n).fill(0);
export const bytes = (...fields: number[][]): Buffer => Buffer.from(fields.flat());

/** A fuse_in_header (40 bytes) for a body of `bodyLen` bytes. */
export function inHeader(opcode: number, unique: number, nodeId: number, bodyLen: number): number[][] {
  return [
    u32(40 + bodyLen), // len: whole frame
    u32(opcode), // opcode
    u64(unique), // unique
    u64(nodeId), // nodeid
    u32(1000), // uid
    u32(100), // gid
    u32(4242), // pid
    u16(0), // total_extlen
    u16(0), // padding
  ];
}
