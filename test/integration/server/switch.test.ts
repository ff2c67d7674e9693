// Switching: client-to-client delivery byte for byte under load in both directions, drops
// for destinations nobody owns, and the path through the server's own tun (a fake openTun).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OpenTun, ServerTun } from '../../../server/src/server.js';
import { resolveConfig } from '../../../server/src/config/config.js';
import { type SdkPeer, equalBytes, hex, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { memoryLogger } from '../../support/security-kit.js';

/** Packets of mixed sizes 20..1500 with valid headers (IHL 5..15) and random payloads. */
function mixedPackets(src: number, dst: number, n: number, seed: number): Uint8Array[] {
  const r = rng(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    // Every size class often: the extremes, small, and up to the MTU.
    const k = r();
    const size = i === 0 ? 20 : i === 1 ? 1500 : k < 0.1 ? 20 : k < 0.2 ? 1500 : 20 + Math.floor(r() * 1481);
    const ihl = size >= 60 && r() < 0.2 ? 5 + Math.floor(r() * 11) : 5;
    let proto = Math.floor(r() * 256);
    if (proto === 253) proto = 17; // the extension's protocol: the SDK keeps those for itself
    out.push(ipPacket(src, dst, size, r, ihl, proto));
  }
  return out;
}

interface Stream {
  from: SdkPeer;
  to: SdkPeer;
  packets: Uint8Array[];
  next: number;
  sentBytes: number;
}

const received = (s: Stream) => s.to.packets.reduce((n, p) => n + p.length, 0);

/**
 * Sends every stream's packets, interleaved, keeping at most `window` bytes in flight per
 * stream so that a receiver that keeps up is never pushed past the server's send queue.
 */
async function pump(streams: Stream[], window: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    let pending = false;
    for (const s of streams) {
      if (s.next < s.packets.length) pending = true;
      while (s.next < s.packets.length && s.sentBytes - received(s) < window) {
        const p = s.packets[s.next];
        if (!s.from.client.send(p)) break; // transport full: try again next turn
        s.sentBytes += p.length;
        s.next++;
      }
    }
    if (!pending) return;
    if (Date.now() > end) throw new Error('pump: timed out with ' + streams.map((s) => `${s.next}/${s.packets.length}`).join(', ') + ' sent');
    await new Promise((r) => setImmediate(r));
  }
}

function assertSameStream(got: Uint8Array[], want: Uint8Array[], what: string): void {
  assert.is(got.length, want.length, what + ': packet count');
  for (let i = 0; i < want.length; i++) {
    if (!equalBytes(got[i], want[i])) {
      assert.unreachable(`${what}: packet ${i} differs (len ${got[i].length} vs ${want[i].length}); got ${hex(got[i].subarray(0, 24))}..., want ${hex(want[i].subarray(0, 24))}...`);
    }
  }
}

// ---- client to client -------------------------------------------------------------------

test('client to client: thousands of mixed-size packets, both directions at once, byte-exact and in order, none lost', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const a = h.sdk({ name: 'a' });
    const b = h.sdk({ name: 'b' });
    await a.ready();
    await b.ready();
    const N = 4000;
    const ab: Stream = { from: a, to: b, packets: mixedPackets(a.address, b.address, N, 1), next: 0, sentBytes: 0 };
    const ba: Stream = { from: b, to: a, packets: mixedPackets(b.address, a.address, N, 2), next: 0, sentBytes: 0 };
    await pump([ab, ba], 128 * 1024, 30_000);
    await waitFor(() => a.packets.length >= N && b.packets.length >= N, 10_000, 'all packets delivered', () => ({ a: a.packets.length, b: b.packets.length }));
    await sleep(50); // nothing extra may follow
    assertSameStream(b.packets, ab.packets, 'a -> b');
    assertSameStream(a.packets, ba.packets, 'b -> a');
    const m = h.metrics;
    const bytes = [...ab.packets, ...ba.packets].reduce((n, p) => n + p.length, 0);
    assert.is(m.rxPackets, 2 * N);
    assert.is(m.txPackets, 2 * N);
    assert.is(m.rxBytes, bytes);
    assert.is(m.txBytes, bytes);
    assert.equal(m.drops, { spoofed_source: 0, unassigned: 0, no_route: 0, queue_full: 0, tun_full: 0, tun_rejected: 0, too_big: 0, fragment_overflow: 0, not_ipv4: 0, bad_ipv6: 0 });
  });
});

test('a receiver that keeps up loses nothing to a burst, even with the smallest send queue the config accepts', async () => {
  // A burst leaves the sender in one writev; the server reads it in chunks of up to 64 KiB and
  // hands a chunk's frames for one peer over as one write. None of that is the receiver being slow.
  const sendQueue = [4096, 16384, 65536, 131072, 262144].find((q) => {
    try {
      resolveConfig({ sendQueue: q });
      return true;
    } catch {
      return false;
    }
  })!;
  await withServer({ subnet: '10.3.0.0/24', sendQueue }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    for (let round = 0; round < 5; round++) {
      const burst = Array.from({ length: 150 }, (_, i) => ipPacket(a.address, b.address, 1400, rng(1000 * round + i + 1)));
      const before = b.packets.length;
      for (const p of burst) assert.ok(a.client.send(p), 'the SDK transport took the packet');
      await waitFor(() => b.packets.length - before >= burst.length || h.metrics.drops.queue_full > 0, 5000, 'the burst', () => b.packets.length - before);
      assert.is(h.metrics.drops.queue_full, 0, `send queue ${sendQueue}: packets of a fast reader dropped as queue_full`);
      assertSameStream(b.packets.slice(before), burst, 'burst ' + round);
    }
  });
});

test('client to client through a seed-format peer: every packet arrives whole and in order at the raw socket', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const a = h.sdk();
    await a.ready();
    const s = await h.raw();
    const sAddr = await s.requestSeed();
    const pkts = mixedPackets(a.address, sAddr, 500, 3);
    const stream: Stream = { from: a, to: { packets: [] } as any, packets: pkts, next: 0, sentBytes: 0 };
    // The raw client's frames stand in for the receiver's tun.
    (stream.to as any).packets = s.frames;
    await pump([stream], 64 * 1024, 20_000);
    await waitFor(() => s.frames.length >= pkts.length, 10_000, 'all packets at the seed client', () => s.frames.length);
    assertSameStream(s.frames, pkts, 'sdk -> seed');
    assert.is(s.received, 20 + pkts.reduce((n, p) => n + p.length, 0), 'the reply, the packets and no extra bytes');
  });
});

test('several clients: each packet reaches exactly the owner of its destination', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const peers = [h.sdk(), h.sdk(), h.sdk(), h.sdk()];
    for (const p of peers) await p.ready();
    const r = rng(9);
    const expected = peers.map(() => [] as Uint8Array[]);
    for (let i = 0; i < 400; i++) {
      const from = Math.floor(r() * 4);
      let to = Math.floor(r() * 3);
      if (to >= from) to++;
      const p = ipPacket(peers[from].address, peers[to].address, 20 + Math.floor(r() * 200), r);
      assert.ok(peers[from].client.send(p));
      expected[to].push(p);
      if (i % 50 === 49) await sleep(1);
    }
    await waitFor(() => peers.every((p, i) => p.packets.length >= expected[i].length), 5000, 'delivery', () => peers.map((p) => p.packets.length));
    await sleep(30);
    // Per sender order is kept; across senders any interleaving is fine: compare as multisets per receiver,
    // and per (sender, receiver) pair in order.
    for (let i = 0; i < 4; i++) {
      assert.is(peers[i].packets.length, expected[i].length, 'receiver ' + i);
      for (let from = 0; from < 4; from++) {
        const src = peers[from].address;
        const got = peers[i].packets.filter((p) => Buffer.from(p).readUInt32BE(12) === src);
        const want = expected[i].filter((p) => Buffer.from(p).readUInt32BE(12) === src);
        assertSameStream(got, want, `${from} -> ${i}`);
      }
    }
  });
});

test('frames of one incoming chunk for the same extension peer are handed over as one write; a seed peer gets one write per packet', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const ext = h.sdk();
    await ext.ready();
    const seed = await h.raw();
    const seedAddr = await seed.requestSeed();
    const sender = await h.raw();
    const me = await sender.requestSeed();
    const calls = new Map<number, number[]>();
    for (const addr of [ext.address, seedAddr]) {
      const session = h.sessionAt(addr)!;
      const deliver = session.deliver.bind(session);
      calls.set(addr, []);
      session.deliver = (data: Uint8Array, n: number) => {
        calls.get(addr)!.push(n);
        return deliver(data, n);
      };
    }
    const toExt = Array.from({ length: 20 }, (_, i) => ipPacket(me, ext.address, 40 + i, rng(i + 1)));
    const toSeed = Array.from({ length: 20 }, (_, i) => ipPacket(me, seedAddr, 40 + i, rng(i + 50)));
    sender.write(Buffer.concat(toExt)); // one small write: one chunk at the server
    sender.write(Buffer.concat(toSeed));
    await waitFor(() => ext.packets.length === 20 && seed.frames.length === 20, 3000, 'delivery', () => [ext.packets.length, seed.frames.length]);
    assertSameStream(ext.packets, toExt, 'to the extension peer');
    assertSameStream(seed.frames, toSeed, 'to the seed peer');
    const extCalls = calls.get(ext.address)!;
    assert.is(extCalls.reduce((a, b) => a + b, 0), 20);
    assert.ok(extCalls.length <= 2 && Math.max(...extCalls) > 1, 'merged into (nearly) one write: ' + JSON.stringify(extCalls));
    assert.equal(calls.get(seedAddr), new Array(20).fill(1), 'one packet per write to a seed client');
  });
});

// ---- nobody owns the destination ------------------------------------------------------------

test('without a tun, packets for an address no client holds (the gateway included) are dropped as no_route', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const unknown = ['10.3.0.200', '10.3.0.1', '8.8.8.8', '10.3.0.255'];
    for (const d of unknown) assert.ok(a.client.send(ipPacket(a.address, ip(d), 60)));
    const marker = ipPacket(a.address, b.address, 33);
    a.client.send(marker);
    await waitFor(() => b.packets.length >= 1, 3000, 'the marker');
    assert.is(b.packets.length, 1, 'only the marker reached b');
    assert.ok(equalBytes(b.packets[0], marker));
    assert.is(h.metrics.drops.no_route, unknown.length);
    assert.is(a.packets.length, 0, 'nothing bounced back to the sender');
  });
});

test('IPv6 frames from a client that holds no IPv6 address are dropped as not_ipv4 and the session carries on', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const v6 = new Uint8Array(40 + 16);
    v6[0] = 0x60;
    v6[5] = 16;
    v6[6] = 17;
    v6[7] = 64;
    assert.ok(a.client.send(v6), 'the SDK frames IPv6 too');
    const p = ipPacket(a.address, b.address, 60);
    a.client.send(p);
    await waitFor(() => b.packets.length === 1, 3000, 'the IPv4 packet after it');
    assert.ok(equalBytes(b.packets[0], p));
    assert.is(h.metrics.drops.not_ipv4, 1);
    assert.is(h.sessions, 2);
  });
});

test('a client that disconnected is no longer a destination: its packets are dropped as no_route', async () => {
  await withServer({ subnet: '10.3.0.0/24' }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const bAddr = b.address;
    b.close();
    await waitFor(() => h.sessionAt(bAddr) === undefined, 3000, 'b to leave the table');
    a.client.send(ipPacket(a.address, bAddr, 40));
    await waitFor(() => h.metrics.drops.no_route === 1, 3000, 'the no_route drop');
  });
});

// ---- the server's tun (fake) ---------------------------------------------------------------

class FakeTun implements ServerTun {
  readonly name = 'faketun0';
  readonly writes: Uint8Array[] = [];
  full = false;
  closed = 0;
  /** Thrown by the next writes, as the native device throws EBADF once its interface is gone. */
  broken: Error | null = null;
  write(b: Uint8Array, o: number, n: number): boolean {
    if (this.broken) throw this.broken;
    if (this.full) return false;
    this.writes.push(b.slice(o, o + n));
    return true;
  }
  close(): void {
    this.closed++;
  }
}

function fakeOpen() {
  const tun = new FakeTun();
  const calls: Array<{ name: string; config: { address: string; prefix: number; mtu: number } }> = [];
  let emit: ((packets: Uint8Array[], count: number) => void) | null = null;
  let fail: ((err: Error) => void) | null = null;
  const open: OpenTun = async (name, config, onPackets, onError) => {
    calls.push({ name, config });
    emit = onPackets;
    fail = onError;
    return tun;
  };
  return { tun, calls, open, emit: (packets: Uint8Array[], count = packets.length) => emit!(packets, count), fail: (err: Error) => fail!(err) };
}

const ebadf = () => Object.assign(new Error('faketun0: writing a packet failed: Bad file descriptor'), { code: 'EBADF' });

test('a tun that fails on write: tun_failed logged once, the device closed, clients still switched, the rest no_route', async () => {
  const f = fakeOpen();
  const logger = memoryLogger();
  await withServer({ subnet: '10.4.0.0/24', tun: 'svpn%d', openTun: f.open, logger }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    f.tun.broken = ebadf();
    a.client.send(ipPacket(a.address, ip('8.8.8.8'), 84));
    await waitFor(() => logger.find('tun_failed').length === 1, 3000, 'tun_failed');
    const line = logger.find('tun_failed')[0].fields;
    assert.is(line.code, 'EBADF');
    assert.match(String(line.consequence), /no_route/);
    assert.is(f.tun.closed, 1);
    a.client.send(ipPacket(a.address, ip('8.8.4.4'), 84));
    const toB = ipPacket(a.address, b.address, 60);
    a.client.send(toB);
    await waitFor(() => b.packets.length === 1, 3000, 'a -> b after the tun failed');
    await waitFor(() => h.metrics.drops.no_route >= 2, 3000, 'no_route counted');
    assert.is(logger.find('tun_failed').length, 1);
    assert.match(h.server.metricsText(), /simplevpn_tun_up 0/);
  });
});

test('a tun that fails on read: tun_failed, and the server goes on', async () => {
  const f = fakeOpen();
  const logger = memoryLogger();
  await withServer({ subnet: '10.4.0.0/24', tun: 'svpn%d', openTun: f.open, logger }, async (h) => {
    const a = h.sdk();
    await a.ready();
    f.fail(ebadf());
    assert.is(logger.find('tun_failed').length, 1);
    assert.is(f.tun.closed, 1);
    const b = h.sdk();
    await b.ready();
    const toB = ipPacket(a.address, b.address, 60);
    a.client.send(toB);
    await waitFor(() => b.packets.length === 1, 3000, 'a -> b');
  });
});

test('with a tun: it is opened with the gateway, prefix and MTU; packets for non-client destinations go to it byte for byte', async () => {
  const f = fakeOpen();
  await withServer({ subnet: '10.4.0.0/24', mtu: 1400, tun: 'svpn%d', openTun: f.open }, async (h) => {
    assert.equal(f.calls, [{ name: 'svpn%d', config: { address: '10.4.0.1', prefix: 24, mtu: 1400 } }]);
    assert.is(h.tunDevice, f.tun);
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const out = [ipPacket(a.address, ip('8.8.8.8'), 84), ipPacket(a.address, ip('10.4.0.1'), 20), ipPacket(a.address, ip('10.4.0.99'), 1400, rng(5))];
    for (const p of out) a.client.send(p);
    const toB = ipPacket(a.address, b.address, 50);
    a.client.send(toB);
    await waitFor(() => f.tun.writes.length >= out.length && b.packets.length >= 1, 3000, 'tun writes and b', () => f.tun.writes.length);
    assertSameStream(f.tun.writes, out, 'to the tun');
    assertSameStream(b.packets, [toB], 'to b (not the tun)');
    assert.is(h.metrics.tunTxPackets, 3);
    assert.is(h.metrics.drops.no_route, 0);
  });
  assert.is(f.tun.closed, 1, 'the tun is closed once when the server closes');
});

test('with a tun: packets it reads reach the client owning their destination; unknown, non-IPv4 and beyond-count ones do not', async () => {
  const f = fakeOpen();
  await withServer({ subnet: '10.4.0.0/24', tun: 'svpn%d', openTun: f.open }, async (h) => {
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const s = await h.raw();
    const sAddr = await s.requestSeed();
    const toA1 = ipPacket(ip('1.1.1.1'), a.address, 100, rng(1));
    const toB = ipPacket(ip('10.4.0.1'), b.address, 1400, rng(2));
    const toA2 = ipPacket(ip('9.9.9.9'), a.address, 20);
    const toSeed = ipPacket(ip('1.2.3.4'), sAddr, 64, rng(3));
    const nowhere = ipPacket(ip('1.1.1.1'), ip('10.4.0.200'), 60);
    const v6 = new Uint8Array(48);
    v6[0] = 0x60;
    v6[5] = 8;
    const runt = new Uint8Array([0x45, 0, 0, 10, 1, 2, 3, 4, 5, 6]);
    const beyond = ipPacket(ip('1.1.1.1'), a.address, 40); // past `count`: a stale slot of a reused batch
    f.emit([toA1, toB, toA2, toSeed, nowhere, v6, runt, beyond], 7);
    await waitFor(() => a.packets.length >= 2 && b.packets.length >= 1 && s.frames.length >= 1, 3000, 'delivery from the tun');
    await sleep(30);
    assertSameStream(a.packets, [toA1, toA2], 'tun -> a');
    assertSameStream(b.packets, [toB], 'tun -> b');
    assertSameStream(s.frames, [toSeed], 'tun -> seed client');
    const m = h.metrics;
    assert.is(m.tunRxPackets, 7);
    assert.is(m.drops.no_route, 2, '10.4.0.200, and the IPv6 packet: no client holds its destination');
    assert.is(m.drops.not_ipv4, 1, 'the runt');
  });
});

test('with a tun: a tun that refuses a write counts tun_full', async () => {
  const f = fakeOpen();
  await withServer({ subnet: '10.4.0.0/24', tun: 'svpn%d', openTun: f.open }, async (h) => {
    const a = h.sdk();
    await a.ready();
    f.tun.full = true;
    a.client.send(ipPacket(a.address, ip('8.8.4.4'), 60));
    a.client.send(ipPacket(a.address, ip('8.8.4.4'), 60));
    await waitFor(() => h.metrics.drops.tun_full === 2, 3000, 'two tun_full drops');
    assert.is(h.metrics.tunTxPackets, 0);
  });
});

test('a tun that cannot be opened: one tun_unavailable warning that says what is lost, and clients still reach each other', async () => {
  const warnings: any[] = [];
  const open: OpenTun = async () => {
    const e: any = new Error('no /dev/net/tun');
    e.code = 'ENOENT';
    throw e;
  };
  const lines: string[] = [];
  const logger = { log: (level: string, event: string, fields: any) => lines.push(`${level} ${event} ${JSON.stringify(fields)}`) };
  await withServer({ subnet: '10.4.0.0/24', tun: 'svpn%d', openTun: open, logger }, async (h) => {
    assert.is(h.tunDevice, null);
    const a = h.sdk();
    const b = h.sdk();
    await a.ready();
    await b.ready();
    const p = ipPacket(a.address, b.address, 77);
    a.client.send(p);
    a.client.send(ipPacket(a.address, ip('8.8.8.8'), 60));
    await waitFor(() => b.packets.length === 1 && h.metrics.drops.no_route === 1, 3000, 'switching without a tun');
    assert.ok(equalBytes(b.packets[0], p));
    warnings.push(...lines.filter((l) => l.includes('tun_unavailable')));
  });
  assert.is(warnings.length, 1, 'said once: ' + lines.join('\n'));
  assert.match(warnings[0], /^warn tun_unavailable/);
  assert.match(warnings[0], /no \/dev\/net\/tun/, 'the cause');
  assert.match(warnings[0], /no_route/, 'the consequence');
});

test('--no-tun (tun: false) logs tun_disabled once and never calls openTun', async () => {
  let opened = 0;
  const open: OpenTun = async () => {
    opened++;
    throw new Error('must not be called');
  };
  const events: string[] = [];
  const logger = { log: (_l: string, event: string) => events.push(event) };
  await withServer({ tun: false, openTun: open, logger }, async () => {});
  assert.is(opened, 0);
  assert.is(events.filter((e) => e === 'tun_disabled').length, 1);
  assert.is(events.filter((e) => e === 'tun_unavailable').length, 0);
});

test.run();
