// Control messages against the exact bytes the 2013 seed programs send, and the extension
// that rides behind them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { EXT_START, EXT_VERSION, KEEPALIVE, KIND_REFUSAL, KIND_REPLY, KIND_REQUEST, PROTO_EXT, REFUSE_EXHAUSTED, REFUSE_IN_USE, T_CLIENT, T_GATEWAY, T_LEASE, T_MTU, T_PREFIX, T_ROUTE, ascii, configTlvs, controlMessage, eachTlv, extKind, extMessage, isKeepalive, isRequest, readAscii, readConfig, readRefusal, refusal, seedRequest, u16, u32, u8, type Config, type Tlv, ALL, ANY, parseIPv4, Framer } from '../../../protocol/index.js';
import { bytes, concat, dataPacket, hex, ip } from '../../support/sdk-fakes.js';

const SEED_KEEPALIVE = '45 14 00 00 00 00 00 00 40 00 00 00 ff ff ff ff ff ff ff ff';
const SEED_DYNAMIC = '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00 00 00';
const SEED_STATIC_10_0_3_7 = '45 14 00 00 00 00 00 00 40 00 00 00 0a 00 03 07 00 00 00 00';

const totalLength = (f: Uint8Array) => (f[2] << 8) | f[3];

// ---- seed bytes -------------------------------------------------------------------------------

test('the keepalive is byte for byte the seed keepalive', () => {
  assert.is(hex(KEEPALIVE), SEED_KEEPALIVE);
  assert.is(hex(controlMessage(ALL, ALL)), SEED_KEEPALIVE);
});

test('a dynamic request is byte for byte the seed dynamic request', () => {
  assert.is(hex(seedRequest(0)), SEED_DYNAMIC);
});

test('a static request for 10.0.3.7 carries it in the source field, byte for byte as the seed', () => {
  assert.is(hex(seedRequest(parseIPv4('10.0.3.7'))), SEED_STATIC_10_0_3_7);
});

test('a seed control message is one 20-byte frame for the framer (total length 0)', () => {
  const f = new Framer();
  f.push(concat(bytes(SEED_DYNAMIC), bytes(SEED_KEEPALIVE)));
  assert.is(hex(f.next()!), SEED_DYNAMIC);
  assert.is(hex(f.next()!), SEED_KEEPALIVE);
  assert.is(f.next(), null);
});

// ---- recognisers -------------------------------------------------------------------------------

const ordinary = [
  dataPacket('10.0.0.2', '10.0.0.1'),
  dataPacket('10.0.0.1', '10.0.3.7', 100),
  dataPacket('192.168.1.5', '8.8.8.8', 0),
  // Broadcast to 255.255.255.255 from a real source is data, not a keepalive.
  dataPacket('10.0.0.9', '255.255.255.255'),
  // From 255.255.255.255 to a real destination: not a keepalive either.
  dataPacket('255.255.255.255', '10.0.0.9'),
];

test('isKeepalive recognises the seed keepalive and nothing else', () => {
  assert.ok(isKeepalive(bytes(SEED_KEEPALIVE)));
  assert.not.ok(isKeepalive(bytes(SEED_DYNAMIC)));
  assert.not.ok(isKeepalive(bytes(SEED_STATIC_10_0_3_7)));
  assert.not.ok(isKeepalive(extMessage(0, 0, KIND_REQUEST, [])));
  for (const p of ordinary) assert.not.ok(isKeepalive(p), hex(p.subarray(0, 20)));
  // Too short, or IPv6 full of ff: not a keepalive.
  assert.not.ok(isKeepalive(bytes(SEED_KEEPALIVE).subarray(0, 19)));
  const v6 = new Uint8Array(40).fill(0xff);
  v6[0] = 0x60;
  assert.not.ok(isKeepalive(v6));
});

test('isRequest recognises seed dynamic, seed static and extension requests, not keepalives, replies or data', () => {
  assert.ok(isRequest(bytes(SEED_DYNAMIC)));
  assert.ok(isRequest(bytes(SEED_STATIC_10_0_3_7)));
  assert.ok(isRequest(extMessage(0, ANY, KIND_REQUEST, [[T_CLIENT, ascii('dev')]])));
  assert.ok(isRequest(extMessage(ip('10.0.3.7'), ANY, KIND_REQUEST, [])));
  assert.not.ok(isRequest(bytes(SEED_KEEPALIVE)));
  // A seed reply: the request sent back with destination = the address.
  assert.not.ok(isRequest(controlMessage(0, ip('10.0.3.7'))));
  assert.not.ok(isRequest(extMessage(0, ip('10.0.3.7'), KIND_REPLY, [])));
  for (const p of ordinary) assert.not.ok(isRequest(p), hex(p.subarray(0, 20)));
  assert.not.ok(isRequest(new Uint8Array(20).fill(0x40).subarray(0, 19)));
});

test('extKind gives the kind of request, reply and refusal and 0 for seed messages and data', () => {
  assert.is(extKind(extMessage(0, 0, KIND_REQUEST, [])), KIND_REQUEST);
  assert.is(extKind(extMessage(0, ip('10.0.0.5'), KIND_REPLY, [])), KIND_REPLY);
  assert.is(extKind(refusal(ip('10.0.0.5'), REFUSE_IN_USE, 'in use')), KIND_REFUSAL);
  assert.is(extKind(bytes(SEED_KEEPALIVE)), 0);
  assert.is(extKind(bytes(SEED_DYNAMIC)), 0);
  assert.is(extKind(bytes(SEED_STATIC_10_0_3_7)), 0);
  for (const p of ordinary) assert.is(extKind(p), 0);
  // Protocol 253 without the 'SV' marker is someone's experiment, not ours.
  const exp = dataPacket('10.0.0.2', '10.0.0.1', 8);
  exp[9] = PROTO_EXT;
  assert.is(extKind(exp), 0);
  // 'SV' behind an ordinary protocol is payload, not a marker.
  const udp = dataPacket('10.0.0.2', '10.0.0.1', 8);
  udp.set([0x53, 0x56, KIND_REPLY, EXT_VERSION], 20);
  assert.is(extKind(udp), 0);
  // Cut before the kind byte.
  assert.is(extKind(extMessage(0, 0, KIND_REPLY, []).subarray(0, EXT_START - 1)), 0);
});

test('a seed-format frame is never an extension message, whatever its addresses and other bytes', () => {
  fc.assert(
    fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.uint8Array({ minLength: 20, maxLength: 20 }), (src, dst, any20) => {
      assert.is(extKind(controlMessage(src, dst)), 0);
      // Any 20-byte header is too short to carry the marker.
      any20[0] = 0x45;
      assert.is(extKind(any20), 0);
    }),
    { numRuns: 1000 },
  );
});

// ---- extension messages --------------------------------------------------------------------

test('an extension message is the seed header with protocol 253, the real total length and S V kind version', () => {
  const m = extMessage(ip('10.0.3.7'), ANY, KIND_REQUEST, [
    [T_CLIENT, ascii('cam')],
    [T_MTU, u16(1400)],
  ]);
  assert.is(
    hex(m),
    '45 14 00 21 00 00 00 00 40 fd 00 00 0a 00 03 07 00 00 00 00' + // header: length 33, protocol 253
      ' 53 56 01 01' + // 'S' 'V' request v1
      ' 10 03 63 61 6d' + // T_CLIENT "cam"
      ' 03 02 05 78', // T_MTU 1400
  );
  assert.is(totalLength(m), m.length);
  assert.is(m[9], PROTO_EXT);
});

test('request, reply and refusal match the worked examples of PROTOCOL.md byte for byte', () => {
  assert.is(
    hex(extMessage(0, ANY, KIND_REQUEST, [[T_CLIENT, ascii('sensor-7')]])),
    '45 14 00 22 00 00 00 00 40 fd 00 00 00 00 00 00 00 00 00 00 53 56 01 01 10 08 73 65 6e 73 6f 72 2d 37',
  );
  const reply = extMessage(
    0,
    ip('10.0.0.2'),
    KIND_REPLY,
    configTlvs({ prefix: 16, gateway: ip('10.0.0.1'), mtu: 1500, keepalive: 15, idleTimeout: 60, routes: [[ip('192.168.50.0'), 24]] }),
  );
  assert.is(
    hex(reply),
    '45 14 00 34 00 00 00 00 40 fd 00 00 00 00 00 00 0a 00 00 02 53 56 02 01' +
      ' 01 01 10 02 04 0a 00 00 01 03 02 05 dc 04 02 00 0f 05 02 00 3c 06 05 c0 a8 32 00 18',
  );
  assert.is(
    hex(refusal(ip('10.0.3.7'), REFUSE_IN_USE, 'address 10.0.3.7 is in use')),
    '45 14 00 37 00 00 00 00 40 fd 00 00 0a 00 03 07 00 00 00 00 53 56 03 01 08 01 01' +
      ' 09 1a 61 64 64 72 65 73 73 20 31 30 2e 30 2e 33 2e 37 20 69 73 20 69 6e 20 75 73 65',
  );
});

test('the framer frames an extension message by its total length, including what follows it', () => {
  const m = extMessage(0, ip('10.0.0.5'), KIND_REPLY, configTlvs({ prefix: 24, routes: [[ip('192.168.0.0'), 16]] }));
  const f = new Framer();
  f.push(concat(m, bytes(SEED_KEEPALIVE)));
  assert.equal(f.next(), m);
  assert.is(hex(f.next()!), SEED_KEEPALIVE);
});

test("the lease token read from a reply is a copy: the transport's receive buffer (a Node Buffer) may be reused", () => {
  const token = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const rx = Buffer.from(extMessage(0, ip('10.0.0.5'), KIND_REPLY, [[T_LEASE, token]]));
  const c = readConfig(rx);
  rx.fill(0);
  assert.equal([...c.lease!], [...token]);
});

test('every TLV of a reply survives configTlvs → extMessage → readConfig', () => {
  const lease = Uint8Array.from([1, 2, 3, 4, 5, 250]);
  const cfg: Config = {
    prefix: 24,
    gateway: ip('10.8.0.1'),
    mtu: 1380,
    keepalive: 25,
    idleTimeout: 90,
    routes: [
      [ip('192.168.10.0'), 24],
      [ip('172.16.0.0'), 12],
      [ip('0.0.0.0'), 0],
    ],
    lease,
  };
  const m = extMessage(0, ip('10.8.0.7'), KIND_REPLY, configTlvs(cfg));
  assert.equal(readConfig(m), cfg);
});

test('config round trip holds for any values in range', () => {
  const cfgArb = fc.record(
    {
      prefix: fc.integer({ min: 0, max: 32 }),
      gateway: fc.nat({ max: 0xffffffff }),
      mtu: fc.integer({ min: 0, max: 0xffff }),
      keepalive: fc.integer({ min: 0, max: 0xffff }),
      idleTimeout: fc.integer({ min: 0, max: 0xffff }),
      routes: fc.array(fc.tuple(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 })), { maxLength: 8 }),
      lease: fc.uint8Array({ maxLength: 64 }),
    },
    { requiredKeys: ['routes'] },
  );
  fc.assert(
    fc.property(cfgArb, (generated) => {
      const cfg = { ...generated } as Config; // fast-check records have no prototype
      const m = extMessage(0, ip('10.0.0.5'), KIND_REPLY, configTlvs(cfg));
      assert.is(totalLength(m), m.length);
      assert.equal(readConfig(m), cfg);
    }),
    { numRuns: 1000 },
  );
});

test('a reply without TLVs reads as an empty configuration', () => {
  assert.equal(readConfig(extMessage(0, ip('10.0.0.5'), KIND_REPLY, [])), { routes: [] });
});

test('unknown TLVs are skipped and the known ones around them still read', () => {
  const tlvs: Tlv[] = [
    [200, Uint8Array.from([9, 9, 9])],
    [T_PREFIX, u8(20)],
    [99, new Uint8Array(0)],
    [T_GATEWAY, u32(ip('10.9.0.1'))],
    [255, new Uint8Array(255).fill(T_MTU)], // looks like TLVs inside, must not be parsed
    [T_ROUTE, Uint8Array.from([10, 20, 0, 0, 16])],
  ];
  const c = readConfig(extMessage(0, ip('10.9.0.5'), KIND_REPLY, tlvs));
  assert.equal(c, { prefix: 20, gateway: ip('10.9.0.1'), routes: [[ip('10.20.0.0'), 16]] });
});

test('a known TLV of the wrong size is ignored', () => {
  const c = readConfig(
    extMessage(0, ip('10.0.0.5'), KIND_REPLY, [
      [T_PREFIX, u16(24)],
      [T_MTU, u8(5)],
      [T_GATEWAY, Uint8Array.from([10, 0, 0])],
    ]),
  );
  assert.equal(c, { routes: [] });
});

test('a prefix length above 32 is ignored, in the prefix and in a route (found by fuzz/targets/control.ts)', () => {
  const c = readConfig(
    extMessage(0, ip('10.0.0.5'), KIND_REPLY, [
      [T_PREFIX, u8(126)],
      [T_ROUTE, Uint8Array.from([192, 168, 50, 0, 33])],
      [T_ROUTE, Uint8Array.from([192, 168, 51, 0, 32])],
    ]),
  );
  assert.equal(c, { routes: [[ip('192.168.51.0'), 32]] });
});

test('a truncated last TLV is ignored, the ones before it are read', () => {
  const whole = extMessage(0, ip('10.0.0.5'), KIND_REPLY, [
    [T_PREFIX, u8(24)],
    [T_MTU, u16(1400)],
  ]);
  // Cut inside the MTU value, then inside its header.
  for (const cut of [whole.length - 1, whole.length - 3]) {
    const m = whole.slice(0, cut);
    assert.equal(readConfig(m), { prefix: 24, routes: [] }, `cut at ${cut}`);
  }
  // A TLV header that claims more bytes than remain.
  const claims = concat(whole, Uint8Array.from([T_LEASE, 50, 1, 2]));
  assert.equal(readConfig(claims), { prefix: 24, mtu: 1400, routes: [] });
  const seen: number[] = [];
  eachTlv(claims, (t) => seen.push(t));
  assert.equal(seen, [T_PREFIX, T_MTU]);
});

test('a refusal round trips its code and text and is addressed from the requested address', () => {
  const m = refusal(ip('10.0.3.7'), REFUSE_EXHAUSTED, 'no free address');
  assert.is(extKind(m), KIND_REFUSAL);
  assert.equal(readRefusal(m), { code: REFUSE_EXHAUSTED, text: 'no free address' });
  assert.is(hex(m.subarray(12, 20)), '0a 00 03 07 00 00 00 00');
  assert.is(totalLength(m), m.length);
});

test('a refusal without a reason reads as code 0 and empty text', () => {
  assert.equal(readRefusal(extMessage(0, 0, KIND_REFUSAL, [])), { code: 0, text: '' });
});

test('ascii cuts text at 255 bytes and 7 bits; readAscii reads it back', () => {
  const long = 'x'.repeat(300);
  assert.is(ascii(long).length, 255);
  assert.is(readAscii(ascii('in use: 10.0.3.7')), 'in use: 10.0.3.7');
  assert.is(ascii('é')[0], 0xe9 & 0x7f);
});

test('u8, u16 and u32 are big-endian', () => {
  assert.is(hex(u8(24)), '18');
  assert.is(hex(u16(1400)), '05 78');
  assert.is(hex(u32(ip('10.0.3.7'))), '0a 00 03 07');
});

test.run();
