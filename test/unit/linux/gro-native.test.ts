// The C coalescer (linux/native/gro.c, through the binding's test-only groRun()) against
// common/offload/coalesce.ts: the same packets fed to both, every write compared byte for byte,
// virtio-net header included. Hand-written cases for each merge rule and each refusal, then
// seeded random and mutated batches. Skipped when the native binding is not built.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { load } from '../../../linux/tun.js';
import { Coalescer } from '../../../common/offload/coalesce.js';
import { TCP_ACK, TCP_PSH, VNET_HDR_LEN, writeVnet } from '../../../common/offload/vnet.js';
import { type FlowModel, type SegmentModel, RecordingSink, refPacket, refSegments, segmentMutations, withIpv4Option } from '../../support/offload-reference.js';
import { rng } from '../../support/server-net.js';

interface GroRun {
  writes: Array<[Uint8Array, Uint8Array]>;
  superPackets: number;
  segments: number;
  malformed: number;
}
type GroRunFn = (packets: Uint8Array[], gsoSizes: number[], flushAfter: number[], flows: number) => GroRun;

/** One input: a plain packet, or (gso > 0) a super-packet as a KIND_SUPER frame brings it. */
interface Input {
  p: Uint8Array;
  gso?: number;
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** What coalesce.ts writes for `inputs`, in the shape groRun() returns (a zero header: a plain write). */
function runTs(inputs: Input[], flushAfter: number[], flows: number): GroRun {
  const sink = new RecordingSink();
  const c = new Coalescer(sink, flows);
  const flushes = new Set(flushAfter);
  inputs.forEach((x, i) => {
    const p = x.p.slice(); // pushSuper() changes it in place
    if (x.gso) c.pushSuper(p, 0, p.length, x.gso);
    else c.push(p, 0, p.length);
    if (flushes.has(i)) c.flush();
  });
  c.flush();
  const writes = sink.out.map((w): [Uint8Array, Uint8Array] => {
    const h = new Uint8Array(VNET_HDR_LEN);
    if (w.hdr) writeVnet(h, 0, w.hdr.flags, w.hdr.gsoType, w.hdr.hdrLen, w.hdr.gsoSize, w.hdr.csumStart, w.hdr.csumOffset);
    return [h, w.bytes];
  });
  return { writes, superPackets: c.stats.superPackets, segments: c.stats.segments, malformed: c.stats.malformed };
}

/** Feeds both; asserts they agree on every write and counter. The writes, for the case's own checks. */
function same(groRun: GroRunFn, inputs: Input[], flushAfter: number[] = [], flows = 8, label = ''): GroRun {
  const want = runTs(inputs, flushAfter, flows);
  const got = groRun(
    inputs.map((x) => x.p),
    inputs.map((x) => x.gso ?? 0),
    flushAfter,
    flows,
  );
  const show = (r: GroRun) => r.writes.map(([h, b]) => `${hex(h)} ${b.length}`).join('\n');
  assert.is(got.writes.length, want.writes.length, `${label}: how many writes\nC:\n${show(got)}\nTS:\n${show(want)}`);
  want.writes.forEach(([h, b], i) => {
    assert.is(hex(got.writes[i][0]), hex(h), `${label}: write ${i}'s virtio-net header`);
    assert.is(hex(got.writes[i][1]), hex(b), `${label}: write ${i}'s bytes`);
  });
  assert.equal([got.superPackets, got.segments, got.malformed], [want.superPackets, want.segments, want.malformed], `${label}: counters`);
  return got;
}

const native = load();
const groRun = native instanceof Error ? undefined : (native as unknown as { groRun?: GroRunFn }).groRun;

const flow: FlowModel = { src: 0x0a000001, dst: 0x0a000002, sport: 40000, dport: 5201, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 77, window: 500 };
const fill = (n: number, seed = 0) => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 255);
/** Segment i of a clean stream of `mss`-byte segments. */
const segModel = (i: number, mss = 1000, f: FlowModel = flow, flags = TCP_ACK): SegmentModel => ({ flow: f, id: 100 + i, seq: 5000 + i * mss, flags, payload: fill(mss, i) });
const seg = (i: number, mss = 1000, f: FlowModel = flow, flags = TCP_ACK) => refPacket(segModel(i, mss, f, flags));
const plain = (ps: Uint8Array[]): Input[] => ps.map((p) => ({ p }));
const stream = (n: number, mss = 1000, f: FlowModel = flow) => Array.from({ length: n }, (_, i) => seg(i, mss, f));
const kinds = (r: GroRun) => r.writes.map(([h]) => (h[1] === 1 ? `super${h[4] | (h[5] << 8)}` : h[0] ? 'whole' : 'plain'));

if (!groRun) {
  const why = native instanceof Error ? native.message : 'the binding has no groRun(): rebuild it (SIMPLEVPN_REBUILD=1 node linux/native/install.mjs)';
  console.log(`gro-native.test: SKIPPING (not registered): ${why}`);
  test.skip('the C coalescer against coalesce.ts', () => {});
} else {
  const run = groRun;

  test('merges: a clean stream, PSH on the last, the 64 KiB limit, sequence numbers that wrap', () => {
    assert.equal(kinds(same(run, plain(stream(5)), [], 8, 'clean')), ['super1000']);
    const pushed = [...stream(3), seg(3, 1000, flow, TCP_ACK | TCP_PSH), seg(4)];
    assert.equal(kinds(same(run, plain(pushed), [], 8, 'PSH')), ['super1000', 'plain']);
    assert.equal(kinds(same(run, plain(stream(100, 1448)), [], 8, '64 KiB')), ['super1448', 'super1448', 'super1448']);
    assert.equal(kinds(same(run, plain(stream(20, 9000)), [], 8, 'jumbo')), ['super9000', 'super9000', 'super9000']);
    const wrap = refSegments(flow, 0xfff0, 0xffffff00, TCP_ACK, fill(6000), 1000);
    assert.equal(kinds(same(run, plain(wrap), [], 8, 'wrap')), ['super1000']);
    const opts = { ...flow, options: new Uint8Array([1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]) };
    assert.equal(kinds(same(run, plain(stream(4, 1000, opts)), [], 8, 'options')), ['super1000']);
    assert.equal(kinds(same(run, plain([...stream(3), refPacket({ ...segModel(3), payload: fill(400) })]), [], 8, 'short last')), ['super1000']);
  });

  test('each refusal: the segment starts anew or goes through plain, after its flow', () => {
    const base = [0, 1, 2, 3].map((i) => segModel(i));
    segmentMutations.forEach((m, k) => {
      const input = base.map((s, i) => refPacket(i === 2 ? m(s) : s));
      const r = same(run, plain(input), [], 8, `mutation ${k}`);
      assert.ok(r.writes.length >= 2, `mutation ${k} ends the super-packet`);
    });
    // Not candidates: IPv4 options, fragments, UDP, IPv6, a total length that disagrees, bytes that are no packet.
    const ipOpts = withIpv4Option(seg(2));
    const mf = seg(2);
    mf[6] |= 0x20;
    const offset = seg(2);
    offset[7] = 1;
    const udp = seg(2);
    udp[9] = 17;
    const v6 = new Uint8Array(80);
    v6[0] = 0x60;
    const long = seg(2);
    long[3] -= 1;
    const tiny = new Uint8Array([0x41, 0, 0, 8, 0, 0, 0, 0, 64, 6]);
    const thl = seg(2);
    thl[32] = 0x40; // a TCP header shorter than 20 bytes
    const cases: Array<[string, Uint8Array]> = [['IPv4 options', ipOpts], ['MF', mf], ['fragment offset', offset], ['UDP', udp], ['IPv6', v6], ['total length', long], ['tiny', tiny], ['TCP header length', thl]];
    for (const [name, p] of cases) {
      const r = same(run, plain([seg(0), seg(1), p, seg(3), seg(4)]), [], 8, name);
      assert.ok(r.writes.some(([h, b]) => h[0] === 0 && hex(b) === hex(p)), `${name}: written as it came`);
    }
  });

  test('flows: held side by side up to the limit, the oldest written first when one more comes', () => {
    const flows = Array.from({ length: 10 }, (_, k) => ({ ...flow, sport: 1000 + k }));
    const interleaved: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) for (const f of flows) interleaved.push(seg(i, 500, f));
    for (const limit of [1, 2, 8, 9]) same(run, plain(interleaved), [], limit, `flows ${limit}`);
    const two = same(run, plain(interleaved.slice(0, 6)), [], 8, 'two flows');
    assert.is(two.superPackets, 0, 'flows 0 to 5, one segment each');
    same(run, plain([...stream(3), ...stream(3, 1000, flows[1])]), [1, 3], 8, 'flushed in the middle');
  });

  test('super-packets: written whole with their header, after their own flow only; malformed ones refused', () => {
    const big = refPacket({ ...segModel(3), payload: fill(4000) });
    const other = refPacket({ ...segModel(0, 1000, { ...flow, dport: 80 }), payload: fill(3000) });
    const r = same(run, [...plain(stream(3)), { p: other, gso: 1000 }, { p: big, gso: 1448 }, { p: seg(7) }], [], 8, 'supers');
    assert.equal(kinds(r), ['super1000', 'super1000', 'super1448', 'plain']);
    same(run, [{ p: seg(0) }, { p: refPacket({ ...segModel(1), payload: fill(500) }), gso: 1000 }], [], 8, 'one segment worth: GSO_NONE');
    const udp = big.slice();
    udp[9] = 17;
    const frag = big.slice();
    frag[6] |= 0x20;
    const r2 = same(run, [{ p: seg(0) }, { p: udp, gso: 1000 }, { p: frag, gso: 1000 }, { p: big.subarray(0, 39), gso: 1000 }, { p: seg(1) }], [], 8, 'malformed');
    assert.is(r2.malformed, 3);
  });

  test('seeded random and mutated batches: the C coalescer writes exactly what coalesce.ts writes', () => {
    const started = Date.now();
    const cases = 3000;
    for (let c = 0; c < cases; c++) {
      const rand = rng(0x5eed + c);
      const int = (n: number) => Math.floor(rand() * n);
      const pick = <T>(xs: T[]): T => xs[int(xs.length)];
      // A few flows that share addresses, so that ports and addresses both tell them apart.
      const flowsIn = Array.from({ length: 1 + int(4) }, (): FlowModel => ({
        src: pick([0x0a000001, 0x0a000002]),
        dst: pick([0x0a000002, 0x0a000001]),
        sport: pick([1, 2, 40000]),
        dport: pick([5201, 2]),
        tos: pick([0, 0, 4]),
        ttl: pick([64, 64, 1]),
        df: rand() < 0.8,
        options: pick([new Uint8Array(0), new Uint8Array(0), new Uint8Array([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]), fill(40, c)]),
        ack: int(3) === 0 ? 0xffffffff : 77,
        window: int(0x10000),
      }));
      const mss = pick([1, 100, 536, 1448, 1460, 3000, int(9000) + 1]);
      const queues = flowsIn.map((f) => {
        const n = 1 + int(mss > 3000 ? 12 : 50);
        const seq = int(2) ? 0xfffff000 + int(4096) : int(0x100000000);
        return Array.from({ length: n }, (_, i): SegmentModel => ({ flow: f, id: int(8) === 0 ? 0xfffe : 7, seq: (seq + i * mss) >>> 0, flags: TCP_ACK | (int(20) === 0 ? TCP_PSH : 0), payload: fill(i === n - 1 && int(2) ? int(mss) + 1 : mss, i) })).map((s, i) => ({ ...s, id: s.id + i }));
      });
      for (let m = int(6); m > 0; m--) {
        const q = pick(queues);
        const i = int(q.length);
        q[i] = pick(segmentMutations)(q[i]);
      }
      const inputs: Input[] = [];
      while (queues.some((q) => q.length)) {
        const q = pick(queues.filter((x) => x.length));
        const s = q.shift()!;
        let p = refPacket(s);
        // Byte-level damage now and then: any byte of the headers, or a cut.
        if (int(25) === 0) {
          p = p.slice();
          p[int(Math.min(p.length, 60))] ^= 1 << int(8);
        }
        if (int(40) === 0) p = p.slice(0, 1 + int(p.length));
        if (int(30) === 0) inputs.push({ p: refPacket({ ...s, payload: fill(mss * (1 + int(5))) }), gso: pick([mss, 0xffff, 1]) });
        else inputs.push({ p });
      }
      const flushAfter = Array.from({ length: int(3) }, () => int(inputs.length));
      same(run, inputs, flushAfter, 1 + int(8), `case ${c} (seed ${0x5eed + c})`);
    }
    console.log(`gro-native.test: ${cases} random batches in ${Date.now() - started} ms`);
  });
}

test.run();
