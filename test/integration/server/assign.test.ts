// Address assignment over loopback: dynamic and static requests from SDK clients and raw
// seed-format clients, every refusal and how each kind of client is told, repeated requests,
// and the configuration an extension reply carries.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KIND_REFUSAL, KIND_REPLY, REFUSE_EXHAUSTED, REFUSE_FULL, REFUSE_IN_USE, REFUSE_OUTSIDE, T_CLIENT, ascii, extKind, readConfig, readRefusal, formatIPv4 } from '../../../protocol/index.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { type Harness, RawClient, SEED_DYNAMIC, extRequest, ip, nextEvent, seedStatic, sleep, waitFor, withServer } from '../../support/server-net.js';

const readU32 = (b: Uint8Array, o: number) => Buffer.from(b.buffer, b.byteOffset, b.length).readUInt32BE(o);

/** Reads one whole extension message (its total length says how long) from a raw client. */
async function readExt(c: RawClient): Promise<Uint8Array> {
  const head = await c.read(4);
  const total = (head[2] << 8) | head[3];
  const rest = await c.read(total - 4);
  const out = new Uint8Array(total);
  out.set(head);
  out.set(rest, 4);
  return out;
}

/** A raw seed client must see the connection closed with not one byte sent to it. */
async function expectSilentClose(c: RawClient, what: string): Promise<void> {
  await c.waitClosed(3000).catch(() => {
    throw new Error(`${what}: the server did not close the connection`);
  });
  assert.is(c.received, 0, `${what}: a seed client is refused by closing without a reply, got ${c.received} bytes`);
}

/** Runs an SDK client until its first 'down' and returns that report. */
async function refusedSdk(h: Harness, address?: string) {
  const p = h.sdk(address ? { address } : {}).start();
  const down = await p.waitState('down');
  assert.not.ok(p.states.some((s) => s.state === 'ready'), 'a refused client never became ready');
  return down;
}

// ---- granted requests ----------------------------------------------------------------------

test('dynamic: an SDK client gets a host address of the subnet, not the gateway, and the server records it', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const assigns: any[] = [];
    h.server.on('assign', (e) => assigns.push(e));
    const a = h.sdk({ name: 'unit-a' });
    const info = await a.ready();
    const addr = ip(info.address!);
    assert.ok(addr > ip('10.9.0.1') && addr < ip('10.9.0.255'), 'host address, not network/gateway/broadcast: ' + info.address);
    assert.is(info.server, 'simplevpn');
    assert.ok(h.pool.has(addr));
    assert.is(h.pool.size, 1);
    assert.is(h.sessionAt(addr) !== undefined, true, 'routing table entry');
    assert.is(assigns.length, 1);
    assert.is(assigns[0].address, info.address);
    assert.is(assigns[0].mode, 'dynamic');
    assert.is(assigns[0].protocol, 'simplevpn');
    assert.is(assigns[0].name, 'unit-a');
    // Two clients: two different addresses.
    const b = h.sdk();
    const infoB = await b.ready();
    assert.is.not(infoB.address, info.address);
  });
});

test('static: an SDK client that asks for a free address gets exactly it', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const assign = nextEvent(h.server, 'assign', 3000);
    const info = await h.sdk({ address: '10.9.0.77' }).ready();
    assert.is(info.address, '10.9.0.77');
    assert.is((await assign).mode, 'static');
    assert.ok(h.pool.has(ip('10.9.0.77')));
  });
});

test('static conflict, new format: the second SDK client is refused with REFUSE_IN_USE and a text; the first is untouched', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const first = h.sdk({ address: '10.9.0.50' });
    await first.ready();
    const refuse = nextEvent<any>(h.server, 'refuse', 3000);
    const down = await refusedSdk(h, '10.9.0.50');
    assert.is(down.code, REFUSE_IN_USE);
    assert.match(describeDown(down), /in use/, 'the server text reaches the client: ' + describeDown(down));
    assert.match(describeDown(down), /10\.9\.0\.50/);
    const ev = await refuse;
    assert.is(ev.reason, 'address_in_use');
    assert.is(ev.protocol, 'simplevpn');
    assert.is(h.metrics.refusals.address_in_use, 1);
    assert.is(first.state.state, 'ready');
    assert.is(h.pool.size, 1);
    await waitFor(() => h.sessions === 1, 3000, 'the refused session to be gone');
  });
});

test('static conflict, new format on the wire: one KIND_REFUSAL message with code and text, then end of stream', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const a = await h.raw();
    a.write(extRequest(ip('10.9.0.50')));
    const reply = await readExt(a);
    assert.is(extKind(reply), KIND_REPLY);
    const b = await h.raw();
    b.write(extRequest(ip('10.9.0.50')));
    const r = await readExt(b);
    assert.is(extKind(r), KIND_REFUSAL);
    const why = readRefusal(r);
    assert.is(why.code, REFUSE_IN_USE);
    assert.ok(why.text.length > 0, 'a text for people');
    assert.is(readU32(r, 12), ip('10.9.0.50'), 'the refusal names the requested address as its source');
    await b.waitClosed();
    assert.is(b.received, r.length, 'nothing after the refusal');
    assert.not.ok(a.closed);
  });
});

test('static conflict, seed format: the connection is closed without a single reply byte', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const a = await h.raw();
    assert.is(await a.requestSeed(ip('10.9.0.60')), ip('10.9.0.60'));
    const b = await h.raw();
    const refuse = nextEvent<any>(h.server, 'refuse', 3000);
    b.write(seedStatic(ip('10.9.0.60')));
    await expectSilentClose(b, 'seed static conflict');
    const ev = await refuse;
    assert.is(ev.reason, 'address_in_use');
    assert.is(ev.protocol, 'seed');
    assert.not.ok(a.closed, 'the holder keeps its connection');
    assert.ok(h.pool.has(ip('10.9.0.60')));
  });
});

test('static outside the subnet, or the network, broadcast or server address: REFUSE_OUTSIDE (new format)', async () => {
  await withServer({ subnet: '10.9.0.0/24', address: '10.9.0.254' }, async (h) => {
    for (const bad of ['10.10.0.5', '10.9.0.254', '10.9.0.0', '10.9.0.255']) {
      const down = await refusedSdk(h, bad);
      assert.is(down.code, REFUSE_OUTSIDE, bad);
    }
    assert.is(h.metrics.refusals.address_outside_subnet, 4);
    assert.is(h.pool.size, 0);
    // .1 is not reserved when the server's address is elsewhere.
    assert.is((await h.sdk({ address: '10.9.0.1' }).ready()).address, '10.9.0.1');
  });
});

test('static outside the subnet or the server address, seed format: closed without reply', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    for (const bad of ['10.10.0.5', '10.9.0.1', '10.9.0.255']) {
      const c = await h.raw();
      c.write(seedStatic(ip(bad)));
      await expectSilentClose(c, 'seed static ' + bad);
    }
    assert.is(h.metrics.refusals.address_outside_subnet, 3);
  });
});

test('pool exhaustion (a /29 with room for more clients than addresses): REFUSE_EXHAUSTED; a seed client is closed silently', async () => {
  await withServer({ subnet: '10.9.0.0/29', maxClients: 8 }, async (h) => {
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await h.sdk().ready());
    assert.equal(held.map((s) => s.address).sort(), ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    assert.is(h.pool.free, 0);
    const down = await refusedSdk(h);
    assert.is(down.code, REFUSE_EXHAUSTED);
    assert.ok(describeDown(down).length > 'refused by server: '.length);
    const seed = await h.raw();
    seed.write(SEED_DYNAMIC);
    await expectSilentClose(seed, 'seed dynamic on an exhausted pool');
    assert.is(h.metrics.refusals.pool_exhausted, 2);
  });
});

test('pool exhaustion with the default max-clients is still reported as exhaustion, not as "server full"', async () => {
  // With defaults the operator set no client limit: the subnet running out is the reason.
  await withServer({ subnet: '10.9.0.0/30' }, async (h) => {
    assert.is((await h.sdk().ready()).address, '10.9.0.2');
    const down = await refusedSdk(h);
    assert.is(down.code, REFUSE_EXHAUSTED, 'got code ' + down.code + ': ' + describeDown(down));
    assert.is(h.metrics.refusals.pool_exhausted, 1);
  });
});

test('max clients: the client over the limit is refused with REFUSE_FULL; a freed slot admits the next one', async () => {
  await withServer({ subnet: '10.9.0.0/24', maxClients: 2 }, async (h) => {
    const a = h.sdk();
    await a.ready();
    await h.sdk().ready();
    const down = await refusedSdk(h);
    assert.is(down.code, REFUSE_FULL);
    // Static requests are limited too.
    assert.is((await refusedSdk(h, '10.9.0.99')).code, REFUSE_FULL);
    assert.is(h.metrics.refusals.max_clients, 2);
    a.close();
    await waitFor(() => h.pool.size === 1, 3000, 'the closed client to release its address');
    await h.sdk().ready();
  });
});

test('a refused client holds nothing: sessions and pool are back to the holders only', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    await h.sdk({ address: '10.9.0.9' }).ready();
    for (let i = 0; i < 5; i++) await refusedSdk(h, '10.9.0.9');
    await waitFor(() => h.sessions === 1, 3000, 'refused sessions to end', () => h.server.clients());
    assert.is(h.pool.size, 1);
    assert.is(h.switch.size, 1);
  });
});

// ---- repeated requests -----------------------------------------------------------------------

test('a second seed request on a session with an address gets the same address, dynamic or static', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const c = await h.raw();
    const first = await c.requestSeed();
    assert.is(await c.requestSeed(), first, 'second dynamic request');
    assert.is(await c.requestSeed(ip('10.9.0.200')), first, 'a static request for another address still gets the held one');
    assert.is(h.pool.size, 1);
    assert.not.ok(h.pool.has(ip('10.9.0.200')));
  });
});

test('a second extension request on a session gets the same address in a full KIND_REPLY', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const c = await h.raw();
    c.write(extRequest());
    const r1 = await readExt(c);
    c.write(extRequest());
    const r2 = await readExt(c);
    assert.is(extKind(r2), KIND_REPLY);
    assert.is(readU32(r2, 16), readU32(r1, 16));
    assert.equal(readConfig(r2), readConfig(r1));
    assert.is(h.pool.size, 1);
  });
});

test('a client whose connection dropped gets its address back on reconnect, though a newcomer connected in between', async () => {
  // The SDK asks for its previous address again on reconnect; the pool keeps a just-lost address
  // free as long as others are (class comment of AddressPool), so the newcomer gets another one.
  await withServer({ subnet: '10.0.0.0/24' }, async (h) => {
    const a = h.sdk({ minBackoff: 0.3, maxBackoff: 0.3 });
    const first = ip((await a.ready()).address!);
    h.sessionAt(first)!.socket.destroy(); // the link breaks
    await waitFor(() => !h.pool.has(first), 3000, 'release');
    const newcomer = await h.raw();
    const got = await newcomer.requestSeed();
    await waitFor(() => a.states.filter((s) => s.state === 'ready').length === 2 || a.states.some((s) => s.state === 'down' && s.code), 5000, 'the reconnect', () => a.states);
    assert.is.not(got, first, 'the newcomer took the address the dropped client was about to ask for');
    const readies = a.states.filter((s) => s.state === 'ready');
    assert.is(readies.length, 2, 'reconnected: ' + JSON.stringify(a.states));
    assert.is(readies[1].address, readies[0].address, 'same address after reconnect');
  });
});

// ---- what the reply carries ------------------------------------------------------------------

test('the extension reply carries prefix, gateway, MTU, keepalive, idle timeout and the --route routes as configured', async () => {
  const opts = {
    subnet: '10.77.16.0/20',
    address: '10.77.16.9',
    mtu: 1400,
    keepalive: 7,
    idleTimeout: 30,
    routes: ['192.168.50.0/24', '172.16.0.0/12'],
  };
  await withServer(opts, async (h) => {
    const c = await h.raw();
    c.write(extRequest(0, [[T_CLIENT, ascii('raw-ext')]]));
    const r = await readExt(c);
    assert.is(extKind(r), KIND_REPLY);
    assert.is(readU32(r, 12), 0, 'source 0');
    const addr = readU32(r, 16);
    assert.ok(addr > ip('10.77.16.0') && addr < ip('10.77.31.255') && addr !== ip('10.77.16.9'), formatIPv4(addr));
    const cfg = readConfig(r);
    assert.is(cfg.prefix, 20);
    assert.is(formatIPv4(cfg.gateway!), '10.77.16.9');
    assert.is(cfg.mtu, 1400);
    assert.is(cfg.keepalive, 7);
    assert.is(cfg.idleTimeout, 30);
    assert.equal(
      cfg.routes.map(([n, p]) => `${formatIPv4(n)}/${p}`),
      ['192.168.50.0/24', '172.16.0.0/12'],
    );
    assert.is(h.server.clients()[0].name, 'raw-ext', 'T_CLIENT name recorded');
    // The SDK applies the same.
    const info = await h.sdk().ready();
    assert.is(info.prefix, 20);
    assert.is(info.netmask, '255.255.240.0');
    assert.is(info.gateway, '10.77.16.9');
    assert.is(info.mtu, 1400);
    assert.is(info.keepalive, 7);
    assert.equal(info.routes, [
      { network: '192.168.50.0', prefix: 24 },
      { network: '172.16.0.0', prefix: 12 },
    ]);
  });
});

test('defaults: /16 subnet, gateway on .1, MTU 1500, keepalive 15, idle timeout 60, no routes', async () => {
  await withServer({}, async (h) => {
    const c = await h.raw();
    c.write(extRequest());
    const cfg = readConfig(await readExt(c));
    assert.equal(
      { prefix: cfg.prefix, gw: formatIPv4(cfg.gateway!), mtu: cfg.mtu, ka: cfg.keepalive, idle: cfg.idleTimeout, routes: cfg.routes },
      { prefix: 16, gw: '10.0.0.1', mtu: 1500, ka: 15, idle: 60, routes: [] },
    );
  });
});

test('the server sends nothing before the client speaks (no greeting)', async () => {
  await withServer({}, async (h) => {
    const c = await h.raw();
    await sleep(200);
    assert.is(c.received, 0);
    assert.not.ok(c.closed);
  });
});

test.run();
