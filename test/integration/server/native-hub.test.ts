// The server's native switching path (linux/native/hub.c, server/src/data/native-sessions.ts)
// through the binding, with real sockets on loopback: packets between two native sessions
// switched in C (their sessions' onData never called), frames split at any byte across reads
// and begun before the move to C, what is not for C (keepalives, spoofed sources, unknown
// destinations) handled by JavaScript, the send-queue cap and its drops, the end of stream,
// counters, and no descriptor left behind. Needs the built addon (no root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { openServerHub } from '../../../linux/server-hub.js';
import { TunError, load } from '../../../linux/tun.js';
import { OFFLOAD_SUPER, SUPER_HEADER, T_IPV6, T_OFFLOAD, type Tlv, ipv6Request, u8 } from '../../../protocol/index.js';
import { extHeader, packet6 } from '../../support/ipv6-packets.js';
import { granted, jsReads, nativeAt } from '../../support/native-hub.js';
import { writeSuperHeader } from '../../../common/offload/super.js';
import { TCP_ACK, TCP_PSH } from '../../../common/offload/vnet.js';
import { type FlowModel, refPacket } from '../../support/offload-reference.js';
import { SEED_KEEPALIVE, equalBytes, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';

const fds = () => readdirSync('/proc/self/fd').length;
const loaded = !(load() instanceof TunError);

/** A KIND_SUPER frame of a TCP super-packet (gso_size 1448), its checksum partial as the kernel hands it over. */
function superFrame(flow: FlowModel, id: number, seq: number, flags: number, payload: Uint8Array): Uint8Array {
  const p = refPacket({ flow, id, seq, flags, payload }, 'partial');
  const f = new Uint8Array(SUPER_HEADER + p.length);
  f.set(p, SUPER_HEADER);
  writeSuperHeader(f, 0, p.length, 1448);
  return f;
}

if (!loaded) {
  test.skip('the native hub (binding not built)', () => {});
} else {
  test('frames between native sessions are switched in C, split anywhere, byte for byte and in order', async () => {
    await withServer({ subnet: '10.9.0.0/24', openHub: openServerHub }, async (h) => {
      // a's request comes with the first 7 bytes of a packet: JavaScript holds them, C finishes it.
      const { c: b, address: bAddr } = await granted(h);
      const r = rng(7);
      const aWant = ip('10.9.0.20');
      const first = ipPacket(aWant, bAddr, 300, r);
      const { c: a, address: aAddr } = await granted(h, first.subarray(0, 7), aWant);
      assert.is(aAddr, aWant);
      await nativeAt(h, aAddr);
      await nativeAt(h, bAddr);
      const aReads = jsReads(h, aAddr);
      const bReads = jsReads(h, bAddr);
      const packets = [first];
      for (let i = 0; i < 300; i++) packets.push(ipPacket(aAddr, bAddr, 20 + Math.floor(r() * 1481), r));
      const stream = Buffer.concat(packets).subarray(7);
      for (let at = 0; at < stream.length; ) {
        const n = 1 + Math.floor(r() * 3000);
        await a.writeAll(stream.subarray(at, at + n));
        at += n;
        if (r() < 0.3) await sleep(1);
      }
      const back = ipPacket(bAddr, aAddr, 1400, r);
      b.write(back);
      await waitFor(() => b.frames.length >= packets.length && a.frames.length >= 1, 5000, 'all delivered', () => ({ b: b.frames.length }));
      assert.is(b.frames.length, packets.length);
      for (let i = 0; i < packets.length; i++) assert.ok(equalBytes(b.frames[i], packets[i]), `packet ${i} byte for byte`);
      assert.ok(equalBytes(a.frames[0], back));
      assert.is(aReads.n, 0, 'no chunk of a reached JavaScript');
      assert.is(bReads.n, 0, 'no chunk of b reached JavaScript');
      h.server.metricsText(); // takes the hub's counters
      const m = h.metrics;
      assert.is(m.rxPackets, packets.length + 1, 'counted in the server');
      assert.is(m.txPackets, packets.length + 1);
      const sa = h.sessionAt(aAddr)!;
      assert.is(sa.rxPackets, packets.length);
      assert.is(sa.rxBytes, packets.reduce((n, p) => n + p.length, 0));
      assert.is(h.sessionAt(bAddr)!.txPackets, packets.length);
    });
  });

  test('one read for more sessions than the hub lends batches to (40): each gets its frames in order, byte for byte', async () => {
    await withServer({ subnet: '10.9.8.0/24', openHub: openServerHub }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const dests: Awaited<ReturnType<typeof granted>>[] = [];
      for (let i = 0; i < 40; i++) dests.push(await granted(h));
      await nativeAt(h, aAddr);
      for (const d of dests) await nativeAt(h, d.address);
      const r = rng(11);
      // Three rounds over the 40 in one write: the hub lends 32 batches per read, so some
      // destinations' batches leave early and are lent again, between frames of one session.
      const sent: Uint8Array[][] = dests.map(() => []);
      const all: Uint8Array[] = [];
      for (let round = 0; round < 3; round++)
        for (let i = 0; i < dests.length; i++) {
          const p = ipPacket(aAddr, dests[i].address, 60 + Math.floor(r() * 200), r);
          sent[i].push(p);
          all.push(p);
        }
      await a.writeAll(Buffer.concat(all));
      await waitFor(() => dests.every((d) => d.c.frames.length >= 3), 5000, 'all delivered', () => dests.map((d) => d.c.frames.length));
      for (let i = 0; i < dests.length; i++) {
        assert.is(dests[i].c.frames.length, 3, `destination ${i}`);
        for (let k = 0; k < 3; k++) assert.ok(equalBytes(dests[i].c.frames[k], sent[i][k]), `destination ${i}, frame ${k}, in order`);
      }
      h.server.metricsText();
      assert.is(h.sessionAt(aAddr)!.rxPackets, all.length);
      assert.is(h.metrics.drops.queue_full, 0);
    });
  });

  test('KIND_SUPER frames between sessions that declared T_OFFLOAD are switched in C whole; to one that did not, JavaScript splits them', async () => {
    await withServer({ subnet: '10.9.6.0/24', openHub: openServerHub }, async (h) => {
      const declare: Tlv[] = [[T_OFFLOAD, u8(OFFLOAD_SUPER)]];
      const { c: a, address: aAddr } = await granted(h, undefined, 0, declare);
      const { c: b, address: bAddr } = await granted(h, undefined, 0, declare);
      const { c: plain, address: pAddr } = await granted(h);
      for (const x of [aAddr, bAddr, pAddr]) await nativeAt(h, x);
      const aReads = jsReads(h, aAddr);
      const bReads = jsReads(h, bAddr);
      const flow = (dst: number): FlowModel => ({ src: aAddr, dst, sport: 40000, dport: 5201, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 99, window: 500 });
      const payload = new Uint8Array(20000).map((_, i) => i * 13);
      const frameFor = (dst: number, seq: number) => superFrame(flow(dst), 7, seq, TCP_ACK | TCP_PSH, payload);
      // Two super-packets and a plain packet in one write, split at an odd byte: whole and in order.
      const s1 = frameFor(bAddr, 1000);
      const s2 = frameFor(bAddr, 1000 + payload.length);
      const mid = ipPacket(aAddr, bAddr, 700, rng(4));
      const stream = Buffer.concat([s1, mid, s2]);
      await a.writeAll(stream.subarray(0, 12345));
      await sleep(5);
      await a.writeAll(stream.subarray(12345));
      await waitFor(() => b.frames.length >= 3, 3000, 'the super-packets', () => ({ got: b.frames.length }));
      assert.ok(equalBytes(b.frames[0], s1), 'whole, as sent, above the 1500-byte MTU');
      assert.ok(equalBytes(b.frames[1], mid));
      assert.ok(equalBytes(b.frames[2], s2));
      assert.is(aReads.n, 0, 'switched in C: no chunk of a reached JavaScript');
      // Back from b the same way.
      const back = superFrame({ ...flow(aAddr), src: bAddr }, 9, 5, TCP_ACK, payload.subarray(0, 5000));
      b.write(back);
      await waitFor(() => a.frames.length >= 1, 3000, 'b -> a');
      assert.ok(equalBytes(a.frames[0], back));
      assert.is(bReads.n, 0);

      // To the session that did not declare them: JavaScript splits it into the segments.
      const n = Math.ceil(payload.length / 1448);
      await a.writeAll(frameFor(pAddr, 1000));
      await waitFor(() => plain.frames.length >= n, 3000, 'the segments', () => ({ got: plain.frames.length }));
      for (let i = 0; i < n; i++) {
        const want = refPacket({ flow: flow(pAddr), id: 7 + i, seq: 1000 + i * 1448, flags: i === n - 1 ? TCP_ACK | TCP_PSH : TCP_ACK, payload: payload.subarray(i * 1448, (i + 1) * 1448) });
        assert.ok(equalBytes(plain.frames[i], want), `segment ${i}`);
      }
      assert.is(aReads.n, 1, 'that frame reached JavaScript');
      h.server.metricsText();
      assert.is(h.sessionAt(aAddr)!.rxPackets, 4);
      assert.is(h.sessionAt(bAddr)!.txPackets, 3);
      assert.is(h.sessionAt(pAddr)!.txPackets, n);
      assert.is(h.metrics.rxPackets, 5);
      assert.is(h.metrics.txPackets, 4 + n);
    });
  });

  test('IPv6 between native sessions is switched in C; extension headers, spoofed sources and too big go to JavaScript', async () => {
    await withServer({ subnet: '10.9.7.0/24', subnet6: 'fd00:97::/64', openHub: openServerHub }, async (h) => {
      const ask6: Tlv[] = [[T_IPV6, ipv6Request()]];
      const { c: a, address: aAddr, address6: a6 } = await granted(h, undefined, 0, ask6);
      const { c: b, address: bAddr, address6: b6 } = await granted(h, undefined, 0, ask6);
      assert.ok(a6 && b6, 'both granted IPv6');
      await nativeAt(h, aAddr);
      await nativeAt(h, bAddr);
      const aReads = jsReads(h, aAddr);
      const r = rng(6);
      const packets: Uint8Array[] = [];
      for (let i = 0; i < 200; i++) packets.push(packet6(a6!, b6!, Uint8Array.from({ length: Math.floor(r() * 1400) }, () => r() * 256), { next: i % 2 ? 6 : 17 }));
      const stream = Buffer.concat(packets);
      for (let at = 0; at < stream.length; ) {
        const n = 1 + Math.floor(r() * 5000);
        await a.writeAll(stream.subarray(at, at + n));
        at += n;
      }
      await waitFor(() => b.frames.length >= packets.length, 3000, 'all delivered', () => ({ got: b.frames.length }));
      for (let i = 0; i < packets.length; i++) assert.ok(equalBytes(b.frames[i], packets[i]), `packet ${i} byte for byte`);
      assert.is(aReads.n, 0, 'switched in C: no chunk of a reached JavaScript');
      b.write(packet6(b6!, a6!, 100));
      await waitFor(() => a.frames.length >= 1, 3000, 'b -> a');

      // What C leaves to JavaScript: a destination-options header (delivered by JS), a type 0
      // routing header (bad_ipv6), a spoofed source, a packet above b's MTU (Packet Too Big).
      const withExt = packet6(a6!, b6!, 64, { ext: extHeader(17), first: 60 });
      const rh0 = packet6(a6!, b6!, 64, { ext: extHeader(17, 1, 0), first: 43 });
      const spoofed = packet6(b6!, b6!, 64);
      const big = packet6(a6!, b6!, 1500);
      const last = packet6(a6!, b6!, 300);
      await a.writeAll(Buffer.concat([withExt, rh0, spoofed, big, last]));
      await waitFor(() => b.frames.length >= packets.length + 2 && a.frames.length >= 2, 3000, 'the rest', () => ({ b: b.frames.length, a: a.frames.length }));
      assert.ok(equalBytes(b.frames[packets.length], withExt), 'an extension header chain JavaScript checked');
      assert.ok(equalBytes(b.frames[packets.length + 1], last), 'in order after it');
      assert.is(a.frames[1][40], 2, 'ICMPv6 Packet Too Big back to a');
      assert.ok(aReads.n > 0);
      const m = h.metrics;
      assert.is(m.drops.bad_ipv6, 1);
      assert.is(m.drops.spoofed_source, 1);
      assert.is(m.drops.too_big, 1);
      h.server.metricsText();
      assert.is(h.sessionAt(aAddr)!.rxPackets, packets.length + 3, 'C and JavaScript counted what they received (the too-big one too)');
      assert.is(h.sessionAt(bAddr)!.txPackets, packets.length + 2);
    });
  });

  test('nativePath: false keeps every session in JavaScript, and the listening line says so', async () => {
    let listening: { data_path?: string } = {};
    await withServer({ subnet: '10.9.5.0/24', openHub: openServerHub, nativePath: false, logger: { log: (_l: string, name: string, f: object) => name === 'listening' && (listening = f) } as never }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const { c: b, address: bAddr } = await granted(h);
      const p = ipPacket(aAddr, bAddr, 300, rng(2));
      a.write(p);
      await waitFor(() => b.frames.length > 0, 3000, 'a -> b');
      assert.ok(equalBytes(b.frames[0], p));
      assert.is(h.sessionAt(aAddr)!.native, false);
      assert.is(h.sessionAt(bAddr)!.native, false);
    });
    assert.is(listening.data_path, 'javascript');
  });

  test('keepalives, spoofed sources and unknown destinations reach JavaScript, in order', async () => {
    await withServer({ subnet: '10.9.1.0/24', openHub: openServerHub }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const { c: b, address: bAddr } = await granted(h);
      await nativeAt(h, aAddr);
      await nativeAt(h, bAddr);
      const r = rng(3);
      const p1 = ipPacket(aAddr, bAddr, 100, r);
      const spoof = ipPacket(aAddr + 50, bAddr, 100, r);
      const nowhere = ipPacket(aAddr, aAddr + 60, 100, r);
      const p2 = ipPacket(aAddr, bAddr, 200, r);
      a.write(Buffer.concat([p1, SEED_KEEPALIVE, spoof, nowhere, p2]));
      await waitFor(() => b.frames.length >= 2 && a.frames.length >= 1, 3000, 'delivered');
      assert.ok(equalBytes(a.frames[0], SEED_KEEPALIVE), 'the keepalive echoed (JavaScript, through the hub)');
      assert.ok(equalBytes(b.frames[0], p1) && equalBytes(b.frames[1], p2));
      await sleep(50);
      assert.is(b.frames.length, 2, 'nothing else for b');
      const m = h.metrics;
      assert.is(m.drops.spoofed_source, 1);
      assert.is(m.drops.no_route, 1);
      assert.is(m.keepalives, 1);
    });
  });

  test('a frame C holds unfinished is ended by the frame timeout, as on the JavaScript path', async () => {
    await withServer({ subnet: '10.9.3.0/24', frameTimeout: 1, idleTimeout: 20, openHub: openServerHub }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const { address: bAddr } = await granted(h);
      await nativeAt(h, aAddr);
      const ended = new Promise<{ reason?: string }>((res) => h.server.on('disconnect', (e) => e.address !== null && e.reason !== 'shutdown' && res(e)));
      a.write(ipPacket(aAddr, bAddr, 1000, rng(5)).subarray(0, 100));
      const e = await Promise.race([ended, sleep(4000).then(() => ({ reason: 'none within 4 s' }))]);
      assert.is(e.reason, 'frame_timeout');
    });
  });

  test('a reset connection ends its native session as socket_error, and the other goes on', async () => {
    await withServer({ subnet: '10.9.4.0/24', openHub: openServerHub }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const { c: b, address: bAddr } = await granted(h);
      await nativeAt(h, aAddr);
      await nativeAt(h, bAddr);
      const ended = new Promise<{ reason?: string; detail?: string }>((res) => h.server.on('disconnect', (e) => e.address !== null && e.reason !== 'shutdown' && res(e)));
      a.sock.resetAndDestroy();
      const e = await Promise.race([ended, sleep(3000).then(() => ({ reason: 'none within 3 s' }))]);
      assert.is(e.reason, 'socket_error');
      assert.is((e as { detail?: string }).detail, 'ECONNRESET');
      const { c: c, address: cAddr } = await granted(h);
      await nativeAt(h, cAddr);
      const p = ipPacket(bAddr, cAddr, 500, rng(9));
      b.write(p);
      await waitFor(() => c.frames.length > 0, 3000, 'b -> c');
      assert.ok(equalBytes(c.frames[0], p));
    });
  });

  test('past the send-queue cap packets are dropped whole and counted; end of stream ends the session; no descriptor left', async () => {
    // Measured after the first tests: Node opens some descriptors of its own on first use.
    const before = fds();
    await withServer({ subnet: '10.9.2.0/24', sendQueue: 128 * 1024, openHub: openServerHub }, async (h) => {
      const { c: a, address: aAddr } = await granted(h);
      const { c: b, address: bAddr } = await granted(h);
      await nativeAt(h, aAddr);
      await nativeAt(h, bAddr);
      b.sock.pause();
      const r = rng(11);
      const N = 8000;
      const packets: Uint8Array[] = [];
      for (let i = 0; i < N; i++) packets.push(ipPacket(aAddr, bAddr, 1400, r));
      for (let i = 0; i < N; i += 100) await a.writeAll(Buffer.concat(packets.slice(i, i + 100)));
      await sleep(200);
      h.server.metricsText();
      const drops = h.metrics.drops.queue_full;
      assert.ok(drops > 0, 'the queue filled');
      assert.is(h.sessionAt(bAddr)!.drops, drops, 'counted on the destination');
      b.sock.resume();
      await waitFor(() => b.frames.length >= N - drops, 10_000, 'what was not dropped', () => ({ got: b.frames.length, drops }));
      await sleep(100);
      assert.is(b.frames.length, N - drops, 'every packet either delivered whole or dropped');
      // In order: what arrived is the sent stream less the dropped packets.
      let k = 0;
      for (const f of b.frames) {
        while (k < N && !equalBytes(f, packets[k])) k++;
        assert.ok(k < N, 'in order, whole');
        k++;
      }
      const ended = new Promise<{ reason?: string; code?: string }>((res) => h.server.once('disconnect', res));
      a.sock.end();
      const e = await Promise.race([ended, sleep(3000).then(() => ({}))]);
      assert.is((e as { reason?: string }).reason ?? (e as { code?: string }).code, 'client_closed');
      assert.is(h.sessionAt(aAddr), undefined);
    });
    await waitFor(() => fds() === before, 3000, 'no descriptor left behind', () => ({ before, now: fds() }));
  });
}

test.run();
