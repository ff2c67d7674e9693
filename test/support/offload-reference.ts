// A reference for the offload tests: TCP/IPv4 packets built field by field from a model of
// a flow, with checksums computed the slow, obvious way (Buffer reads, one word at a time,
// folded at every step), so that the tests compare the optimised split and coalesce code
// against an independent construction, byte for byte.
import * as fc from 'fast-check';

export interface FlowModel {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  tos: number;
  ttl: number;
  df: boolean;
  /** TCP options, a multiple of 4 bytes (0 to 40). */
  options: Uint8Array;
  ack: number;
  window: number;
}

export interface SegmentModel {
  flow: FlowModel;
  id: number;
  seq: number;
  flags: number;
  payload: Uint8Array;
}

/** The one's-complement sum, folded at each step: the textbook definition. */
export function refSum(b: Uint8Array, initial = 0): number {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  let s = initial;
  for (let i = 0; i < buf.length; i += 2) {
    s += i + 1 < buf.length ? buf.readUInt16BE(i) : buf[i] << 8;
    s = (s & 0xffff) + (s >>> 16);
  }
  return s;
}

export function refPseudo(flow: FlowModel, tcpLength: number): number {
  const p = Buffer.alloc(12);
  p.writeUInt32BE(flow.src >>> 0, 0);
  p.writeUInt32BE(flow.dst >>> 0, 4);
  p[9] = 6;
  p.writeUInt16BE(tcpLength, 10);
  return refSum(p);
}

/**
 * The packet of one segment. `tcpChecksum`: 'full' (what a host sends), 'partial' (the
 * pseudo-header sum only, as a GSO super-packet carries it) or a number to put as is.
 */
export function refPacket(s: SegmentModel, tcpChecksum: 'full' | 'partial' | number = 'full'): Uint8Array {
  const f = s.flow;
  const thl = 20 + f.options.length;
  const total = 20 + thl + s.payload.length;
  const b = Buffer.alloc(total);
  b[0] = 0x45;
  b[1] = f.tos;
  b.writeUInt16BE(total, 2);
  b.writeUInt16BE(s.id & 0xffff, 4);
  b.writeUInt16BE(f.df ? 0x4000 : 0, 6);
  b[8] = f.ttl;
  b[9] = 6;
  b.writeUInt32BE(f.src >>> 0, 12);
  b.writeUInt32BE(f.dst >>> 0, 16);
  b.writeUInt16BE(~refSum(b.subarray(0, 20)) & 0xffff, 10);
  b.writeUInt16BE(f.sport, 20);
  b.writeUInt16BE(f.dport, 22);
  b.writeUInt32BE(s.seq >>> 0, 24);
  b.writeUInt32BE(f.ack >>> 0, 28);
  b[32] = (thl / 4) << 4;
  b[33] = s.flags;
  b.writeUInt16BE(f.window, 34);
  Buffer.from(f.options).copy(b, 40);
  Buffer.from(s.payload).copy(b, 20 + thl);
  const pseudo = refPseudo(f, thl + s.payload.length);
  const c = tcpChecksum === 'full' ? ~refSum(b.subarray(20), pseudo) & 0xffff : tcpChecksum === 'partial' ? pseudo : tcpChecksum;
  b.writeUInt16BE(c, 36);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Whether the IPv4 header checksum and the TCP checksum of `p` both verify. */
export function refChecksumsValid(p: Uint8Array): boolean {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (refSum(b.subarray(0, 20)) !== 0xffff) return false;
  const pseudo = refPseudo({ src: b.readUInt32BE(12), dst: b.readUInt32BE(16) } as FlowModel, p.length - 20);
  return refSum(b.subarray(20), pseudo) === 0xffff;
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

export const flowArb: fc.Arbitrary<FlowModel> = fc.record({
  src: fc.nat({ max: 0xffffffff }),
  dst: fc.nat({ max: 0xffffffff }),
  sport: fc.nat({ max: 0xffff }),
  dport: fc.nat({ max: 0xffff }),
  tos: fc.nat({ max: 255 }),
  ttl: fc.integer({ min: 1, max: 255 }),
  df: fc.boolean(),
  options: fc.integer({ min: 0, max: 10 }).chain((words) => bytes(words * 4, words * 4)),
  ack: fc.nat({ max: 0xffffffff }),
  window: fc.nat({ max: 0xffff }),
});
