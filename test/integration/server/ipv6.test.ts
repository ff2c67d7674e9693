// IPv6 inside the tunnel (--subnet6): addresses granted and refused, client-to-client
// switching, anti-spoofing, Packet Too Big, the server's tun, the seed protocol beside it,
// and hostile IPv6 headers, against a real server on loopback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OpenTun, ServerTun } from '../../../server/src/server.js';
import { resolveConfig } from '../../../server/src/config/config.js';
import { KIND_REPLY, REFUSE_IN_USE6, REFUSE_OUTSIDE6, T_IPV6, T_LEASE, T_MTU, eachTlv, extKind, formatIPv6, ipv6Request, readIpv6Config, readRefusal, u16 } from '../../../protocol/index.js';
import { equalBytes, extRequest, ip, ipPacket, sleep, waitFor, withServer, type RawClient, type SdkPeer } from '../../support/server-net.js';
import { extChain, extHeader, icmp6Verify, jumboHopByHop, packet6, v6 } from '../../support/ipv6-packets.js';

const SUBNET6 = 'fd00:5:6::/64';
const V6 = { subnet: '10.6.0.0/24', subnet6: SUBNET6 };

/** The SDK peer's IPv6 configuration from its ready state. */
function ipv6Of(p: SdkPeer) {
  const s = p.state;
  return s.state === 'ready' ? readIpv6Config(s.reply) : null;
}

/** A raw extension request and its reply or refusal frame. */
async function rawRequest(c: RawClient, tlvs: Parameters<typeof extRequest>[1], addr = 0): Promise<Uint8Array> {
  const before = c.frames.length;
  c.write(extRequest(addr, tlvs));
  await waitFor(() => c.frames.length > before || c.closed, 3000, 'the answer to a request');
  if (c.frames.length <= before) throw new Error('closed without an answer');
  return c.frames.splice(before, 1)[0];
}

test('two clients that ask get PREFIX + their IPv4 address, the gateway and routes; IPv6 goes between them byte for byte', async () => {
  await withServer({ ...V6, routes6: ['2001:db8:1::/48'] }, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    await b.ready();
    const ca = ipv6Of(a)!;
    const cb = ipv6Of(b)!;
    assert.equal(ca, { address: 'fd00:5:6::a06:2', prefix: 64, gateway: 'fd00:5:6::a06:1', routes: [{ network: '2001:db8:1::', prefix: 48 }] });
    assert.is(cb.address, 'fd00:5:6::a06:3');
    const packets = [1, 100, 1000, 1400].map((n, i) => packet6(v6(ca.address), v6(cb.address), n, { fill: i }));
    for (const p of packets) assert.ok(a.client.send(p));
    const back = packet6(v6(cb.address), v6(ca.address), 64);
    b.client.send(back);
    await waitFor(() => b.packets.length === packets.length && a.packets.length === 1, 3000, 'IPv6 both ways');
    packets.forEach((p, i) => assert.ok(equalBytes(b.packets[i], p), `packet ${i}`));
    assert.ok(equalBytes(a.packets[0], back));
    assert.is(h.metrics.rxPackets, packets.length + 1);
    const listed = h.server.clients().map((c) => c.address6).sort();
    assert.equal(listed, ['fd00:5:6::a06:2', 'fd00:5:6::a06:3']);
  });
});

test('a client that does not ask, or a server without --subnet6, means no IPv6: IPv4 as before, IPv6 frames not_ipv4', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk();
    await a.ready();
    assert.is(ipv6Of(a), null);
    assert.is(h.server.clients()[0].address6, null);
    a.client.send(packet6(v6('fd00:5:6::a06:2'), v6('fd00:5:6::a06:1'), 8));
    await waitFor(() => h.metrics.drops.not_ipv4 === 1, 3000, 'not_ipv4');
  });
  await withServer({ subnet: '10.6.0.0/24' }, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const r = await a.ready();
    assert.is(readIpv6Config(r.reply), null);
    assert.is(r.address, '10.6.0.2');
  });
});

test('a client below IPv6 minimum MTU (1280) gets IPv4 only', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]], mtu: 1000 });
    const r = await a.ready();
    assert.is(r.mtu, 1000);
    assert.is(readIpv6Config(r.reply), null);
  });
});

test('spoofed IPv6 sources are dropped and counted as spoofed_source; the session carries on', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    await b.ready();
    const me = v6(ipv6Of(a)!.address);
    const them = v6(ipv6Of(b)!.address);
    for (const src of ['fd00:5:6::a06:3', 'fd00:5:6::a06:1', '2001:db8::1', '::', 'fe80::1']) a.client.send(packet6(v6(src), them, 20));
    const good = packet6(me, them, 20);
    a.client.send(good);
    await waitFor(() => b.packets.length === 1, 3000, 'the honest packet');
    assert.ok(equalBytes(b.packets[0], good));
    assert.is(h.metrics.drops.spoofed_source, 5);
    assert.is(h.sessions, 2);
  });
});

test('a spoofed IPv6 source is logged as drop_spoofed with both addresses, rate limited as IPv4\'s is', async () => {
  const lines: Array<{ level: string; event: string; fields: any }> = [];
  const logger = { log: (level: any, event: string, fields: any) => lines.push({ level, event, fields }) };
  await withServer({ ...V6, logger }, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    await b.ready();
    const them = v6(ipv6Of(b)!.address);
    let sent = 0;
    for (let i = 0; i < 200; i++) if (a.client.send(packet6(v6('2001:db8::66'), them, 20))) sent++;
    assert.ok(sent > 1, 'more than one spoofed packet went out');
    await waitFor(() => h.metrics.drops.spoofed_source === sent, 3000, 'the spoofed drops', () => h.metrics.drops);
    const logged = lines.filter((l) => l.event === 'drop_spoofed');
    assert.is(logged.length, 1, 'one line for the burst');
    assert.is(logged[0].level, 'warn');
    assert.is(logged[0].fields.source, '2001:db8::66');
    assert.is(logged[0].fields.address, ipv6Of(a)!.address);
    assert.is(logged[0].fields.more_since_last, 0);
    assert.is(b.packets.length, 0);
  });
});

test('too big for the receiver: dropped (too_big), never fragmented, the sender gets ICMPv6 Packet Too Big with a right checksum', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]], mtu: 9000 });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]], mtu: 1280 });
    await a.ready();
    await b.ready();
    const src = v6(ipv6Of(a)!.address);
    const dst = v6(ipv6Of(b)!.address);
    const big = packet6(src, dst, 2000);
    a.client.send(big);
    await waitFor(() => a.packets.length === 1, 3000, 'the ICMPv6 error');
    const icmp = a.packets[0];
    assert.is(icmp[0] >> 4, 6);
    assert.is(icmp[6], 58);
    assert.is(formatIPv6(icmp, 8), 'fd00:5:6::a06:1', 'from the server');
    assert.is(formatIPv6(icmp, 24), ipv6Of(a)!.address, 'to the sender');
    assert.is(icmp[40], 2, 'Packet Too Big');
    assert.is(icmp[41], 0);
    assert.is((icmp[44] << 24) | (icmp[45] << 16) | (icmp[46] << 8) | icmp[47], 1280, 'the MTU');
    assert.is(icmp.length, 1280, 'as much of the packet as fits in 1280 bytes');
    assert.ok(equalBytes(icmp.subarray(48), big.subarray(0, 1280 - 48)));
    assert.is(icmp6Verify(icmp), 0, 'checksum');
    assert.is(b.packets.length, 0);
    assert.is(h.metrics.drops.too_big, 1);
    assert.is(h.metrics.fragmented, 0);
    // An ICMPv6 error that is too big gets no error back (RFC 4443).
    const err = packet6(src, dst, new Uint8Array(1500).fill(1), { next: 58 });
    err[40] = 1; // destination unreachable
    a.client.send(err);
    await waitFor(() => h.metrics.drops.too_big === 2, 3000, 'the second drop');
    await sleep(50);
    assert.is(a.packets.length, 1);
  });
});

test('a wanted IPv6 address: granted; the same for a second client refused 13; reserved, outside and no --subnet6 refused 14', async () => {
  await withServer(V6, async (h) => {
    const want = 'fd00:5:6:0:1::7';
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request(want)]] });
    await a.ready();
    assert.is(ipv6Of(a)!.address, want);
    assert.is(h.server.clients()[0].address6, want);
    const cases: Array<[string, number, RegExp]> = [
      [want, REFUSE_IN_USE6, /in use/],
      ['fd00:5:6::', REFUSE_OUTSIDE6, /reserved/],
      ['fd00:5:6::a06:1', REFUSE_OUTSIDE6, /reserved/],
      ['fd00:5:6::a06:2', REFUSE_OUTSIDE6, /kept for the client holding 10\.6\.0\.2/],
      ['fd00:5:7::1:0:0:1', REFUSE_OUTSIDE6, /outside the subnet fd00:5:6::\/64/],
    ];
    for (const [addr, code, text] of cases) {
      const c = await h.raw();
      const r = await rawRequest(c, [[T_IPV6, v6(addr)]]);
      const refusal = readRefusal(r);
      assert.is(refusal.code, code, addr);
      assert.match(refusal.text, text);
      await c.waitClosed();
    }
    // Its own PREFIX + IPv4 address, asked for with that IPv4 address: granted.
    const c = await h.raw();
    const r = await rawRequest(c, [[T_IPV6, v6('fd00:5:6::a06:9')]], ip('10.6.0.9'));
    assert.is(readIpv6Config(r)!.address, 'fd00:5:6::a06:9');
  });
  await withServer({ subnet: '10.6.0.0/24' }, async (h) => {
    const c = await h.raw();
    const r = await rawRequest(c, [[T_IPV6, v6('fd00::1:0:0:1')]]);
    assert.is(readRefusal(r).code, REFUSE_OUTSIDE6);
    assert.match(readRefusal(r).text, /no IPv6 subnet/);
  });
});

test('a wanted IPv6 address is free again when its holder leaves', async () => {
  await withServer(V6, async (h) => {
    const want = 'fd00:5:6:0:1::7';
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request(want)]] });
    await a.ready();
    a.close();
    await waitFor(() => h.sessions === 0, 3000, 'a to leave');
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request(want)]] });
    await b.ready();
    assert.is(ipv6Of(b)!.address, want);
  });
});

test('reconnecting with the lease token takes the stale session over and keeps the IPv6 address (wanted or not)', async () => {
  await withServer(V6, async (h) => {
    for (const wanted of [null, 'fd00:5:6:0:1::7']) {
      const tlv: [number, Uint8Array] = [T_IPV6, wanted ? v6(wanted) : ipv6Request()];
      const first = await h.raw();
      const r1 = await rawRequest(first, [tlv]);
      assert.is(extKind(r1), KIND_REPLY);
      const addr = (r1[16] << 24) | (r1[17] << 16) | (r1[18] << 8) | r1[19];
      let lease: Uint8Array | null = null;
      eachTlv(r1, (t, v) => {
        if (t === T_LEASE) lease = Uint8Array.from(v);
      });
      const a6 = readIpv6Config(r1)!.address;
      // The first connection's link "dies" without the server noticing: a second one comes with the token.
      const second = await h.raw();
      const r2 = await rawRequest(second, [tlv, [T_LEASE, lease!], [T_MTU, u16(1500)]], addr >>> 0);
      assert.is(extKind(r2), KIND_REPLY, 'taken over, not refused');
      assert.is(readIpv6Config(r2)!.address, a6);
      await first.waitClosed();
      second.destroy();
      await waitFor(() => h.sessions === 0, 3000, 'the second to leave');
    }
  });
});

test('a seed client and an IPv6 client on one server: the seed reply is byte for byte the seed one, and no IPv6 ever reaches the seed client', async () => {
  await withServer(V6, async (h) => {
    const seed = await h.raw();
    const seedAddr = await seed.requestSeed();
    assert.is(seedAddr, ip('10.6.0.2'));
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    const me = v6(ipv6Of(a)!.address);
    // IPv6 towards every address the seed client could be thought to have.
    for (const dst of ['fd00:5:6::a06:2', '::ffff:10.6.0.2', 'fd00:5:6::1', 'ff02::1']) a.client.send(packet6(me, v6(dst), 16));
    const p4 = ipPacket(ip('10.6.0.3'), seedAddr, 40);
    a.client.send(p4);
    await waitFor(() => seed.frames.length === 1, 3000, 'the IPv4 packet');
    await sleep(50);
    assert.equal(seed.frames.map((f) => f[0] >> 4), [4]);
    assert.ok(equalBytes(seed.frames[0], p4));
    assert.is(h.metrics.drops.no_route, 4, 'IPv6 for nobody (no tun here)');
  });
});

test('hostile IPv6 headers are dropped as bad_ipv6 and counted; honest extension headers pass; the session carries on', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    await b.ready();
    const s = v6(ipv6Of(a)!.address);
    const d = v6(ipv6Of(b)!.address);
    const hostile = [
      packet6(s, d, 0, { next: 0 }), // payload length 0 with hop-by-hop next: a jumbogram
      packet6(s, d, 16, { ext: jumboHopByHop(17, 70000), first: 0 }), // the jumbo option
      packet6(s, d, 16, { ext: extChain(9), first: 60 }), // too many extension headers
      packet6(s, d, 0, { ext: extHeader(17, 4).subarray(0, 16), first: 60 }), // header cut short
      packet6(s, d, 0, { ext: new Uint8Array(4), first: 44 }), // fragment header cut short
      packet6(s, d, 16, { ext: extHeader(17, 3, 0), first: 43 }), // routing header type 0
      packet6(s, d, 16, { ext: new Uint8Array([...extHeader(0), ...extHeader(17)]), first: 60 }), // hop-by-hop not first
    ];
    for (const p of hostile) a.client.send(p);
    const honest = [
      packet6(s, d, 16, { ext: extChain(8), first: 60 }),
      packet6(s, d, 16, { ext: extHeader(17, 3, 4), first: 43 }), // a segment routing header
      packet6(s, d, 0, { next: 59 }), // no next header, no payload
      packet6(s, d, 32, { ext: new Uint8Array([17, 0, 0, 0, 0, 0, 0, 1]), first: 44 }), // a fragment
    ];
    for (const p of honest) a.client.send(p);
    await waitFor(() => b.packets.length === honest.length, 3000, 'the honest ones');
    honest.forEach((p, i) => assert.ok(equalBytes(b.packets[i], p), `honest ${i}`));
    assert.is(h.metrics.drops.bad_ipv6, hostile.length);
    assert.is(h.sessions, 2);
  });
});

test('a payload length that lies: a longer claim holds the frame until the bytes come; garbage after it ends only that session', async () => {
  await withServer(V6, async (h) => {
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    const b = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    await b.ready();
    const raw = await h.raw();
    const r = await rawRequest(raw, [[T_IPV6, ipv6Request()]]);
    const me = v6(readIpv6Config(r)!.address);
    const d = v6(ipv6Of(b)!.address);
    // Claims 100 bytes of payload, carries 8, then bytes that are no IP header (version 0).
    const liar = packet6(me, d, 8, { claim: 100 });
    raw.write(liar);
    raw.write(new Uint8Array(92)); // completes the claimed frame: it is delivered as framed
    raw.write(new Uint8Array([0x00, 1, 2, 3]));
    await raw.waitClosed();
    assert.is(h.metrics.disconnects.malformed_frame, 1);
    await waitFor(() => b.packets.length === 1, 3000, 'the frame as framed');
    assert.is(b.packets[0].length, 140);
    // The others carry on.
    const p = packet6(v6(ipv6Of(a)!.address), d, 10);
    a.client.send(p);
    await waitFor(() => b.packets.length === 2, 3000, 'a packet after');
  });
});

// ---- the server's tun (fake) ---------------------------------------------------------------

class FakeTun implements ServerTun {
  readonly name = 'faketun6';
  readonly writes: Uint8Array[] = [];
  write(b: Uint8Array, o: number, n: number): boolean {
    this.writes.push(b.slice(o, o + n));
    return true;
  }
  close(): void {}
}

test("IPv6 for no client goes to the server's tun, which gets the server's IPv6 address; IPv6 from the tun goes to its client", async () => {
  const tun = new FakeTun();
  let emit: ((p: Uint8Array[], n: number) => void) | null = null;
  const configs: unknown[] = [];
  const open: OpenTun = async (_name, config, onPackets) => {
    configs.push(config);
    emit = onPackets;
    return tun;
  };
  await withServer({ ...V6, tun: 'svpn%d', openTun: open }, async (h) => {
    assert.equal(configs, [{ address: '10.6.0.1', prefix: 24, mtu: 65000, ipv6: { address: 'fd00:5:6::a06:1', prefix: 64 } }]);
    const a = h.sdk({ tlvs: [[T_IPV6, ipv6Request()]] });
    await a.ready();
    const me = v6(ipv6Of(a)!.address);
    const out = packet6(me, v6('2001:db8::99'), 30);
    a.client.send(out);
    await waitFor(() => tun.writes.length === 1, 3000, 'the packet in the tun');
    assert.ok(equalBytes(tun.writes[0], out));
    const back = packet6(v6('2001:db8::99'), me, 30);
    const nobody = packet6(v6('2001:db8::99'), v6('fd00:5:6::a06:77'), 30);
    emit!([back, nobody, new Uint8Array([0x60, 0, 0])], 3);
    await waitFor(() => a.packets.length === 1, 3000, 'the packet from the tun');
    assert.ok(equalBytes(a.packets[0], back));
    assert.is(h.metrics.drops.no_route, 1, 'not sent back into the tun');
    assert.is(h.metrics.drops.not_ipv4, 1, 'the runt');
  });
});

test('--subnet6 and --route6 are checked with messages that say what to give', () => {
  const bad: Array<[object, RegExp]> = [
    [{ subnet6: 'fd00::/48' }, /must be a \/64/],
    [{ subnet6: 'fd00::1/64' }, /host bits set: did you mean fd00::\/64/],
    [{ subnet6: '10.0.0.0/64' }, /IPv6 network in CIDR form/],
    [{ subnet6: 'fd00::/64', etcd: 'http://127.0.0.1:2379' }, /does not go with --etcd/],
    [{ routes6: ['2001:db8::/32'] }, /--route6 needs --subnet6/],
    [{ subnet6: 'fd00::/64', routes6: ['2001:db8::/129'] }, /--route6 must be an IPv6 network/],
  ];
  for (const [o, re] of bad) assert.throws(() => resolveConfig(o), re, JSON.stringify(o));
  const c = resolveConfig({ subnet: '10.9.0.0/16', address: '10.9.0.5', subnet6: 'fd00:9::/64', routes6: ['::/0'] });
  assert.is(formatIPv6(c.subnet6!.gateway), 'fd00:9::a09:5', "the server's own: PREFIX + its IPv4 address");
  assert.is(resolveConfig({}).subnet6, null);
});

test.run();
