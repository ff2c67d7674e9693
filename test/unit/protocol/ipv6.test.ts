// The extension's IPv6 part (protocol/ipv6.ts): address text both ways, the TLVs, and the
// worked examples of PROTOCOL.md's IPv6 section against the encoder, byte for byte.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KIND_REPLY, KIND_REQUEST, REFUSE_IN_USE6, REFUSE_OUTSIDE6, T_CLIENT, T_IPV6, T_ROUTE6, T_GATEWAY6, ascii, configTlvs, extMessage, formatIPv6, inPrefix6, ipv6Request, ipv6Tlvs, maskPrefix6, parseIPv6, readConfig, readIpv6Config, readRefusal, refusal, sameAddress6, type Tlv } from '../../../protocol/index.js';
import { hex, ip } from '../../support/sdk-fakes.js';
import { ROOT } from '../../support/paths.js';

const v6 = (s: string): Uint8Array => {
  const a = parseIPv6(s);
  if (a === null) throw new Error('bad IPv6 address in test: ' + s);
  return a;
};

test('parseIPv6 reads full, compressed and IPv4-tailed forms, and refuses the rest', () => {
  assert.is(hex(v6('fd00:5:6::a00:2')), 'fd 00 00 05 00 06 00 00 00 00 00 00 0a 00 00 02');
  assert.is(hex(v6('::')), hex(new Uint8Array(16)));
  assert.is(hex(v6('::1')), '00 '.repeat(15) + '01');
  assert.is(hex(v6('1:2:3:4:5:6:7:8')), '00 01 00 02 00 03 00 04 00 05 00 06 00 07 00 08');
  assert.is(hex(v6('::ffff:10.0.0.2')), '00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 02');
  assert.is(hex(v6('FD00::ABCD')), hex(v6('fd00::abcd')));
  for (const bad of ['', ':', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '10.0.0.1', '::1.2.3.256', '1:2:3:4:5:6:7::8', 'fd00::/64'])
    assert.is(parseIPv6(bad), null, bad);
});

test('formatIPv6 writes RFC 5952 text: lower case, the longest zero run (two groups or more) as ::', () => {
  assert.is(formatIPv6(v6('fd00:0005:0006:0000:0000:0000:0a00:0002')), 'fd00:5:6::a00:2');
  assert.is(formatIPv6(new Uint8Array(16)), '::');
  assert.is(formatIPv6(v6('1:0:0:2:0:0:0:3')), '1:0:0:2::3');
  assert.is(formatIPv6(v6('1:0:2:3:4:5:6:7')), '1:0:2:3:4:5:6:7'); // one zero group stays
  assert.is(formatIPv6(v6('1:0:0:2:3:0:0:4')), '1::2:3:0:0:4'); // the first of equal runs
});

test('text to bytes and back is the identity on every address', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (a) => {
      assert.is(hex(v6(formatIPv6(a))), hex(a));
    }),
  );
});

test('prefix helpers: inside, masking, comparing', () => {
  const net = v6('fd00:5:6::');
  assert.ok(inPrefix6(v6('fd00:5:6::a00:2'), 0, net, 64));
  assert.not.ok(inPrefix6(v6('fd00:5:7::a00:2'), 0, net, 64));
  assert.ok(inPrefix6(v6('fd00:5:f::1'), 0, v6('fd00:5::'), 44)); // the group's last 4 bits are past the prefix
  assert.not.ok(inPrefix6(v6('fd00:5:10::1'), 0, v6('fd00:5::'), 44));
  assert.is(formatIPv6(maskPrefix6(v6('2001:db8:1:2:3::1'), 48)), '2001:db8:1::');
  assert.is(formatIPv6(maskPrefix6(v6('2001:db8:ffff::'), 36)), '2001:db8:f000::');
  assert.ok(sameAddress6(v6('::1'), 0, v6('0::0:1'), 0));
  assert.not.ok(sameAddress6(v6('::1'), 0, v6('::2'), 0));
});

test('a request asks for any IPv6 address with an empty TLV 24, for one with its 16 bytes', () => {
  assert.is(ipv6Request().length, 0);
  assert.is(hex(ipv6Request('fd00::7')), hex(v6('fd00::7')));
  assert.throws(() => ipv6Request('10.0.0.1'), /invalid IPv6 address/);
});

test('the reply TLVs round-trip through readIpv6Config, which reads the reply itself', () => {
  const tlvs = ipv6Tlvs({ address: v6('fd00:5:6::a00:2'), prefix: 64, gateway: v6('fd00:5:6::a00:1'), routes: [[v6('2001:db8:1::'), 48], [v6('::'), 0]] });
  const reply = extMessage(0, ip('10.0.0.2'), KIND_REPLY, [...configTlvs({ prefix: 16, routes: [] }), ...tlvs]);
  assert.equal(readIpv6Config(reply), {
    address: 'fd00:5:6::a00:2',
    prefix: 64,
    gateway: 'fd00:5:6::a00:1',
    routes: [
      { network: '2001:db8:1::', prefix: 48 },
      { network: '::', prefix: 0 },
    ],
  });
  // The IPv4 configuration's reader leaves the IPv6 TLVs alone.
  assert.equal(readConfig(reply), { prefix: 16, routes: [] });
});

test('readIpv6Config: only an extension reply grants IPv6 (a seed server echoes the request, TLV 24 and all)', () => {
  const grant = ipv6Tlvs({ address: v6('fd00::a00:2'), prefix: 64, routes: [] });
  assert.is(readIpv6Config(extMessage(0, ip('10.0.0.2'), KIND_REQUEST, grant)), null);
  assert.is(readIpv6Config(new Uint8Array(0)), null);
  assert.is(readIpv6Config(grant[0][1]), null);
});

test('readIpv6Config: no address TLV, no IPv6; values of the wrong length or prefix are skipped', () => {
  const reply = (t: Tlv[]) => extMessage(0, ip('10.0.0.2'), KIND_REPLY, t);
  assert.is(readIpv6Config(undefined), null);
  assert.is(readIpv6Config(reply([])), null);
  assert.is(readIpv6Config(reply([[T_GATEWAY6, v6('fd00::1')]])), null);
  const long = new Uint8Array(18);
  const badPrefix = new Uint8Array(17);
  badPrefix[16] = 129;
  assert.is(readIpv6Config(reply([[T_IPV6, long]])), null);
  assert.is(readIpv6Config(reply([[T_IPV6, badPrefix]])), null);
  const ok = ipv6Tlvs({ address: v6('fd00::a00:2'), prefix: 64, routes: [] });
  assert.equal(readIpv6Config(reply([...ok, [T_ROUTE6, badPrefix], [T_GATEWAY6, new Uint8Array(4)]])), { address: 'fd00::a00:2', prefix: 64, gateway: null, routes: [] });
});

// ---- PROTOCOL.md -------------------------------------------------------------------------------

const EXAMPLES = {
  request: extMessage(0, 0, KIND_REQUEST, [
    [T_CLIENT, ascii('sensor-7')],
    [T_IPV6, ipv6Request()],
  ]),
  wanted: extMessage(0, 0, KIND_REQUEST, [[T_IPV6, ipv6Request('fd00:5:6:0:1::7')]]),
  reply: extMessage(0, ip('10.0.0.2'), KIND_REPLY, [
    ...configTlvs({ prefix: 16, gateway: ip('10.0.0.1'), mtu: 1500, keepalive: 15, idleTimeout: 60, routes: [] }),
    ...ipv6Tlvs({ address: v6('fd00:5:6::a00:2'), prefix: 64, gateway: v6('fd00:5:6::a00:1'), routes: [[v6('2001:db8:1::'), 48]] }),
  ]),
  refusal: refusal(0, REFUSE_IN_USE6, 'IPv6 address fd00:5:6:0:1::7 is in use'),
};

test('the IPv6 examples match the encoder byte for byte', () => {
  assert.is(hex(EXAMPLES.request), '45 14 00 24 00 00 00 00 40 fd 00 00 00 00 00 00 00 00 00 00 53 56 01 01 10 08 73 65 6e 73 6f 72 2d 37 18 00');
  assert.is(hex(EXAMPLES.wanted), '45 14 00 2a 00 00 00 00 40 fd 00 00 00 00 00 00 00 00 00 00 53 56 01 01 18 10 fd 00 00 05 00 06 00 00 00 01 00 00 00 00 00 07');
  assert.is(
    hex(EXAMPLES.reply),
    '45 14 00 65 00 00 00 00 40 fd 00 00 00 00 00 00 0a 00 00 02 53 56 02 01 01 01 10 02 04 0a 00 00 01 03 02 05 dc 04 02 00 0f 05 02 00 3c' +
      ' 18 11 fd 00 00 05 00 06 00 00 00 00 00 00 0a 00 00 02 40 19 10 fd 00 00 05 00 06 00 00 00 00 00 00 0a 00 00 01' +
      ' 1a 11 20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 00 30',
  );
  assert.equal(readRefusal(EXAMPLES.refusal), { code: REFUSE_IN_USE6, text: 'IPv6 address fd00:5:6:0:1::7 is in use' });
  assert.is.not(REFUSE_IN_USE6, REFUSE_OUTSIDE6);
});

test("PROTOCOL.md's IPv6 section prints exactly these messages", () => {
  const doc = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8');
  const section = doc.slice(doc.indexOf('\n## IPv6\n'), doc.indexOf('\n## MTU\n'));
  assert.ok(section.length > 100, 'PROTOCOL.md has an IPv6 section before MTU');
  // Every code block, read as the hex bytes at the start of each line (the rest is the comment).
  const blocks = [...section.matchAll(/```\n([\s\S]*?)```/g)].map((m) =>
    m[1]
      .split('\n')
      .map((line) => /^((?:[0-9a-f]{2} )*[0-9a-f]{2})(?: {2,}|$)/.exec(line)?.[1] ?? '')
      .filter(Boolean)
      .join(' '),
  );
  assert.equal(blocks, [hex(EXAMPLES.request), hex(EXAMPLES.wanted), hex(EXAMPLES.reply), hex(EXAMPLES.refusal)]);
});

test.run();
