// Anti-spoofing: a client may only send from the address it was given, and nothing before
// it was given one. The seed server let any client take over another's address this way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { equalBytes, ip, ipPacket, sleep, waitFor, withServer } from '../../support/server-net.js';

test('a packet whose source is another client\'s address is dropped, counted, and never reaches the victim', async () => {
  await withServer({ subnet: '10.5.0.0/24' }, async (h) => {
    const victim = h.sdk();
    const other = h.sdk();
    await victim.ready();
    await other.ready();
    const evil = await h.raw();
    const evilAddr = await evil.requestSeed();
    // Pretend to be `other`, talking to the victim; and pretend to be the victim, talking to other.
    evil.write(ipPacket(other.address, victim.address, 60));
    evil.write(ipPacket(victim.address, other.address, 60));
    // A source nobody holds, and 0.0.0.0 towards a client.
    evil.write(ipPacket(ip('10.5.0.250'), victim.address, 60));
    evil.write(ipPacket(0, victim.address, 60));
    const honest = ipPacket(evilAddr, victim.address, 44);
    evil.write(honest);
    await waitFor(() => victim.packets.length >= 1, 3000, 'the honest packet');
    await sleep(30);
    assert.is(victim.packets.length, 1, 'only the honest packet reached the victim');
    assert.ok(equalBytes(victim.packets[0], honest));
    assert.is(other.packets.length, 0);
    const m = h.metrics;
    assert.is(m.drops.spoofed_source, 4);
    assert.is(m.rxPackets, 1, 'spoofed packets are not counted as received data');
    const info = h.server.clients().find((c) => c.address !== null && ip(c.address) === evilAddr)!;
    assert.is(info.drops, 4, 'counted on the sender\'s session too');
    // The spoofer is not disconnected and the victim keeps its address.
    assert.not.ok(evil.closed);
    assert.is(victim.state.state, 'ready');
  });
});

test('spoofing does not move an address: the victim still receives traffic sent to it afterwards', async () => {
  await withServer({ subnet: '10.5.0.0/24' }, async (h) => {
    const victim = h.sdk();
    const peer = h.sdk();
    await victim.ready();
    await peer.ready();
    const evil = await h.raw();
    await evil.requestSeed();
    for (let i = 0; i < 20; i++) evil.write(ipPacket(victim.address, peer.address, 40));
    await waitFor(() => h.metrics.drops.spoofed_source === 20, 3000, 'the spoofed drops');
    const p = ipPacket(peer.address, victim.address, 50);
    peer.client.send(p);
    await waitFor(() => victim.packets.length === 1, 3000, 'delivery to the real owner');
    assert.is(evil.frames.length, 0, 'the spoofer got nothing');
  });
});

test('the drop_spoofed warning is rate limited: 1000 spoofed packets, one event, with the count of the rest to come', async () => {
  const lines: Array<{ level: string; event: string; fields: any }> = [];
  const logger = { log: (level: any, event: string, fields: any) => lines.push({ level, event, fields }) };
  await withServer({ subnet: '10.5.0.0/24', logger }, async (h) => {
    const events: any[] = [];
    h.server.on('drop_spoofed', (e) => events.push(e));
    const victim = h.sdk();
    await victim.ready();
    const evil = await h.raw();
    const evilAddr = await evil.requestSeed();
    const one = ipPacket(ip('10.5.0.123'), victim.address, 40);
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => one));
    await evil.writeAll(burst);
    await waitFor(() => h.metrics.drops.spoofed_source === 1000, 5000, '1000 spoofed drops', () => h.metrics.drops);
    assert.is(events.length, 1);
    assert.is(events[0].source, '10.5.0.123');
    assert.is(ip(events[0].address), evilAddr);
    const logged = lines.filter((l) => l.event === 'drop_spoofed');
    assert.is(logged.length, 1, 'one log line');
    assert.is(logged[0].level, 'warn');
    assert.is(victim.packets.length, 0);
  });
});

test('data before an address is assigned is dropped and counted as unassigned, then the session works normally', async () => {
  await withServer({ subnet: '10.5.0.0/24' }, async (h) => {
    const b = h.sdk();
    await b.ready();
    const c = await h.raw();
    // Claims an address it was never given, before asking for any.
    c.write(ipPacket(ip('10.5.0.77'), b.address, 60));
    c.write(ipPacket(b.address, b.address, 60));
    await waitFor(() => h.metrics.drops.unassigned === 2, 3000, 'two unassigned drops', () => h.metrics.drops);
    assert.is(h.metrics.drops.spoofed_source, 0);
    assert.is(b.packets.length, 0);
    assert.not.ok(h.pool.has(ip('10.5.0.77')), 'sending from an address does not claim it');
    assert.not.ok(c.closed, 'the session stays open for its request');
    const addr = await c.requestSeed();
    const p = ipPacket(addr, b.address, 60);
    c.write(p);
    await waitFor(() => b.packets.length === 1, 3000, 'delivery after the request');
    assert.ok(equalBytes(b.packets[0], p));
  });
});

test.run();
