// What a connection costs the server before its first frame is whole, and that the cuts keep
// every behaviour: one listener per socket event (a second makes Node keep an array), the
// few bytes of an unfinished frame kept as text instead of a framer of its own, and the
// per-source count still given back when the connection closes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type net from 'node:net';
import { ANY, DST, KIND_REPLY, T_LEASE, T_MTU, type Tlv, eachTlv, extKind, extMessage, readConfig, readU32, u16 } from '../../../protocol/index.js';
import { internals } from '../../../server/src/internals.js';
import { extRequest, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';

/** The server's only connection, and its socket. */
function only(server: Parameters<typeof internals>[0]) {
  const list = [...internals(server).clients];
  assert.is(list.length, 1);
  return { c: list[0], sock: list[0].session.socket as net.Socket };
}

for (const ws of [true, false]) {
  test(`a plain TCP session (WebSocket ${ws ? 'on' : 'off'}) has one listener per event, and holds 4 bytes of a frame as text; the frame completes and is switched`, async () => {
    await withServer({ subnet: '10.9.0.0/24', ws }, async (h) => {
      const peer = h.sdk();
      await peer.ready();
      const raw = await h.raw();
      const me = await raw.requestSeed();
      const p = ipPacket(me, peer.address, 1000, rng(5));
      raw.write(p.subarray(0, 4));
      await sleep(100);
      const sessions = [...internals(h.server).clients].filter((c) => c.session.address === me);
      assert.is(sessions.length, 1);
      const sock = sessions[0].session.socket as net.Socket;
      for (const e of ['data', 'error', 'end', 'close']) assert.is(sock.listenerCount(e), 1, `'${e}' listeners`);
      const held = (sessions[0].session as unknown as { framer: unknown }).framer;
      assert.is(typeof held, 'string', 'the unfinished frame is carried as text');
      assert.is((held as string).length, 4);
      assert.is(sessions[0].session.partialSince > 0, true);
      raw.write(p.subarray(4));
      await waitFor(() => peer.packets.some((x) => x.length === p.length), 3000, 'the frame, once whole');
      assert.is(sessions[0].session.partialSince, 0);
    });
  });
}

test('the per-source count is given back when a session closes: one connection per source, again and again', async () => {
  await withServer({ subnet: '10.9.0.0/24', maxPerSource: 1, connRate: 0 }, async (h) => {
    for (let i = 0; i < 3; i++) {
      const raw = await h.raw();
      assert.ok((await raw.requestSeed()) !== 0, `connection ${i} got an address`);
      const { sock } = only(h.server);
      assert.is(sock.listenerCount('close'), 1);
      raw.destroy();
      await waitFor(() => h.sessions === 0, 3000, 'the session to end');
    }
    assert.is(h.metrics.refusals.per_source_limit ?? 0, 0);
  });
});

test('times read through the session are wall-clock milliseconds', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const t0 = Date.now();
    const raw = await h.raw();
    await raw.requestSeed();
    const { c } = only(h.server);
    assert.ok(c.since >= t0 - 5 && c.since <= Date.now(), `since ${c.since - t0}`);
    assert.ok(c.session.lastRx >= c.since && c.session.lastRx <= Date.now());
  });
});

test('replies made from the template of their MTU: the address, MTU and configuration of the general builder, a lease of their own, the same reply to a repeated request', async () => {
  await withServer({ subnet: '10.9.0.0/24', mtu: 9000, keepalive: 7 }, async (h) => {
    const got: Array<{ f: Uint8Array; mtu: number }> = [];
    for (const mtu of [1500, 9000, 1500]) {
      const raw = await h.raw();
      raw.write(extRequest(0, [[T_MTU, u16(mtu)]]));
      await waitFor(() => raw.frames.length > 0, 3000, 'the reply');
      got.push({ f: raw.frames[0], mtu });
      if (got.length === 1) {
        raw.write(extRequest(0, [[T_MTU, u16(mtu)]]));
        await waitFor(() => raw.frames.length > 1, 3000, 'the second reply');
        assert.equal(Array.from(raw.frames[1]), Array.from(raw.frames[0]), 'a repeated request gets the same reply');
      }
    }
    const leases = new Set<string>();
    for (const { f, mtu } of got) {
      assert.is(extKind(f), KIND_REPLY);
      const c = readConfig(f);
      assert.is(c.mtu, mtu);
      assert.is(c.keepalive, 7);
      assert.is(c.prefix, 24);
      assert.is(c.lease?.length, 16);
      leases.add(Buffer.from(c.lease!).toString('hex'));
      const a = readU32(f, DST);
      assert.ok(a >>> 8 === 0x0a0900 && (a & 255) > 1, 'an address of the subnet');
      // Byte for byte what the general builder makes of the same fields.
      const tlvs: Tlv[] = [];
      eachTlv(f, (t, v) => tlvs.push([t, Uint8Array.from(v)]));
      assert.equal(Array.from(extMessage(ANY, a, KIND_REPLY, tlvs)), Array.from(f));
      assert.is(tlvs[tlvs.length - 1][0], T_LEASE);
    }
    assert.is(leases.size, 3);
  });
});

test.run();
