// A reference for the offload tests: TCP/IPv4 packets built field by field from a model of
// a flow, with checksums computed the slow, obvious way (Buffer reads, one word at a time,
// folded at every step), so that the tests compare the optimised split and coalesce code
// against an independent construction, byte for byte.
import * as fc from 'fast-check';
import type { VnetSink } from '../../common/offload/coalesce.js';
import { type VnetHeader, readVnet } from '../../common/offload/vnet.js';

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_URG = 0x20;

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

/** `p` with one IPv4 option word (a no-op, then end of list) before its TCP header: IHL 6, total length 4 more. */
export function withIpv4Option(p: Uint8Array): Uint8Array {
  const out = new Uint8Array(p.length + 4);
  out.set(p.subarray(0, 20));
  out.set([1, 0, 0, 0], 20);
  out.set(p.subarray(20), 24);
  out[0] = 0x46;
  out[3] += 4;
  return out;
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

/**
 * The segments the kernel sends for `payload` cut at `mss` (what a super-packet of these
 * fields splits into): IDs and sequence numbers counting up, FIN and PSH on the last only,
 * CWR on the first only, full checksums.
 */
export function refSegments(flow: FlowModel, id: number, seq: number, flags: number, payload: Uint8Array, mss: number): Uint8Array[] {
  const n = Math.max(1, Math.ceil(payload.length / mss));
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    let f = flags;
    if (i < n - 1) f &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= ~TCP_CWR;
    out.push(refPacket({ flow, id: id + i, seq: seq + i * mss, flags: f, payload: payload.subarray(i * mss, (i + 1) * mss) }));
  }
  return out;
}

/** The GRO rules, restated from the kernel: may `b` follow `group` in one super-packet? */
export function refMayFollow(group: SegmentModel[], b: SegmentModel): boolean {
  const first = group[0];
  const a = group[group.length - 1];
  const fa = first.flow;
  const fb = b.flow;
  const mss = first.payload.length;
  const total = group.reduce((n, s) => n + s.payload.length, 40 + fa.options.length) + b.payload.length;
  return (
    fa.src === fb.src && fa.dst === fb.dst && fa.sport === fb.sport && fa.dport === fb.dport &&
    (b.flags === TCP_ACK || b.flags === (TCP_ACK | TCP_PSH)) && !(a.flags & TCP_PSH) &&
    a.payload.length === mss && b.payload.length > 0 && b.payload.length <= mss &&
    ((a.seq + a.payload.length) >>> 0) === b.seq >>> 0 &&
    fa.tos === fb.tos && fa.ttl === fb.ttl && fa.df === fb.df && fa.ack === fb.ack &&
    Buffer.compare(fa.options, fb.options) === 0 &&
    ((first.id + group.length) & 0xffff) === (b.id & 0xffff) &&
    total <= 65535
  );
}

/** The super-packet the kernel's GRO makes of `group`: the first header, PSH from the last, all payloads. */
export function refSuper(group: SegmentModel[]): Uint8Array {
  const first = group[0];
  const payload = Buffer.concat(group.map((s) => s.payload));
  const flags = first.flags | (group[group.length - 1].flags & TCP_PSH);
  return refPacket({ flow: first.flow, id: first.id, seq: first.seq, flags, payload: new Uint8Array(payload) }, 'partial');
}

export type Mutation = (s: SegmentModel) => SegmentModel;
const withFlow = (s: SegmentModel, f: Partial<FlowModel>): SegmentModel => ({ ...s, flow: { ...s.flow, ...f } });
/** Changes to one segment of a clean stream, each of which the GRO rules answer (most forbid a merge). */
export const segmentMutations: Mutation[] = [
  (s) => ({ ...s, flags: s.flags | TCP_FIN }),
  (s) => ({ ...s, flags: TCP_SYN | TCP_ACK }),
  (s) => ({ ...s, flags: TCP_RST | TCP_ACK }),
  (s) => ({ ...s, flags: s.flags | TCP_URG }),
  (s) => ({ ...s, flags: s.flags | 0x40 }), // ECE
  (s) => ({ ...s, flags: s.flags | 0x80 }), // CWR
  (s) => ({ ...s, flags: s.flags | TCP_PSH }),
  (s) => ({ ...s, payload: new Uint8Array(0) }), // a pure ACK
  (s) => ({ ...s, payload: s.payload.subarray(0, s.payload.length >> 1) }), // short, and a gap after it
  (s) => ({ ...s, seq: s.seq + 1 }), // out of sequence
  (s) => ({ ...s, id: s.id + 7 }), // an ID out of line (matters without DF)
  (s) => withFlow(s, { ttl: (s.flow.ttl % 255) + 1 }),
  (s) => withFlow(s, { tos: s.flow.tos ^ 1 }),
  (s) => withFlow(s, { df: !s.flow.df }),
  (s) => withFlow(s, { ack: s.flow.ack + 1 }),
  (s) => withFlow(s, { options: s.flow.options.length ? s.flow.options.map((b, i) => (i === 0 ? b ^ 1 : b)) : new Uint8Array([1, 1, 1, 1]) }),
  (s) => withFlow(s, { sport: s.flow.sport ^ 1 }), // another flow's segment in between
];

/** A packet a VnetSink was handed: a copy, with its virtio-net header read (null: a plain write). */
export interface Written {
  hdr: VnetHeader | null;
  bytes: Uint8Array;
}

/** A sink that takes everything and keeps a copy of each write, in order. */
export class RecordingSink implements VnetSink {
  readonly out: Written[] = [];
  write(buf: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len <= 0 || off + len > buf.length) throw new Error(`write(${off}, ${len}) outside a buffer of ${buf.length}`);
    this.out.push({ hdr: null, bytes: buf.slice(off, off + len) });
    return true;
  }
  writeVnet(hdr: Uint8Array, buf: Uint8Array, off: number, len: number): boolean {
    if (hdr.length < 10 || off < 0 || off + len > buf.length) throw new Error(`writeVnet(${off}, ${len}) outside a buffer of ${buf.length}`);
    this.out.push({ hdr: readVnet(hdr, 0, {} as VnetHeader), bytes: buf.slice(off, off + len) });
    return true;
  }
}
