// Property-based fuzzing of the server's IPv6 path: a client holding an IPv6 address sends
// random extension-header chains (hop-by-hop anywhere, jumbo options, routing headers of
// every type, AH, fragments, lengths past the packet's end, chains far too long), random
// payload lengths, and random bytes after the fixed header. Every packet must be either
// delivered byte for byte or dropped and counted (bad_ipv6), the session must survive, and
// the server must neither throw nor stop switching for others.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { T_IPV6, ipv6Request, readIpv6Config } from '../../../protocol/index.js';
import { equalBytes, extRequest, ipPacket, waitFor, withServer } from '../../support/server-net.js';
import { packet6, v6 } from '../../support/ipv6-packets.js';
import { concat } from '../../support/sdk-fakes.js';

const NEXT = [0, 43, 44, 60, 51, 17, 6, 58, 59, 135, 255] as const;

/** One extension header: its type says how its length is read (fragment 8, AH (n+2)*4, others (n+1)*8). */
const headerArb = fc.record({
  type: fc.constantFrom(...NEXT),
  len: fc.oneof({ weight: 4, arbitrary: fc.nat({ max: 3 }) }, { weight: 1, arbitrary: fc.nat({ max: 255 }) }),
  routing: fc.nat({ max: 5 }),
  jumbo: fc.boolean(),
  fill: fc.nat({ max: 255 }),
});

const packetArb = fc.record({
  first: fc.constantFrom(...NEXT),
  chain: fc.array(headerArb, { maxLength: 11 }),
  payload: fc.nat({ max: 300 }),
  cut: fc.oneof({ weight: 5, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat({ max: 400 }) }),
  muts: fc.array(fc.tuple(fc.nat({ max: 500 }), fc.nat({ max: 255 })), { maxLength: 3 }),
});

type PacketD = typeof packetArb extends fc.Arbitrary<infer T> ? T : never;

/** The chain as bytes: each header's first byte names the next, its second its length. */
function chainBytes(d: PacketD): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < d.chain.length; i++) {
    const h = d.chain[i];
    const type = i === 0 ? d.first : d.chain[i - 1].type;
    const size = type === 44 ? 8 : type === 51 ? (h.len + 2) * 4 : (h.len + 1) * 8;
    const b = new Uint8Array(Math.min(size, 2048)).fill(h.fill);
    b[0] = h.type;
    b[1] = h.len;
    if (type === 43) b[2] = h.routing;
    if (type === 0 && h.jumbo && b.length >= 8) b.set([0xc2, 4, 0, 1, 0, 0], 2);
    parts.push(b);
  }
  return concat(...parts);
}

test('random IPv6 header chains from a client: each delivered intact or dropped as bad_ipv6, never a crash or a lost session', async () => {
  await withServer({ subnet: '10.7.0.0/24', subnet6: 'fd00:7::/64' }, async (h) => {
    // Room for every packet generated (at most 40 + 11 * 2048 + 300 bytes): none is too big.
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]], mtu: 65000 });
    const c = h.sdk();
    await b.ready();
    await c.ready();
    const b6 = v6(readIpv6Config((b.state as { reply?: Uint8Array }).reply)!.address);
    const raw = await h.raw();
    raw.write(extRequest(0, [[T_IPV6, ipv6Request()]]));
    await waitFor(() => raw.frames.length === 1, 3000, 'the reply');
    const me = v6(readIpv6Config(raw.frames.shift()!)!.address);
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(packetArb, async (d) => {
        const ext = chainBytes(d);
        let p = packet6(me, b6, d.payload, { ext, first: d.first, next: d.first });
        if (d.cut >= 0 && d.cut < p.length - 40) {
          // A shorter packet whose payload length still matches it: the chain runs past the end.
          p = p.slice(0, 40 + d.cut);
          p[4] = d.cut >> 8;
          p[5] = d.cut;
        }
        for (const [at, v] of d.muts) if (at >= 40 && at < p.length) p[at] = v;
        const before = { got: b.packets.length, bad: h.metrics.drops.bad_ipv6 };
        raw.write(p);
        sent++;
        await waitFor(() => b.packets.length + h.metrics.drops.bad_ipv6 > before.got + before.bad, 3000, 'the packet delivered or dropped');
        if (b.packets.length > before.got) assert.ok(equalBytes(b.packets[b.packets.length - 1], p), 'delivered byte for byte');
        assert.is(b.packets.length - before.got + h.metrics.drops.bad_ipv6 - before.bad, 1, 'one outcome per packet');
      }),
      { numRuns: 400 },
    );
    assert.not.ok(raw.closed, 'the fuzzing session is still up');
    assert.is(h.sessions, 3);
    // Both outcomes were reached (else the property proves little).
    assert.ok(h.metrics.drops.bad_ipv6 > 0 && b.packets.length > 0, `bad_ipv6 ${h.metrics.drops.bad_ipv6}, delivered ${b.packets.length} of ${sent}`);
    // IPv4 still flows for a bystander.
    const p4 = ipPacket(c.address, b.address, 60);
    const n = b.packets.length;
    c.client.send(p4);
    await waitFor(() => b.packets.length === n + 1, 3000, 'IPv4 after the fuzzing');
  });
});

test.run();
