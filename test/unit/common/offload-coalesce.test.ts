// Coalescing TCP/IPv4 segments into super-packets (common/offload/coalesce.ts), checked
// against the reference: each super-packet equals the one built from its segments byte for
// byte (virtio-net header and partial checksum included) and splits back into exactly those
// segments; each flow's packets come out complete and in order; segments are merged only by
// the kernel's GRO rules, and always when those allow it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { Coalescer, type VnetSink } from '../../../common/offload/coalesce.js';
import { type Segments, splitSize, splitTcp4 } from '../../../common/offload/split.js';
import { GSO_TCPV4, TCP_ACK, TCP_PSH, VNET_F_NEEDS_CSUM } from '../../../common/offload/vnet.js';
import { type FlowModel, type SegmentModel, flowArb, withIpv4Option, refMayFollow, refPacket, refSuper, segmentMutations, RecordingSink, type Written } from '../../support/offload-reference.js';

const seg: Segments = { offsets: new Uint32Array(4096), lengths: new Uint32Array(4096) };

function splitBack(w: Written): Uint8Array[] {
  const p = w.bytes;
  const out = new Uint8Array(splitSize(p.length, w.hdr!.hdrLen, w.hdr!.gsoSize));
  const n = splitTcp4(p, 0, p.length, w.hdr!.gsoSize, out, 0, seg, 0);
  assert.ok(n > 1, 'a super-packet holds two segments or more');
  return Array.from({ length: n }, (_, i) => out.slice(seg.offsets[i], seg.offsets[i] + seg.lengths[i]));
}

/** The flow a packet belongs to, for order checks: addresses and ports, or a non-TCP tag. */
function flowKey(p: Uint8Array): string {
  if (p[9] !== 6 || (p[0] & 15) * 4 + 4 > p.length) return 'other';
  const ihl = (p[0] & 15) * 4;
  return Array.from(p.subarray(12, 20)).join('.') + ':' + Array.from(p.subarray(ihl, ihl + 4)).join('.');
}

/**
 * Checks what the sink got for `input` (fed in order, then flushed): complete and in order
 * per flow, every super-packet legal and equal to the reference, nothing plain that could
 * have joined the super-packet before it.
 */
function check(input: SegmentModel[], packets: Uint8Array[], out: Written[]): void {
  const byBytes = new Map<Uint8Array, SegmentModel>();
  input.forEach((s, i) => byBytes.set(packets[i], s));
  const expectedByFlow = new Map<string, Uint8Array[]>();
  for (const p of packets) expectedByFlow.set(flowKey(p), [...(expectedByFlow.get(flowKey(p)) ?? []), p]);
  const gotByFlow = new Map<string, Uint8Array[]>();
  for (const w of out) {
    const parts = w.hdr ? splitBack(w) : [w.bytes];
    const key = flowKey(parts[0]);
    gotByFlow.set(key, [...(gotByFlow.get(key) ?? []), ...parts]);
    if (!w.hdr) continue;
    assert.equal(w.hdr, { flags: VNET_F_NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 40 + ((w.bytes[32] >> 4) * 4 - 20), gsoSize: parts[0].length - 40 - ((w.bytes[32] >> 4) * 4 - 20), csumStart: 20, csumOffset: 16 });
    // The segments it was made of, as the models that built them.
    const group: SegmentModel[] = [];
    for (const part of parts) {
      const m = input.find((s, i) => Buffer.compare(packets[i], part) === 0);
      assert.ok(m, 'every segment of a super-packet is one of the inputs');
      if (group.length) assert.ok(refMayFollow(group, m!), 'merged only by the GRO rules');
      group.push(m!);
    }
    assert.equal(w.bytes, refSuper(group), 'the super-packet equals the reference byte for byte');
  }
  assert.equal([...gotByFlow.keys()].sort(), [...expectedByFlow.keys()].sort());
  for (const [key, want] of expectedByFlow) assert.equal(gotByFlow.get(key), want, `flow ${key}: every packet, in order`);
}

/** A clean stream of one flow: full-size segments, a shorter last one, IDs and sequence numbers counting up. */
const streamArb = fc.record({
  flow: flowArb,
  id: fc.nat({ max: 0xffff }),
  seq: fc.nat({ max: 0xffffffff }),
  mss: fc.integer({ min: 1, max: 9000 }),
  count: fc.integer({ min: 1, max: 40 }),
  last: fc.nat({ max: 9000 }),
  push: fc.boolean(),
  seed: fc.nat(),
});

type Stream = typeof streamArb extends fc.Arbitrary<infer T> ? T : never;

function stream(s: Stream): SegmentModel[] {
  const out: SegmentModel[] = [];
  let seq = s.seq;
  for (let i = 0; i < s.count; i++) {
    const len = i === s.count - 1 && s.last > 0 ? Math.min(s.last, s.mss) : s.mss;
    const payload = new Uint8Array(len).map((_, k) => (s.seed + i * 31 + k) & 255);
    out.push({ flow: s.flow, id: s.id + i, seq: seq >>> 0, flags: TCP_ACK | (s.push && i === s.count - 1 ? TCP_PSH : 0), payload });
    seq += len;
  }
  return out;
}

function run(input: SegmentModel[], flows?: number): { packets: Uint8Array[]; out: Written[] } {
  const sink = new RecordingSink();
  const c = new Coalescer(sink, flows);
  const packets = input.map((s) => refPacket(s));
  // Each packet in a larger buffer at an offset, as the packets of a received chunk are.
  for (const p of packets) {
    const chunk = new Uint8Array(p.length + 9);
    chunk.set(p, 5);
    assert.ok(c.push(chunk, 5, p.length));
    chunk.fill(0xee); // valid only during the call
  }
  assert.ok(c.flush());
  check(input, packets, sink.out);
  return { packets, out: sink.out };
}

test('a clean stream of one flow becomes as few super-packets as 64 KiB and the GRO rules allow', () => {
  fc.assert(
    fc.property(streamArb, (s) => {
      const input = stream(s);
      const { out } = run(input);
      const hdrs = 40 + s.flow.options.length;
      const perSuper = Math.max(1, Math.floor((65535 - hdrs) / s.mss));
      assert.is(out.length, Math.ceil(input.length / perSuper));
    }),
    { numRuns: 150 },
  );
});

const mutations = segmentMutations;

test('random and mutated batches of interleaved flows: every packet kept, in order per flow, merged only by the rules', () => {
  const batchArb = fc
    .tuple(fc.array(streamArb, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: mutations.length - 1 })), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 200 }), fc.integer({ min: 1, max: 4 }))
    .map(([streams, muts, order, flows]) => {
      const queues = streams.map((s) => stream({ ...s, count: Math.min(s.count, 12), mss: Math.min(s.mss, 3000) }));
      for (const [at, m] of muts) {
        const q = queues[at % queues.length];
        const i = at % q.length;
        q[i] = mutations[m](q[i]);
      }
      // Interleave the flows, each in its own order.
      const input: SegmentModel[] = [];
      let k = 0;
      while (queues.some((q) => q.length)) {
        const live = queues.filter((q) => q.length);
        input.push(live[(order[k++ % Math.max(order.length, 1)] ?? 0) % live.length].shift()!);
      }
      return { input, flows };
    });
  fc.assert(
    fc.property(batchArb, ({ input, flows }) => {
      run(input, flows);
    }),
    { numRuns: 300 },
  );
});

test('packets that are not TCP over IPv4, or carry IPv4 options, or are fragments go through unchanged, after their flow', () => {
  const flow: FlowModel = { src: 1, dst: 2, sport: 3, dport: 4, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 5, window: 6 };
  const seg = (i: number) => refPacket({ flow, id: i, seq: 100 * i, flags: TCP_ACK, payload: new Uint8Array(100) });
  const sink = new RecordingSink();
  const c = new Coalescer(sink);
  const udp = seg(9);
  udp[9] = 17;
  const v6 = new Uint8Array(60);
  v6[0] = 0x60;
  const options = withIpv4Option(seg(5));
  const frag = seg(2);
  frag[6] |= 0x20; // more fragments
  const push = (p: Uint8Array) => assert.ok(c.push(p, 0, p.length));
  [seg(1), udp, v6].forEach(push);
  // Segment 1 held; the UDP packet and the IPv6 one are written at once.
  assert.equal(sink.out.map((w) => w.bytes), [udp, v6]);
  // A fragment of the same flow: the held segment first, then the fragment as it is.
  push(frag);
  assert.equal(sink.out.map((w) => w.bytes), [udp, v6, seg(1), frag]);
  [seg(3), seg(4), options].forEach(push);
  c.flush();
  assert.is(sink.out.length, 6);
  assert.equal(sink.out[4].hdr?.gsoSize, 100);
  assert.equal(sink.out[5].bytes, options);
  assert.equal(c.stats, { superPackets: 1, segments: 2, passed: 0, malformed: 0 });
});

test('a write the device drops is reported by push() or flush()', () => {
  const flow: FlowModel = { src: 1, dst: 2, sport: 3, dport: 4, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 5, window: 6 };
  const a = refPacket({ flow, id: 1, seq: 100, flags: TCP_ACK, payload: new Uint8Array(100) });
  const pure = refPacket({ flow, id: 2, seq: 200, flags: TCP_ACK, payload: new Uint8Array(0) });
  const full: VnetSink = { write: () => false, writeVnet: () => false };
  const c = new Coalescer(full);
  assert.ok(c.push(a, 0, a.length), 'held, not yet written');
  assert.not.ok(c.flush());
  assert.not.ok(c.push(pure, 0, pure.length));
});

test.run();
