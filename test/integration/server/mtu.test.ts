// Per-client MTU: what each client is granted, and what happens to a packet larger than
// its destination's MTU: ICMP "fragmentation needed" back to the sender when it may not be
// fragmented, fragments otherwise, from a client or from the server's tun.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { T_MTU, eachTlv, readU16, DST, SRC, readU32 } from '../../../protocol/index.js';
import type { OpenTun, ServerTun } from '../../../server/src/server.js';
import { checksum } from '../../../server/src/data/too-big.js';
import { equalBytes, extRequest, ip, ipPacket, rng, waitFor, withServer } from '../../support/server-net.js';

/** The MTU a raw extension request for it is granted (0: no T_MTU sent). */
function grantedIn(reply: Uint8Array): number {
  let mtu = -1;
  eachTlv(reply, (t, v) => {
    if (t === T_MTU) mtu = readU16(v);
  });
  return mtu;
}

function u16(v: number): Uint8Array {
  return Uint8Array.of(v >> 8, v & 255);
}

test('each client is granted the MTU it asks for within the server\'s; 1500 when it does not ask', async () => {
  await withServer({ subnet: '10.9.0.0/24', mtu: 9000 }, async (h) => {
    const cases: Array<[number, number]> = [
      [0, 1500], // no T_MTU: the seed's MTU
      [4000, 4000],
      [20000, 9000], // capped at the server's --mtu
      [100, 576], // never below the IPv4 minimum
    ];
    for (const [asked, want] of cases) {
      const c = await h.raw();
      c.write(extRequest(0, asked ? [[T_MTU, u16(asked)]] : []));
      await waitFor(() => c.frames.length > 0, 3000, 'the reply');
      assert.is(grantedIn(c.frames[0]), want, `asked ${asked}`);
      c.destroy();
    }
    const sdk = h.sdk({ mtu: 8000 });
    assert.is((await sdk.ready()).mtu, 8000);
  });
});

test('a packet with DF larger than its destination\'s MTU: dropped, counted, ICMP fragmentation needed back to the sender', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const big = h.sdk({ mtu: 9000 });
    const small = h.sdk(); // 1500
    await big.ready();
    await small.ready();
    const p = ipPacket(big.address, small.address, 4000, rng(1)); // DF set
    assert.ok(big.client.send(p));
    await waitFor(() => big.packets.length === 1, 3000, 'the ICMP answer');
    assert.is(small.packets.length, 0, 'nothing reached the small client');
    assert.is(h.metrics.drops.too_big, 1);
    const icmp = big.packets[0];
    assert.is(icmp[9], 1, 'ICMP');
    assert.is(readU32(icmp, SRC), ip('10.9.0.1'), "from the server's own address");
    assert.is(readU32(icmp, DST), big.address);
    assert.is(checksum(icmp, 0, 20), 0, 'IP header checksum');
    assert.is(icmp[20], 3, 'destination unreachable');
    assert.is(icmp[21], 4, 'fragmentation needed');
    assert.is((icmp[26] << 8) | icmp[27], 1500, 'next-hop MTU');
    assert.is(checksum(icmp, 20, icmp.length - 20), 0, 'ICMP checksum');
    assert.ok(equalBytes(icmp.subarray(28), p.subarray(0, 28)), 'quotes the header and 8 bytes');
  });
});

test('without DF it is fragmented: every fragment fits, checks out, and they reassemble to the packet', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const big = h.sdk({ mtu: 9000 });
    const small = h.sdk({ mtu: 1000 });
    await big.ready();
    await small.ready();
    const p = ipPacket(big.address, small.address, 5003, rng(2));
    p[6] = 0; // may be fragmented
    assert.ok(big.client.send(p));
    await waitFor(() => small.packets.length === 6, 3000, 'six fragments');
    const payload: number[] = [];
    small.packets.forEach((f, i) => {
      assert.ok(f.length <= 1000, `fragment ${i} fits`);
      assert.is(checksum(f, 0, 20), 0, `fragment ${i} header checksum`);
      const fo = (f[6] << 8) | f[7];
      assert.is((fo & 0x1fff) * 8, payload.length, `fragment ${i} offset`);
      assert.is((fo & 0x2000) !== 0, i < 5, `fragment ${i} more-fragments flag`);
      payload.push(...f.subarray(20));
    });
    assert.ok(equalBytes(Uint8Array.from(payload), p.subarray(20)));
    assert.is(h.metrics.fragmented, 6);
    assert.is(big.packets.length, 0, 'no ICMP for a packet that may be fragmented');
  });
});

test('from the server\'s tun: a DF packet too big for its client gets its ICMP written back to the tun', async () => {
  const writes: Uint8Array[] = [];
  let emit: ((packets: Uint8Array[], count: number) => void) | null = null;
  const tun: ServerTun = {
    name: 'faketun0',
    write: (b, o, n) => (writes.push(b.slice(o, o + n)), true),
    close() {},
  };
  const openTun: OpenTun = async (_name, _config, onPackets) => ((emit = onPackets), tun);
  await withServer({ subnet: '10.9.0.0/24', tun: 'fake0', openTun }, async (h) => {
    const small = h.sdk();
    await small.ready();
    const p = ipPacket(ip('192.0.2.7'), small.address, 3000, rng(3));
    emit!([p], 1);
    assert.is(writes.length, 1);
    assert.is(readU32(writes[0], DST), ip('192.0.2.7'));
    assert.is(writes[0][20], 3);
    assert.is(small.packets.length, 0);
  });
});

test.run();
