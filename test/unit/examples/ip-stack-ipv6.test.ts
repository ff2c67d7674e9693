// The example device's ICMPv6 echo responder (examples/device/ip-stack.ts): ping -6 to its
// IPv6 address gets the echo reply, checked against an independent checksum; everything
// else IPv6 is dropped with a counter and never an exception.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { IpStack } from '../../../examples/device/ip-stack.js';
import { icmp6Verify, packet6, v6 } from '../../support/ipv6-packets.js';

const PEER = v6('fd00:5:6::a00:2');
const ME = v6('fd00:5:6::a00:7');

function stack(address6: Uint8Array | null = ME) {
  const sent: Uint8Array[] = [];
  const s = new IpStack((p) => (sent.push(p), true));
  s.address = 0x0a000007;
  s.address6 = address6;
  return { s, sent };
}

/** An ICMPv6 message of `type` with id, seq and data, in a packet from `src` to `dst`, its checksum right. */
function icmp6(src: Uint8Array, dst: Uint8Array, type: number, data: Uint8Array, id = 0x1234, seq = 1): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  m[4] = id >> 8;
  m[5] = id;
  m[6] = seq >> 8;
  m[7] = seq;
  m.set(data, 8);
  const p = packet6(src, dst, m, { next: 58 });
  const c = icmp6Verify(p); // over a zero checksum field: the checksum itself
  p[42] = c >> 8;
  p[43] = c;
  return p;
}

test('an ICMPv6 echo request gets the echo reply: addresses swapped, type 129, same id, seq and data, checksum right', () => {
  const { s, sent } = stack();
  const data = Uint8Array.from('abcdefgh', (c) => c.charCodeAt(0));
  const req = icmp6(PEER, ME, 128, data, 0x4242, 9);
  assert.is(icmp6Verify(req), 0);
  s.input(req);
  assert.is(sent.length, 1);
  const r = sent[0];
  assert.is(r.length, req.length);
  assert.is(r[0], 0x60);
  assert.is(r[6], 58);
  assert.equal(Array.from(r.subarray(8, 24)), Array.from(ME), 'from us');
  assert.equal(Array.from(r.subarray(24, 40)), Array.from(PEER), 'to the sender');
  assert.is(r[40], 129);
  assert.equal(Array.from(r.subarray(44)), Array.from(req.subarray(44)), 'id, seq and data');
  assert.is(icmp6Verify(r), 0, 'checksum');
  assert.is(s.stats.echoReplies, 1);
});

test('any echo request size gets a reply that passes the independent checksum', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1400 }), fc.integer({ min: 0, max: 0xffff }), (data, seq) => {
      const { s, sent } = stack();
      s.input(icmp6(PEER, ME, 128, data, 7, seq));
      assert.is(sent.length, 1);
      assert.is(icmp6Verify(sent[0]), 0);
    }),
  );
});

test('dropped and counted: no IPv6 address, not for us, bad checksum, other ICMPv6 types, other protocols, lengths that lie', () => {
  const req = icmp6(PEER, ME, 128, new Uint8Array(4));
  const none = stack(null);
  none.s.input(req);
  assert.is(none.s.stats.notForUs, 1);
  const { s, sent } = stack();
  s.input(icmp6(PEER, v6('fd00:5:6::a00:8'), 128, new Uint8Array(4)));
  assert.is(s.stats.notForUs, 1);
  const bad = req.slice();
  bad[50] ^= 1;
  s.input(bad);
  assert.is(s.stats.badChecksum, 1);
  s.input(icmp6(PEER, ME, 129, new Uint8Array(4)));
  s.input(packet6(PEER, ME, 16, { next: 17 }));
  assert.is(s.stats.unsupported, 2);
  const liar = req.slice();
  liar[5] += 1; // claims one byte more than there is
  s.input(liar);
  s.input(req.subarray(0, 39));
  assert.is(s.stats.malformed, 2);
  assert.is(sent.length, 0);
});

test('arbitrary IPv6-looking bytes never throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (b) => {
      if (b.length) b[0] = 0x60 | (b[0] & 15);
      const { s } = stack();
      s.input(b);
      assert.is(s.stats.received, 1);
    }),
  );
});

test.run();
