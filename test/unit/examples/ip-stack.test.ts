// The example device's IPv4 responder (examples/device/ip-stack.ts): checksums against
// published vectors and an independent implementation, echo replies byte for byte, UDP
// both ways, and arbitrary input dropped with a counter and never an exception.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { IpStack, checksum, fold, sum16 } from '../../../examples/device/ip-stack.js';

const bytes = (s: string) => Uint8Array.from(s.trim().split(/\s+/), (h) => parseInt(h, 16));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const A = 0x0a000002; // 10.0.0.2, the peer
const ME = 0x0a000007; // 10.0.0.7, the device

/** An independent Internet checksum: 32-bit words of a DataView, folded with BigInt. */
function refChecksum(...parts: Uint8Array[]): number {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length + (p.length & 1), 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length + (p.length & 1); // each part padded to even length, as RFC 768/1071 do
  }
  const dv = new DataView(all.buffer);
  let s = 0n;
  for (let i = 0; i < all.length; i += 2) s += BigInt(dv.getUint16(i));
  while (s > 0xffffn) s = (s & 0xffffn) + (s >> 16n);
  return Number(~s & 0xffffn);
}

function udpPseudo(p: Uint8Array): Uint8Array {
  const hl = (p[0] & 15) * 4;
  const ulen = (p[hl + 4] << 8) | p[hl + 5];
  return Uint8Array.from([...p.subarray(12, 20), 0, 17, ulen >> 8, ulen & 255]);
}

function stack(address = ME) {
  const sent: Uint8Array[] = [];
  const udp: Array<{ src: number; sp: number; dp: number; payload: number[] }> = [];
  let accept = true;
  const s = new IpStack(
    (p) => {
      if (accept) sent.push(p);
      return accept;
    },
    (src, sp, dp, payload) => udp.push({ src, sp, dp, payload: Array.from(payload) }),
  );
  s.address = address;
  return { s, sent, udp, refuse: () => (accept = false) };
}

/** A well-formed IPv4 packet, checksums right, from `src` to `dst`. */
function packet(src: number, dst: number, proto: number, payload: Uint8Array, opts: { ihl?: number; flags?: number } = {}): Uint8Array {
  const hl = (opts.ihl ?? 5) * 4;
  const b = new Uint8Array(hl + payload.length);
  const dv = new DataView(b.buffer);
  b[0] = 0x40 | (hl / 4);
  dv.setUint16(2, b.length);
  dv.setUint16(4, 0x4242);
  dv.setUint16(6, opts.flags ?? 0);
  b[8] = 64;
  b[9] = proto;
  dv.setUint32(12, src);
  dv.setUint32(16, dst);
  dv.setUint16(10, refChecksum(b.subarray(0, hl)));
  b.set(payload, hl);
  return b;
}

function echoRequest(id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  m[0] = 8;
  dv.setUint16(4, id);
  dv.setUint16(6, seq);
  m.set(data, 8);
  dv.setUint16(2, refChecksum(m));
  return m;
}

function udpDatagram(sp: number, dp: number, data: Uint8Array, src: number, dst: number, withSum = true): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sp);
  dv.setUint16(2, dp);
  dv.setUint16(4, u.length);
  u.set(data, 8);
  if (withSum) {
    const ps = Uint8Array.from([src >>> 24, (src >>> 16) & 255, (src >>> 8) & 255, src & 255, dst >>> 24, (dst >>> 16) & 255, (dst >>> 8) & 255, dst & 255, 0, 17, u.length >> 8, u.length & 255]);
    dv.setUint16(6, refChecksum(ps, u) || 0xffff);
  }
  return u;
}

const dropped = (s: IpStack) => {
  const t = s.stats;
  return t.malformed + t.badChecksum + t.fragment + t.notForUs + t.unsupported;
};

test('checksum: RFC 1071 example, a textbook IPv4 header, odd length, empty', () => {
  const rfc = bytes('00 01 f2 03 f4 f5 f6 f7');
  assert.is(sum16(rfc, 0, 8), 0x2ddf0, 'RFC 1071 section 3: the unfolded sum');
  assert.is(checksum(rfc, 0, 8), 0x220d, 'RFC 1071: folded 0xddf2, complemented');
  // The header of https://en.wikipedia.org/wiki/Internet_checksum, checksum field b861.
  const h = bytes('45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7');
  assert.is(checksum(h, 0, 20), 0, 'a header with its right checksum sums to 0');
  h[10] = h[11] = 0;
  assert.is(checksum(h, 0, 20), 0xb861);
  assert.is(checksum(bytes('01'), 0, 1), 0xfeff, 'an odd byte is padded with zero on the right');
  assert.is(checksum(new Uint8Array(0), 0, 0), 0xffff);
  assert.is(fold(0x1fffe), 0, 'carries wrap around');
});

test('checksum agrees with an independent implementation on any data, at any offset', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(7), (data, off) => {
      const buf = new Uint8Array(off + data.length);
      buf.set(data, off);
      assert.is(checksum(buf, off, data.length), refChecksum(data));
    }),
  );
});

test('an echo request gets the exact echo reply: addresses swapped, same id, seq and data, both checksums right', () => {
  const { s, sent } = stack();
  // From 10.0.0.2 to 10.0.0.7, TTL 63, id 0x0abc, ICMP id 0x1234 seq 1, data "abcdefgh"
  // (checksums computed with Python's struct, independently of this code).
  const req = bytes('45 00 00 24 0a bc 00 00 3f 01 5d 15 0a 00 00 02 0a 00 00 07 08 00 54 35 12 34 00 01 61 62 63 64 65 66 67 68');
  s.input(req);
  assert.is(sent.length, 1);
  assert.is(hex(sent[0]), '45 00 00 24 00 01 40 00 40 01 26 d0 0a 00 00 07 0a 00 00 02 00 00 5c 35 12 34 00 01 61 62 63 64 65 66 67 68');
  assert.is(s.stats.echoReplies, 1);
  assert.is(hex(req).slice(0, 5), '45 00', 'the request is not modified');
  assert.is(req[20], 8);
});

test('any echo request, with or without IP options, gets a reply that passes independent checks', () => {
  fc.assert(
    fc.property(fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 1472 }), fc.integer({ min: 5, max: 15 }), (id, seq, data, ihl) => {
      const { s, sent } = stack();
      const req = packet(A, ME, 1, echoRequest(id, seq, data), { ihl });
      s.input(req);
      assert.is(sent.length, 1);
      const r = sent[0];
      const dv = new DataView(r.buffer, r.byteOffset);
      assert.is(r[0], 0x45, 'a 20-byte header, options not echoed');
      assert.is(dv.getUint16(2), r.length);
      assert.is(refChecksum(r.subarray(0, 20)), 0, 'IP header checksum');
      assert.is(dv.getUint32(12), ME);
      assert.is(dv.getUint32(16), A);
      assert.is(r[9], 1);
      assert.is(r[20], 0, 'type 0');
      assert.is(r[21], 0, 'code 0');
      assert.is(refChecksum(r.subarray(20)), 0, 'ICMP checksum');
      assert.is(dv.getUint16(24), id);
      assert.is(dv.getUint16(26), seq);
      assert.equal(Array.from(r.subarray(28)), Array.from(data));
    }),
    { numRuns: 200 },
  );
});

test('a UDP datagram built by the stack: exact bytes and a checksum an independent computation accepts', () => {
  const { s, sent } = stack();
  const payload = new TextEncoder().encode('{"id":"sensor-1","seq":1}');
  assert.ok(s.udp(A, 5005, 5005, payload));
  assert.is(
    hex(sent[0]),
    '45 00 00 35 00 01 40 00 40 11 26 af 0a 00 00 07 0a 00 00 02 13 8d 13 8d 00 21 57 4c 7b 22 69 64 22 3a 22 73 65 6e 73 6f 72 2d 31 22 2c 22 73 65 71 22 3a 31 7d',
  );
  assert.is(s.stats.udpOut, 1);
  fc.assert(
    fc.property(fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 1472 }), fc.nat(0xffffffff), (sp, dp, data, dst) => {
      const { s, sent } = stack();
      s.udp(dst, sp, dp, data);
      const p = sent[0];
      assert.is(refChecksum(p.subarray(0, 20)), 0, 'IP header');
      const sum = (p[26] << 8) | p[27];
      assert.is.not(sum, 0, 'never 0: that would mean "no checksum"');
      assert.is(refChecksum(udpPseudo(p), p.subarray(20)), 0, 'UDP checksum with the pseudo-header');
      assert.equal(Array.from(p.subarray(28)), Array.from(data));
    }),
    { numRuns: 200 },
  );
});

test('a UDP checksum that computes to 0 goes out as 0xffff', () => {
  // Two payload bytes chosen so that the ones'-complement sum is 0xffff.
  const probe = stack();
  probe.s.udp(A, 1, 2, new Uint8Array(2));
  const p = probe.sent[0];
  p[26] = p[27] = 0;
  let s = sum16(p, 20, 10, sum16(p, 12, 8) + 17 + 10);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const w = 0xffff - s;
  const { s: st, sent } = stack();
  st.udp(A, 1, 2, Uint8Array.from([w >> 8, w & 255]));
  assert.is(hex(sent[0].subarray(26, 28)), 'ff ff');
  assert.is(refChecksum(udpPseudo(sent[0]), sent[0].subarray(20)), 0, 'still verifies');
});

test('received UDP: delivered with ports and payload when the checksum is right or absent, dropped when wrong', () => {
  const { s, udp } = stack();
  const data = Uint8Array.from([1, 2, 3, 4, 5]);
  s.input(packet(A, ME, 17, udpDatagram(4000, 7, data, A, ME)));
  s.input(packet(A, ME, 17, udpDatagram(4001, 7, data, A, ME, false)));
  const bad = packet(A, ME, 17, udpDatagram(4002, 7, data, A, ME));
  bad[bad.length - 1] ^= 1;
  s.input(bad);
  assert.equal(udp, [
    { src: A, sp: 4000, dp: 7, payload: [1, 2, 3, 4, 5] },
    { src: A, sp: 4001, dp: 7, payload: [1, 2, 3, 4, 5] },
  ]);
  assert.is(s.stats.udpIn, 2);
  assert.is(s.stats.badChecksum, 1);
  const none = new IpStack(() => true);
  none.address = ME;
  none.input(packet(A, ME, 17, udpDatagram(4000, 7, data, A, ME)));
  assert.is(none.stats.unsupported, 1, 'no UDP handler: counted, not thrown');
});

test('dropped and counted: not for us, no address yet, fragments, other protocols and ICMP types, bad header checksum', () => {
  const { s, sent } = stack();
  const echo = echoRequest(1, 1, new Uint8Array(4));
  s.input(packet(A, ME + 1, 1, echo));
  assert.is(s.stats.notForUs, 1);
  s.input(packet(A, ME, 1, echo, { flags: 0x2000 }));
  s.input(packet(A, ME, 1, echo, { flags: 0x0001 }));
  assert.is(s.stats.fragment, 2, 'more-fragments and a fragment offset');
  s.input(packet(A, ME, 6, new Uint8Array(20)));
  const reply = echoRequest(1, 1, new Uint8Array(4));
  reply[0] = 0;
  reply[2] = reply[3] = 0;
  const dv = new DataView(reply.buffer);
  dv.setUint16(2, refChecksum(reply));
  s.input(packet(A, ME, 1, reply));
  assert.is(s.stats.unsupported, 2, 'TCP and an ICMP echo reply');
  const badHdr = packet(A, ME, 1, echo);
  badHdr[8] ^= 0xff;
  s.input(badHdr);
  const badIcmp = packet(A, ME, 1, echo);
  badIcmp[badIcmp.length - 1] ^= 0xff;
  s.input(badIcmp);
  assert.is(s.stats.badChecksum, 2);
  assert.is(sent.length, 0);
  const { s: fresh } = stack(0);
  fresh.input(packet(A, ME, 1, echo));
  assert.is(fresh.stats.notForUs, 1, 'before the VPN assigns an address');
});

test('a refused send is counted, not thrown, and not counted as a reply', () => {
  const { s, refuse } = stack();
  refuse();
  s.input(packet(A, ME, 1, echoRequest(1, 1, new Uint8Array(4))));
  assert.is(s.stats.sendFailed, 1);
  assert.is(s.stats.echoReplies, 0);
  assert.not.ok(s.udp(A, 1, 2, new Uint8Array(1)));
  assert.is(s.stats.udpOut, 0);
  assert.is(s.stats.sendFailed, 2);
});

test('every truncation of a valid echo request and UDP datagram is dropped as malformed, without an exception', () => {
  const { s, sent, udp } = stack();
  const echo = packet(A, ME, 1, echoRequest(7, 9, new Uint8Array(24).fill(0x5a)));
  const dgram = packet(A, ME, 17, udpDatagram(1, 2, new Uint8Array(24).fill(0x5a), A, ME));
  for (const p of [echo, dgram]) for (let n = 0; n < p.length; n++) s.input(p.subarray(0, n));
  assert.is(s.stats.malformed, echo.length + dgram.length);
  assert.is(sent.length + udp.length, 0);
});

test('arbitrary bytes and random corruptions of valid packets: never an exception, every packet accounted for, every reply well-formed', () => {
  const valid = [
    packet(A, ME, 1, echoRequest(7, 9, new Uint8Array(16).fill(1))),
    packet(A, ME, 17, udpDatagram(1, 2, new Uint8Array(16).fill(2), A, ME)),
    packet(A, ME, 1, echoRequest(7, 9, new Uint8Array(3)), { ihl: 7 }),
  ];
  const corrupted = fc
    .tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { maxLength: 4 }), fc.nat(200))
    .map(([p, edits, cut]) => {
      const b = p.slice(0, Math.max(0, p.length - (cut % 8 === 0 ? cut % p.length : 0)));
      for (const [i, v] of edits) if (b.length) b[i % b.length] = v;
      return b;
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 100 }), corrupted), (p) => {
      const { s, sent, udp } = stack();
      s.input(p);
      assert.is(s.stats.received, 1);
      assert.is(dropped(s) + s.stats.echoReplies + s.stats.sendFailed + udp.length, 1, 'one outcome per packet');
      for (const r of sent) {
        assert.is(refChecksum(r.subarray(0, 20)), 0);
        assert.is(refChecksum(r.subarray(20)), 0);
      }
    }),
    { numRuns: 2000 },
  );
});

test.run();
