// The TCP offloads of common/offload/: splitting super-packets (split.ts) and coalescing
// segments into them (coalesce.ts), fed batches of TCP/IPv4 packets of up to four flows as
// they come off a tunnel: segments of clean streams, segments changed by one of the
// mutations the GRO rules answer (flags, lengths, sequence, ID, TTL, TOS, DF, ACK, options,
// ports), whole super-packets with the gso_size a virtio-net header gives, and packets of
// arbitrary bytes (made into a well-formed segment when they read as one, else passed as
// they are: fragments, options, UDP, IPv6, truncated).
//
// Checked against the reference of test/support/offload-reference.ts, built field by field
// with textbook checksums: every segment split from a super-packet equals the reference byte
// for byte and its checksums verify; the coalescer's output, flow by flow, holds every packet
// in order and nothing else; each super-packet it made splits back into input segments that
// the GRO rules allow together, equals the reference super-packet byte for byte (partial
// checksum included) and carries the virtio-net header for it; a super-packet pushed whole
// comes out as the reference says, after its flow's held one; the counters agree.
//
// Input: [config: coalescer slots, flows] [per flow: options, DF, mss (2 bytes)] [ops...]
//   op: bits 0-1 kind (0, 1 segment, 2 super-packet, 3 raw bytes), 2-3 flow, 4 PSH,
//   5 short segment (one byte of length follows), 6 mutation (one byte follows).
import { Coalescer } from '../../common/offload/coalesce.js';
import { SPLIT_MALFORMED, type Segments, splitSize, splitTcp4 } from '../../common/offload/split.js';
import { GSO_NONE, GSO_TCPV4, TCP_ACK, TCP_PSH, VNET_F_NEEDS_CSUM } from '../../common/offload/vnet.js';
import { type FlowModel, type SegmentModel, refChecksumsValid, refMayFollow, refPacket, refSegments, refSuper, segmentMutations, RecordingSink, type Written } from '../../test/support/offload-reference.js';
import { type FuzzTarget, InputReader, check } from '../engine/target.js';

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const seg: Segments = { offsets: new Uint32Array(4096), lengths: new Uint32Array(4096) };

/** What went into the coalescer, one entry per push. */
type Item = { kind: 'segment'; m: SegmentModel; bytes: Uint8Array } | { kind: 'super'; m: SegmentModel; gso: number; bytes: Uint8Array } | { kind: 'other'; bytes: Uint8Array };

/** Addresses and ports of a TCP/IPv4 packet, or 'other': the unit within which order is kept. */
function flowKey(p: Uint8Array): string {
  const ihl = (p[0] & 15) * 4;
  if (p.length < 20 || p[0] >> 4 !== 4 || p[9] !== 6 || ihl + 4 > p.length) return 'other';
  return `${p.subarray(12, 20).join('.')}:${p.subarray(ihl, ihl + 4).join('.')}`;
}

/** Splits `p` at `gso` with split.ts; the segments as copies, or the error code. */
function split(p: Uint8Array, gso: number): Uint8Array[] | number {
  const ihl = (p[0] & 15) * 4;
  const hdrs = p.length >= ihl + 13 ? ihl + (p[ihl + 12] >> 4) * 4 : 0;
  const out = new Uint8Array(3 + splitSize(p.length, hdrs, Math.max(gso, 1)));
  const n = splitTcp4(p, 0, p.length, gso, out, 3, seg, 0);
  if (n < 0) return n;
  return Array.from({ length: n }, (_, i) => out.slice(seg.offsets[i], seg.offsets[i] + seg.lengths[i]));
}

/** A super-packet (or segment) split at `gso` must give exactly the reference's segments. */
function checkSplit(m: SegmentModel, gso: number, p: Uint8Array): void {
  const got = split(p, gso);
  const want = refSegments(m.flow, m.id, m.seq, m.flags, m.payload, gso);
  check(typeof got !== 'number', `split refused a well-formed super-packet (${got})`);
  check(got.length === want.length, `split into ${got.length} segments, the reference into ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    check(same(got[i], want[i]), `segment ${i} of ${want.length} (gso_size ${gso}) differs from the reference`);
    check(refChecksumsValid(got[i]), `segment ${i}: a checksum does not verify`);
  }
}

/** The model of a raw packet that reads as a coalescable-shaped TCP/IPv4 segment, else null. */
function modelOf(p: Uint8Array): SegmentModel | null {
  if (p.length < 40 || p[0] !== 0x45 || p[9] !== 6 || ((p[2] << 8) | p[3]) !== p.length) return null;
  if ((p[6] & 0x3f) !== 0 || p[7] !== 0) return null; // a fragment stays raw
  const thl = (p[32] >> 4) * 4;
  if (thl < 20 || 20 + thl > p.length) return null;
  const u32 = (o: number) => ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
  const flow: FlowModel = { src: u32(12), dst: u32(16), sport: (p[20] << 8) | p[21], dport: (p[22] << 8) | p[23], tos: p[1], ttl: p[8], df: (p[6] & 0x40) !== 0, options: p.slice(40, 20 + thl), ack: u32(28), window: (p[34] << 8) | p[35] };
  return { flow, id: (p[4] << 8) | p[5], seq: u32(24), flags: p[33], payload: p.slice(20 + thl) };
}

/** Checks the coalescer's output against what went in (see the file's head). */
function checkCoalesced(items: Item[], out: Written[]): void {
  const want = new Map<string, Item[]>();
  for (const it of items) {
    const k = flowKey(it.bytes);
    want.set(k, [...(want.get(k) ?? []), it]);
  }
  const next = new Map<string, number>();
  const take = (k: string): Item => {
    const i = next.get(k) ?? 0;
    next.set(k, i + 1);
    const it = want.get(k)?.[i];
    check(it, `flow ${k}: more packets out than went in`);
    return it;
  };
  for (const w of out) {
    const k = flowKey(w.bytes);
    if (!w.hdr) {
      const it = take(k);
      check(it.kind !== 'super' && same(w.bytes, it.bytes), `flow ${k}: a plain packet that is not the next one in`);
      continue;
    }
    check(w.hdr.flags === VNET_F_NEEDS_CSUM && w.hdr.csumStart === (w.bytes[0] & 15) * 4 && w.hdr.csumOffset === 16, 'virtio-net header without the partial TCP checksum');
    const peek = want.get(k)?.[next.get(k) ?? 0];
    if (peek?.kind === 'super') {
      take(k);
      const whole = peek.m.payload.length <= peek.gso;
      const hdrs = 40 + peek.m.flow.options.length;
      check(w.hdr.gsoType === (whole ? GSO_NONE : GSO_TCPV4) && w.hdr.hdrLen === hdrs && w.hdr.gsoSize === (whole ? 0 : peek.gso), 'a super-packet pushed whole has the wrong virtio-net header');
      check(same(w.bytes, refPacket(peek.m, 'partial')), 'a super-packet pushed whole differs from the reference');
      continue;
    }
    check(w.hdr.gsoType === GSO_TCPV4, `coalesced packet of gso_type ${w.hdr.gsoType}`);
    const parts = split(w.bytes, w.hdr.gsoSize);
    check(typeof parts !== 'number' && parts.length > 1, 'a coalesced super-packet that does not split into two segments or more');
    const group: SegmentModel[] = [];
    for (const part of parts) {
      const it = take(k);
      check(it.kind === 'segment' && same(part, it.bytes), `flow ${k}: a coalesced segment that is not the next one in`);
      check(group.length === 0 || refMayFollow(group, it.m), 'segments merged against the GRO rules');
      group.push(it.m);
    }
    check(w.hdr.hdrLen === 40 + group[0].flow.options.length && w.hdr.gsoSize === group[0].payload.length, 'virtio-net header of a coalesced super-packet');
    check(same(w.bytes, refSuper(group)), 'a coalesced super-packet differs from the reference');
  }
  for (const [k, list] of want) check((next.get(k) ?? 0) === list.length, `flow ${k}: ${list.length - (next.get(k) ?? 0)} packets never came out`);
}

export const offloadTarget: FuzzTarget = {
  name: 'offload',
  about: 'common/offload split and coalesce on batches of TCP/IPv4 segments, super-packets and raw packets, against the byte-exact reference',
  covers: ['common/offload/split.js', 'common/offload/coalesce.js'],
  ciRuns: 300,
  maxLength: 4096,
  dictionary: [[0x45, 0x00], [0x46, 0x00], [0x40, 0x00], [0x20, 0x00], [0x00, 0x06], [0x10], [0x18], [0x50], [0x80], [0xff, 0xff], [0x05, 0xa8], [0x23, 0x28]].map((a) => Uint8Array.from(a)),
  seeds() {
    // Two clean flows interleaved, a PSH, a super-packet, a mutation, a short segment, raw bytes.
    return [
      [0x13, 0x00, 0x05, 0xa8, 0x41, 0x02, 0x00, 0x00, 0x04, 0x00, 0x04, 0x14, 0x00, 0x04, 0x02, 0xff, 0xff, 0x05, 0xa8, 0x44, 3, 0x20, 100, 0x00],
      [0x70, 0x82, 0x00, 0x40, 0x02, 0x23, 0x28, 0x00, 0x30, 0x02, 0x00, 0x00, 0x04, 0x03, 0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06],
    ].map((a) => Uint8Array.from(a));
  },
  run(input) {
    const r = new InputReader(input);
    const cfg = r.u8();
    const nflows = 1 + ((cfg >> 3) & 3);
    const flows: { flow: FlowModel; mss: number; id: number; seq: number }[] = [];
    for (let k = 0; k < nflows; k++) {
      const o = r.u8();
      const options = Uint8Array.from({ length: (o & 3) * 4 }, (_, i) => (i === 0 ? 1 : 8 + i));
      flows.push({ flow: { src: 0x0a000002, dst: 0x0a000003 + k, sport: 40000 + k, dport: 5201, tos: 0, ttl: 64, df: (o & 4) === 0, options, ack: 0x10000 * k + 7, window: 502 }, mss: 1 + (r.u16() % 9000), id: 0xfff0 + k * 3, seq: 0xfffff000 + k });
    }
    const sink = new RecordingSink();
    const c = new Coalescer(sink, 1 + (cfg & 7));
    const items: Item[] = [];
    let supers = 0;
    const payload = (n: number, seq: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (seq + i) & 255;
      return b;
    };
    const push = (bytes: Uint8Array) => {
      const chunk = new Uint8Array(bytes.length + 9);
      chunk.set(bytes, 5);
      check(c.push(chunk, 5, bytes.length), 'push() reported a drop to a sink that takes everything');
      chunk.fill(0xee); // valid only during the call
    };
    for (let ops = 0; r.left > 0 && ops < 200; ops++) {
      const op = r.u8();
      const kind = op & 3;
      const f = flows[((op >> 2) & 3) % nflows];
      if (kind === 3) {
        const raw = Uint8Array.from(r.bytes(r.u8()));
        if (raw.length === 0) continue;
        const m = modelOf(raw);
        // Raw bytes: what split makes of them, when it takes them, has valid checksums.
        const got = split(raw, f.mss);
        if (typeof got !== 'number') for (const s of got) check(refChecksumsValid(s) || (s[0] & 15) !== 5, 'a segment split from raw bytes has a bad checksum');
        else check(got === SPLIT_MALFORMED, `split returned ${got} for raw bytes`);
        const bytes = m ? refPacket(m) : raw;
        items.push(m ? { kind: 'segment', m, bytes } : { kind: 'other', bytes });
        push(bytes);
        continue;
      }
      if (kind === 2) {
        const hdrs = 40 + f.flow.options.length;
        const gso = 1 + (r.u16() % 9000);
        const len = r.u16() % Math.min(65536 - hdrs, gso * 16 + 1); // 16 segments at most: the reference is slow

        const m: SegmentModel = { flow: f.flow, id: f.id, seq: f.seq, flags: TCP_ACK | (op & 0x10 ? TCP_PSH : 0), payload: payload(len, f.seq) };
        // A kernel's GSO packet holds a partial checksum; one a peer sent may hold anything.
        const bytes = refPacket(m, op & 0x20 ? 'partial' : 0x1234);
        checkSplit(m, gso, bytes);
        items.push({ kind: 'super', m, gso, bytes });
        check(c.pushSuper(bytes.slice(), 0, bytes.length, gso), 'pushSuper() refused a well-formed super-packet');
        supers++;
        const n = Math.max(1, Math.ceil(len / gso));
        f.id = (f.id + n) & 0xffff;
        f.seq = (f.seq + len) >>> 0;
        continue;
      }
      const len = op & 0x20 ? Math.min(r.u8(), f.mss) : f.mss;
      let m: SegmentModel = { flow: f.flow, id: f.id, seq: f.seq, flags: TCP_ACK | (op & 0x10 ? TCP_PSH : 0), payload: payload(len, f.seq) };
      if (op & 0x40) m = segmentMutations[r.u8() % segmentMutations.length](m);
      f.id = (f.id + 1) & 0xffff;
      f.seq = (f.seq + len) >>> 0;
      const bytes = refPacket(m);
      checkSplit(m, Math.max(1, m.payload.length), bytes);
      items.push({ kind: 'segment', m, bytes });
      push(bytes);
    }
    check(c.flush(), 'flush() reported a drop');
    checkCoalesced(items, sink.out);
    check(c.stats.passed === supers && c.stats.malformed === 0, `stats: ${c.stats.passed} passed and ${c.stats.malformed} malformed, expected ${supers} and 0`);
    const coalesced = sink.out.filter((w) => w.hdr?.gsoType === GSO_TCPV4).length - items.filter((it) => it.kind === 'super' && it.m.payload.length > it.gso).length;
    check(c.stats.superPackets === coalesced, `stats: ${c.stats.superPackets} super-packets, ${coalesced} written`);
  },
};
