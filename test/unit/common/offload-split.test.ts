// Splitting TCP/IPv4 super-packets (common/offload/split.ts) against the reference: every
// byte of every segment, checksums included, as the kernel's own segmentation makes them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { SPLIT_MALFORMED, SPLIT_NO_ROOM, type Segments, splitSize, splitTcp4 } from '../../../common/offload/split.js';
import { TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH, completeChecksum, fold, sum16 } from '../../../common/offload/vnet.js';
import { type FlowModel, flowArb, refChecksumsValid, refPacket, refSegments, refSum } from '../../support/offload-reference.js';

const seg: Segments = { offsets: new Uint32Array(4096), lengths: new Uint32Array(4096) };

/** The segments the kernel would send for the model's payload cut at `mss`. */
const expected = refSegments;

function split(p: Uint8Array, mss: number, lead = 0): Uint8Array[] | number {
  const hdrs = 40 + ((p[32] >> 4) * 4 - 20);
  const out = new Uint8Array(lead + splitSize(p.length, hdrs, mss));
  const n = splitTcp4(p, 0, p.length, mss, out, lead, seg, 0);
  if (n < 0) return n;
  const got: Uint8Array[] = [];
  for (let i = 0; i < n; i++) got.push(out.slice(seg.offsets[i], seg.offsets[i] + seg.lengths[i]));
  // Back to back from `lead`, nothing beyond.
  assert.is(seg.offsets[0], lead);
  assert.is(seg.offsets[n - 1] + seg.lengths[n - 1], out.length);
  return got;
}

const flagsArb = fc.subarray([TCP_PSH, TCP_FIN, TCP_CWR, 0x40 /* ECE */]).map((fs) => fs.reduce((a, b) => a | b, TCP_ACK));

const caseArb = fc.record({
  flow: flowArb,
  id: fc.nat({ max: 0xffff }),
  seq: fc.nat({ max: 0xffffffff }),
  flags: flagsArb,
  mss: fc.integer({ min: 8, max: 9000 }),
  payload: fc.uint8Array({ minLength: 0, maxLength: 12000 }),
  partial: fc.boolean(),
  lead: fc.nat({ max: 64 }),
});

test('every segment of a split super-packet equals the reference byte for byte (IDs and sequence numbers wrapping included)', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      // A GSO super-packet holds a partial checksum; one split by a peer may hold anything.
      const superPacket = refPacket({ flow: c.flow, id: c.id, seq: c.seq, flags: c.flags, payload: c.payload }, c.partial ? 'partial' : 0x1234);
      const got = split(superPacket, c.mss, c.lead) as Uint8Array[];
      const want = expected(c.flow, c.id, c.seq, c.flags, c.payload, c.mss);
      assert.is(got.length, want.length);
      for (let i = 0; i < want.length; i++) {
        assert.equal(got[i], want[i], `segment ${i}`);
        assert.ok(refChecksumsValid(got[i]), `checksums of segment ${i}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('a 64 KiB super-packet at MSS 1448 becomes 46 segments that match the reference', () => {
  const flow: FlowModel = { src: 0x0a000002, dst: 0x0a000003, sport: 40000, dport: 5201, tos: 0, ttl: 64, df: true, options: new Uint8Array([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]), ack: 7, window: 502 };
  const payload = new Uint8Array(65535 - 52).map((_, i) => i * 7);
  const p = refPacket({ flow, id: 65530, seq: 0xfffff000, flags: TCP_ACK | TCP_PSH, payload }, 'partial');
  const got = split(p, 1448) as Uint8Array[];
  const want = expected(flow, 65530, 0xfffff000, TCP_ACK | TCP_PSH, payload, 1448);
  assert.is(got.length, 46);
  assert.equal(got, want);
});

test('what is not a whole TCP/IPv4 packet is refused as malformed, and too small a buffer as no room', () => {
  const flow: FlowModel = { src: 1, dst: 2, sport: 3, dport: 4, tos: 0, ttl: 64, df: false, options: new Uint8Array(0), ack: 0, window: 0 };
  const good = refPacket({ flow, id: 1, seq: 1, flags: TCP_ACK, payload: new Uint8Array(3000) });
  const out = new Uint8Array(8000);
  const mutate = (fn: (b: Uint8Array) => void) => {
    const b = good.slice();
    fn(b);
    return splitTcp4(b, 0, b.length, 1000, out, 0, seg, 0);
  };
  assert.is(mutate(() => {}), 3);
  assert.is(mutate((b) => (b[9] = 17)), SPLIT_MALFORMED, 'UDP');
  assert.is(mutate((b) => (b[0] = 0x65)), SPLIT_MALFORMED, 'IPv6 version');
  assert.is(mutate((b) => (b[3] -= 1)), SPLIT_MALFORMED, 'total length disagrees');
  assert.is(mutate((b) => (b[6] = 0x20)), SPLIT_MALFORMED, 'more fragments');
  assert.is(mutate((b) => (b[7] = 1)), SPLIT_MALFORMED, 'fragment offset');
  assert.is(mutate((b) => (b[32] = 0x40)), SPLIT_MALFORMED, 'TCP header shorter than 20');
  assert.is(mutate((b) => (b[0] = 0x44)), SPLIT_MALFORMED, 'IHL below 5');
  assert.is(splitTcp4(good, 0, good.length, 0, out, 0, seg, 0), SPLIT_MALFORMED, 'gso_size 0');
  assert.is(splitTcp4(good, 0, 30, 1000, out, 0, seg, 0), SPLIT_MALFORMED, 'truncated');
  assert.is(splitTcp4(good, 0, good.length, 1000, new Uint8Array(3079), 0, seg, 0), SPLIT_NO_ROOM, 'out one byte short');
  assert.is(splitTcp4(good, 0, good.length, 1000, out, 0, seg, 4094), SPLIT_NO_ROOM, 'index arrays full');
});

test('a partial checksum is completed as the sum from csum_start says (TCP and UDP)', () => {
  fc.assert(
    fc.property(flowArb, fc.uint8Array({ maxLength: 3000 }), fc.boolean(), (flow, payload, udp) => {
      const p = refPacket({ flow, id: 9, seq: 9, flags: TCP_ACK, payload }, 'partial');
      if (udp) {
        // The same bytes as a UDP datagram: checksum field at offset 6 of the transport header.
        p[9] = 17;
        const len = p.length - 20;
        const pseudo = fold(sum16(p, 12, 20, 17 + len));
        p[26] = pseudo >> 8;
        p[27] = pseudo;
      }
      assert.ok(completeChecksum(p, 20, udp ? 6 : 16, p.length));
      const c = (p[20 + (udp ? 6 : 16)] << 8) | p[21 + (udp ? 6 : 16)];
      const pseudo = refSum(new Uint8Array([...p.subarray(12, 20), 0, udp ? 17 : 6, (p.length - 20) >> 8, (p.length - 20) & 255]));
      assert.is(refSum(p.subarray(20), pseudo), 0xffff);
      if (udp) assert.ok(c !== 0, 'UDP never sends a computed checksum of 0');
    }),
    { numRuns: 200 },
  );
  assert.not.ok(completeChecksum(new Uint8Array(30), 20, 16, 30), 'field beyond the end');
});

test.run();
