// Keepalive echo, the idle reaper and the handshake timeout, with short real timers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KEEPALIVE } from '../../../protocol/index.js';
import { SEED_KEEPALIVE, extRequest, hex, ip, nextEvent, sleep, waitFor, withServer } from '../../support/server-net.js';

// ---- keepalive ---------------------------------------------------------------------------

test('the SDK keepalive constant is the seed keepalive byte for byte', () => {
  assert.is(hex(KEEPALIVE), hex(SEED_KEEPALIVE));
});

test('keepalive is echoed byte for byte, before and after the address request', async () => {
  await withServer({}, async (h) => {
    const c = await h.raw();
    c.write(SEED_KEEPALIVE);
    assert.is(hex(await c.read(20)), hex(SEED_KEEPALIVE), 'before the request');
    await c.requestSeed();
    c.write(SEED_KEEPALIVE);
    assert.is(hex(await c.read(20)), hex(SEED_KEEPALIVE), 'after the request');
    // Three in one write: three echoes.
    c.write(Buffer.concat([SEED_KEEPALIVE, SEED_KEEPALIVE, SEED_KEEPALIVE]));
    assert.is(hex(await c.read(60)), hex(Buffer.concat([SEED_KEEPALIVE, SEED_KEEPALIVE, SEED_KEEPALIVE])));
    await sleep(50);
    assert.is(c.received, c.consumed, 'nothing else');
    assert.is(h.metrics.keepalives, 5);
    assert.is(h.metrics.rxPackets, 0, 'keepalives are not data');
  });
});

test('keepalive echo is unaltered whatever its other header bytes (checksum, TOS, TTL are not rewritten)', async () => {
  await withServer({}, async (h) => {
    const c = await h.raw();
    c.write(extRequest());
    await waitFor(() => c.received > 0, 3000, 'the reply');
    await sleep(20);
    c.consumed = c.received;
    const odd = Uint8Array.from(SEED_KEEPALIVE);
    odd[1] = 0xb8;
    odd[8] = 1;
    odd[10] = 0x12;
    odd[11] = 0x34;
    odd[4] = 0xab;
    c.write(odd);
    assert.is(hex(await c.read(20)), hex(odd), 'echoed to an extension client too');
  });
});

test('an SDK client that keeps alive at the pushed interval is never reaped by the idle timeout', async () => {
  await withServer({ idleTimeout: 2, keepalive: 1 }, async (h) => {
    const disconnects: any[] = [];
    h.server.on('disconnect', (e) => disconnects.push(e));
    const a = h.sdk();
    const info = await a.ready();
    assert.is(info.keepalive, 1);
    await sleep(3500);
    assert.is(disconnects.length, 0, 'no disconnect: ' + JSON.stringify(disconnects));
    assert.is(a.state.state, 'ready');
    assert.ok(a.client.stats.keepalives >= 2, 'the client sent keepalives: ' + a.client.stats.keepalives);
    assert.ok(h.metrics.keepalives >= 2);
  });
});

// ---- idle reap -----------------------------------------------------------------------------

test('idle reap: a silent client is closed after the idle timeout and its address can be taken again', async () => {
  await withServer({ subnet: '10.6.0.0/24', idleTimeout: 2, keepalive: 1 }, async (h) => {
    const c = await h.raw();
    const want = ip('10.6.0.42');
    assert.is(await c.requestSeed(want), want);
    const t0 = Date.now();
    const gone = nextEvent<any>(h.server, 'disconnect', 5000);
    await c.waitClosed(5000);
    const ev = await gone;
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 1900, 'not before the idle timeout: ' + elapsed + ' ms');
    assert.is(ev.reason, 'idle_timeout');
    assert.is(ev.address, '10.6.0.42');
    assert.not.ok(h.pool.has(want), 'address back in the pool');
    assert.is(h.pool.size, 0);
    assert.is(h.sessionAt(want), undefined);
    const d = await h.raw();
    assert.is(await d.requestSeed(want), want, 'a new client takes it statically');
  });
});

test('idle reap counts from the last thing received: data and keepalives keep a session alive', async () => {
  await withServer({ subnet: '10.6.0.0/24', idleTimeout: 2, keepalive: 1 }, async (h) => {
    const c = await h.raw();
    await c.requestSeed();
    const timer = setInterval(() => c.write(SEED_KEEPALIVE), 500);
    try {
      await sleep(3000);
      assert.not.ok(c.closed, 'kept alive');
    } finally {
      clearInterval(timer);
    }
    await c.waitClosed(4000);
    assert.is(h.metrics.disconnects.idle_timeout, 1);
  });
});

// ---- handshake timeout ----------------------------------------------------------------------

test('handshake timeout: a connection that never asks for an address is closed', async () => {
  await withServer({ handshakeTimeout: 1 }, async (h) => {
    const t0 = Date.now();
    const c = await h.raw();
    const gone = nextEvent<any>(h.server, 'disconnect', 4000);
    await c.waitClosed(4000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 900, 'not before the timeout: ' + elapsed + ' ms');
    assert.is((await gone).reason, 'handshake_timeout');
    assert.is(c.received, 0);
    assert.is(h.sessions, 0);
  });
});

test('handshake timeout: keepalives are not a request and do not extend it', async () => {
  await withServer({ handshakeTimeout: 1 }, async (h) => {
    const c = await h.raw();
    const timer = setInterval(() => c.closed || c.write(SEED_KEEPALIVE), 100);
    try {
      await c.waitClosed(4000);
    } finally {
      clearInterval(timer);
    }
    assert.is(h.metrics.disconnects.handshake_timeout, 1);
  });
});

test('handshake timeout does not touch a session that asked in time', async () => {
  await withServer({ handshakeTimeout: 1 }, async (h) => {
    const c = await h.raw();
    await c.requestSeed();
    await sleep(1700);
    assert.not.ok(c.closed);
    assert.is(h.sessions, 1);
  });
});

test.run();
