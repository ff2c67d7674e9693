// Seed compatibility: raw bytes over a plain socket exactly as the 2013 client sends them
// (../shared/seed-protocol-facts.md), the replies byte for byte, and seed devices' packets
// switched to and from SDK clients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Buffer } from 'node:buffer';
import { SEED_DYNAMIC, bytes, equalBytes, hex, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

test('the dynamic request bytes of the facts file are what the helpers send', () => {
  assert.is(hex(SEED_DYNAMIC), '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00 00 00');
});

test('dynamic seed request: the reply is the request with the destination set to the address, 20 bytes, nothing more', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const c = await h.raw();
    c.write(bytes('45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00 00 00'));
    const reply = await c.read(20);
    const addr = Buffer.from(reply).readUInt32BE(16);
    assert.ok(addr > ip('10.0.0.1') && addr < ip('10.0.255.255'), 'an address of the subnet');
    const want = Buffer.concat([bytes('45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00'), u32(addr)]);
    assert.is(hex(reply), hex(want));
    await sleep(200);
    assert.is(c.received, 20, 'nothing after the reply');
    assert.not.ok(c.closed);
    const info = h.server.clients()[0];
    assert.is(info.protocol, 'seed');
    assert.is(info.address, `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`);
  });
});

test('static seed request: the reply has destination = the granted address and source 0', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const c = await h.raw();
    c.write(bytes('45 14 00 00 00 00 00 00 40 00 00 00 0a 00 07 2a 00 00 00 00')); // 10.0.7.42
    const reply = await c.read(20);
    assert.is(hex(reply), '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 0a 00 07 2a');
    await sleep(100);
    assert.is(c.received, 20);
    assert.ok(h.pool.has(ip('10.0.7.42')));
  });
});

test('the reply echoes the other header bytes of the request unchanged (id, TTL, checksum, TOS)', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const c = await h.raw();
    const req = bytes('45 b8 00 00 12 34 40 00 20 06 be ef 00 00 00 00 00 00 00 00');
    c.write(req);
    const reply = await c.read(20);
    assert.is(hex(reply.subarray(0, 16)), hex(req.subarray(0, 16)));
  });
});

test('the seed\'s hard-coded 10.0.0.0/16 with a static address from the top of it', async () => {
  await withServer({}, async (h) => {
    const c = await h.raw();
    c.write(bytes('45 14 00 00 00 00 00 00 40 00 00 00 0a 00 fe fe 00 00 00 00'));
    assert.is(hex(await c.read(20)), '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 0a 00 fe fe');
  });
});

test('a seed client\'s packets are switched to an SDK client and back, byte for byte', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const sdk = h.sdk();
    await sdk.ready();
    const seed = await h.raw();
    const sAddr = await seed.requestSeed();
    const r = rng(42);
    const up = Array.from({ length: 50 }, (_, i) => ipPacket(sAddr, sdk.address, 20 + Math.floor(r() * 1480), r));
    const down = Array.from({ length: 50 }, () => ipPacket(sdk.address, sAddr, 20 + Math.floor(r() * 1480), r));
    for (const p of up) seed.write(p);
    for (const p of down) assert.ok(sdk.client.send(p));
    await waitFor(() => sdk.packets.length >= up.length && seed.frames.length >= down.length, 5000, 'both directions', () => [sdk.packets.length, seed.frames.length]);
    await sleep(30);
    assert.is(sdk.packets.length, up.length);
    assert.is(seed.frames.length, down.length);
    up.forEach((p, i) => assert.ok(equalBytes(sdk.packets[i], p), 'seed -> sdk packet ' + i));
    down.forEach((p, i) => assert.ok(equalBytes(seed.frames[i], p), 'sdk -> seed packet ' + i));
  });
});

test('two seed clients reach each other', async () => {
  await withServer({}, async (h) => {
    const a = await h.raw();
    const b = await h.raw();
    const aa = await a.requestSeed();
    const bb = await b.requestSeed();
    const p1 = ipPacket(aa, bb, 84, rng(1));
    const p2 = ipPacket(bb, aa, 1500, rng(2));
    a.write(p1);
    b.write(p2);
    await waitFor(() => a.frames.length === 1 && b.frames.length === 1, 3000, 'delivery');
    assert.ok(equalBytes(b.frames[0], p1));
    assert.ok(equalBytes(a.frames[0], p2));
  });
});

test('a request and data in one write: the data after the request is switched', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const sdk = h.sdk();
    await sdk.ready();
    const seed = await h.raw();
    const me = ip('10.0.3.3');
    const p = ipPacket(me, sdk.address, 100, rng(5));
    seed.write(Buffer.concat([bytes('45 14 00 00 00 00 00 00 40 00 00 00 0a 00 03 03 00 00 00 00'), p]));
    assert.is(hex(await seed.read(20)), '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 0a 00 03 03');
    await waitFor(() => sdk.packets.length === 1, 3000, 'the data packet');
    assert.ok(equalBytes(sdk.packets[0], p));
  });
});

test('seed reconnect: after the connection closes, a static request for the same address is granted again', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const c1 = await h.raw();
    const addr = await c1.requestSeed();
    c1.destroy();
    await waitFor(() => !h.pool.has(addr), 3000, 'the address to be released');
    const c2 = await h.raw();
    assert.is(await c2.requestSeed(addr), addr);
  });
});

test('an SDK client in seed mode is a seed client to the server: seed reply, /16, no gateway', async () => {
  await withServer({ subnet: '10.0.0.0/16' }, async (h) => {
    const c = h.sdk({ seed: true });
    const info = await c.ready();
    assert.is(info.server, 'seed');
    assert.is(info.prefix, 16);
    assert.is(info.gateway, null);
    assert.is(h.server.clients()[0].protocol, 'seed');
    const session = h.sessionAt(c.address)!;
    assert.is(session.coalesce, false, 'a seed client treats each read as one packet: never merge writes to it');
    const ext = h.sdk();
    await ext.ready();
    assert.is(h.sessionAt(ext.address)!.coalesce, true);
  });
});

test.run();
