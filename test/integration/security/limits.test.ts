// Limits, each with a counted and logged refusal: connections per source address, new
// connections per second per source, connections reset before they were accepted (counted
// apart), max clients, credential checks waiting, the handshake timeout (a flood of idle
// half-open connections), and the max frame size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REFUSAL, REFUSE_FULL, REFUSE_RATE, credentials, extKind, readRefusal } from '../../../protocol/index.js';
import { type Harness, RawClient, SEED_DYNAMIC, equalBytes, extRequest, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { credsOf, memoryLogger, newSecret, writeAuth } from '../../support/security-kit.js';

let tmp = '';
test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-limits-'));
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A raw TCP connection from `local` (another loopback address) to the server. */
const connectFrom = (port: number, local: string): Promise<RawClient> => RawClient.connect(port, { localAddress: local });

/** Opens a connection and reports whether the server kept it (true) or closed it at once. */
async function admitted(h: Harness, local = '127.0.0.1', ms = 300): Promise<{ kept: boolean; c: RawClient }> {
  const c = h.track(await connectFrom(h.port, local));
  await waitFor(() => c.closed, ms, 'close').catch(() => {});
  return { kept: !c.closed, c };
}

async function pair(h: Harness) {
  const a = h.sdk();
  const b = h.sdk();
  await a.ready();
  await b.ready();
  return { a, b };
}

async function exchange(p: { a: any; b: any }, tag: number): Promise<void> {
  const ab = ipPacket(p.a.address, p.b.address, 64 + tag, rng(tag));
  const ba = ipPacket(p.b.address, p.a.address, 66 + tag, rng(tag + 1));
  const nb = p.b.packets.length;
  const na = p.a.packets.length;
  assert.ok(p.a.client.send(ab) && p.b.client.send(ba));
  await waitFor(() => p.b.packets.slice(nb).some((x: Uint8Array) => equalBytes(x, ab)) && p.a.packets.slice(na).some((x: Uint8Array) => equalBytes(x, ba)), 3000, 'a <-> b');
}

// ---- per source -------------------------------------------------------------------------------

test('maxPerSource: the N+1-th connection from 127.0.0.1 is closed at once, counted, logged once (rate limited) with the count held back', async () => {
  const logger = memoryLogger();
  await withServer({ maxPerSource: 3, logger }, async (h) => {
    const held: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await admitted(h);
      assert.ok(r.kept, `connection ${i + 1} is admitted`);
      held.push(r.c);
    }
    const t0 = Date.now();
    const over = await admitted(h, '127.0.0.1', 2000);
    assert.not.ok(over.kept, 'the 4th is closed');
    assert.ok(Date.now() - t0 < 1000, 'at once');
    assert.is(over.c.received, 0);
    assert.is(h.metrics.refusals.per_source_limit, 1);
    assert.is(h.sessions, 3, 'the refused connection never became a session');
    const lines = logger.find('refuse_connection');
    assert.is(lines.length, 1);
    assert.is(lines[0].level, 'warn');
    assert.is(lines[0].fields.reason, 'per_source_limit');
    assert.match(lines[0].fields.remote, /^127\.0\.0\.1:\d+$/);
    assert.match(lines[0].fields.detail, /3 connections/);
    // Ten more: all refused and counted, not one more log line within the interval.
    for (let i = 0; i < 10; i++) assert.not.ok((await admitted(h, '127.0.0.1', 2000)).kept);
    assert.is(h.metrics.refusals.per_source_limit, 11);
    assert.is(logger.find('refuse_connection').length, 1, 'rate limited');
    // Another source address is not affected.
    const other = await admitted(h, '127.0.0.2');
    assert.ok(other.kept, '127.0.0.2 has its own budget');
    // A slot freed: admitted again.
    held[0].destroy();
    await waitFor(() => h.sessions === 3, 3000, 'the freed slot');
    await sleep(20);
    assert.ok((await admitted(h)).kept, 'admitted once a slot is free');
    // After the log interval (5 s) the next refusal is logged with the count held back.
    await sleep(5100);
    assert.not.ok((await admitted(h, '127.0.0.1', 2000)).kept);
    const after = logger.find('refuse_connection');
    assert.is(after.length, 2);
    assert.is(after[1].fields.more_since_last, 10);
  });
});

test('connRate: a burst beyond 2 x rate gets connection_rate refusals, counted and logged; after waiting, admitted again', async () => {
  const logger = memoryLogger();
  await withServer({ connRate: 5, logger }, async (h) => {
    const clients: RawClient[] = [];
    for (let i = 0; i < 16; i++) clients.push(h.track(await connectFrom(h.port, '127.0.0.1')));
    await sleep(200);
    const kept = clients.filter((c) => !c.closed).length;
    const refused = h.metrics.refusals.connection_rate ?? 0;
    // 10 from the full bucket, plus one more per 200 ms the 16 connects took.
    assert.ok(kept >= 10 && kept <= 12, `a burst of 2 x 5 is admitted, got ${kept}`);
    assert.is(refused, 16 - kept);
    assert.is(h.metrics.connections, kept);
    const lines = logger.find('refuse_connection');
    assert.is(lines.length, 1);
    assert.is(lines[0].fields.reason, 'connection_rate');
    assert.match(lines[0].fields.detail, /5 new connections per second/);
    for (const c of clients) c.destroy();
    await waitFor(() => h.sessions === 0, 2000, 'all closed');
    // Another source has its own bucket.
    assert.ok((await admitted(h, '127.0.0.3')).kept);
    // 1.1 s later the bucket holds 5 more.
    await sleep(1100);
    let again = 0;
    for (let i = 0; i < 5; i++) if ((await admitted(h, '127.0.0.1', 100)).kept) again++;
    assert.ok(again >= 4, `admitted again after waiting: ${again} of 5`);
  });
});

test('connections reset before they were accepted (Node no longer knows their address) are refused and counted apart (no_remote), never as one source', async () => {
  const logger = memoryLogger();
  await withServer({ connRate: 2, logger }, async (h) => {
    const N = 20;
    // A child connects N times and resets each connection while this process, the server's,
    // is blocked in execFileSync: the server accepts them only once they are gone.
    const child = `const net = require('node:net'); let n = 0;
      for (let i = 0; i < ${N}; i++) {
        const c = net.connect(${h.port}, '127.0.0.1', () => { c.resetAndDestroy(); if (++n === ${N}) setTimeout(() => process.exit(0), 50); });
        c.on('error', () => {});
      }
      setTimeout(() => process.exit(1), 10000);`;
    execFileSync(process.execPath, ['-e', child], { timeout: 15_000 });
    await waitFor(() => (h.metrics.refusals.no_remote ?? 0) === N, 3000, `${N} no_remote refusals`, () => h.metrics.refusals);
    // Before: all of them shared one bucket, "unknown": 4 admitted (2 x rate), 16 refused connection_rate.
    assert.is(h.metrics.refusals.connection_rate ?? 0, 0);
    assert.is(h.metrics.connections, 0, 'none became a session');
    const lines = logger.find('refuse_connection');
    assert.is(lines.length, 1, 'one line, the rest held back');
    assert.equal([lines[0].fields.reason, lines[0].fields.remote, lines[0].fields.detail], ['no_remote', 'unknown', 'reset before it was accepted']);
    assert.not.ok(logger.lines.some((l) => JSON.stringify(l.fields).includes('undefined')));
    // 127.0.0.1 has its own budget, untouched: a burst of 2 x rate.
    for (let i = 0; i < 4; i++) assert.ok((await admitted(h)).kept, `connection ${i + 1} admitted`);
  });
});

test('maxClients: REFUSE_FULL is counted (max_clients) and logged', async () => {
  const logger = memoryLogger();
  await withServer({ maxClients: 1, logger }, async (h) => {
    await h.sdk().ready();
    const down = await h.sdk().start().waitState('down');
    assert.is(down.code, REFUSE_FULL);
    const seed = await h.raw();
    seed.write(SEED_DYNAMIC);
    await seed.waitClosed();
    assert.is(h.metrics.refusals.max_clients, 2);
    assert.is(h.metrics.disconnects.refused, 2);
    const lines = logger.find('refuse').filter((l) => l.fields.reason === 'max_clients');
    assert.is(lines.length, 2);
    assert.match(lines[0].fields.detail, /full/);
  });
});

test('credential checks are bounded: from one address 4 at a time, server-wide 64 waiting; beyond, REFUSE_RATE (auth_busy), counted and logged; real logins then work', async () => {
  const path = join(tmp, 'auth.json');
  const real = { id: 'real', secret: newSecret() };
  await writeAuth(path, [real]);
  const logger = memoryLogger();
  await withServer({ auth: path, logger }, async (h) => {
    const burst = async (from: (i: number) => string, n: number) => {
      const clients = await Promise.all(Array.from({ length: n }, (_, i) => connectFrom(h.port, from(i))));
      for (const c of clients) h.track(c);
      for (let i = 0; i < n; i++) clients[i].write(extRequest(0, credentials(`nobody-${i}`, 'guess-' + i)));
      await waitFor(() => clients.every((c) => c.frames.length > 0 || c.closed), 15_000, 'every login to be answered', () => h.metrics.refusals);
      const code = (c: RawClient) => (c.frames.length && extKind(c.frames[0]) === KIND_REFUSAL ? readRefusal(c.frames[0]).code : 0);
      return { busy: clients.filter((c) => code(c) === REFUSE_RATE).length, failed: clients.filter((c) => code(c) === 6).length };
    };
    // 200 at once from one address: it has 4 checks waiting or running at most.
    const one = await burst(() => '127.0.0.1', 200);
    assert.is(one.busy + one.failed, 200, 'every one answered');
    assert.ok(one.failed >= 4 && one.failed < 40, `checked: ${one.failed}`);
    // 300 at once from 150 addresses: 64 wait, 2 run; the rest are refused.
    const many = await burst((i) => `127.0.2.${1 + (i % 150)}`, 300);
    assert.is(many.busy + many.failed, 300);
    assert.ok(many.busy > 0, 'some refused as busy');
    assert.ok(many.failed >= 64, `at least the queue was checked: ${many.failed}`);
    assert.is(h.metrics.refusals.auth_busy, one.busy + many.busy);
    assert.is(h.metrics.refusals.auth_failed, one.failed + many.failed);
    assert.ok(logger.find('refuse').some((l) => l.fields.reason === 'auth_busy'));
    assert.ok(logger.find('refuse').length < 100, 'refusals of credentials are logged a few a second');
    assert.is(h.auth!.pending, 0);
    assert.ok((await h.sdk({ credentials: credsOf(real) }).ready()).address);
  });
});

// ---- handshake timeout ------------------------------------------------------------------------

test('a flood of 300 idle half-open connections is shed by the handshake timeout (1 s); the pool is untouched and real clients work throughout', async () => {
  await withServer({ subnet: '10.3.0.0/24', handshakeTimeout: 1 }, async (h) => {
    const p = await pair(h);
    const flood: RawClient[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 300; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(h.port)));
      for (const c of batch) h.track(c);
      flood.push(...batch);
    }
    // A third send nothing, a third the start of a frame, a third most of a request.
    flood.forEach((c, i) => {
      if (i % 3 === 1) c.write(Uint8Array.from([0x45, 0, 0xff, 0xff, 0, 0]));
      else if (i % 3 === 2) c.write(SEED_DYNAMIC.subarray(0, 19));
    });
    await waitFor(() => h.sessions >= 302, 3000, 'the flood to be accepted', () => h.sessions);
    // During the flood: the pair exchanges packets and a newcomer gets an address.
    await exchange(p, 1);
    const newcomer = h.sdk();
    await newcomer.ready();
    assert.is(h.pool.size, 3, 'the flood holds no address');
    await waitFor(() => flood.every((c) => c.closed), 4000, 'the flood to be shed', () => flood.filter((c) => !c.closed).length);
    const took = Date.now() - t0;
    assert.ok(took >= 900, `shed after the timeout, not before (${took} ms)`);
    assert.is(h.metrics.disconnects.handshake_timeout, 300);
    assert.ok(flood.every((c) => c.received === 0), 'nothing was sent to them');
    assert.is(h.sessions, 3);
    assert.is(h.pool.size, 3);
    await exchange(p, 2);
    assert.is(p.a.state.state, 'ready');
    assert.is(newcomer.state.state, 'ready');
    newcomer.close();
    p.a.close();
    p.b.close();
    await waitFor(() => h.sessions === 0, 3000, 'no session left');
    assert.is(h.pool.size, 0);
    assert.is(h.switch.size, 0);
  });
});

// ---- max frame ----------------------------------------------------------------------------------

test('maxFrame: a frame above it closes the session with reason frame_too_long (counted); one of exactly maxFrame passes', async () => {
  await withServer({ subnet: '10.3.0.0/24', mtu: 1000, maxFrame: 1000 }, async (h) => {
    const peer = h.sdk();
    await peer.ready();
    const c = await h.raw();
    const me = await c.requestSeed();
    const exact = ipPacket(me, peer.address, 1000, rng(5));
    c.write(exact);
    await waitFor(() => peer.packets.length === 1, 3000, 'the 1000-byte packet');
    assert.ok(equalBytes(peer.packets[0], exact));
    const gone = new Promise<any>((r) => h.server.once('disconnect', r));
    // Only the header of the 1001-byte frame: the session must not wait for the rest.
    c.write(ipPacket(me, peer.address, 1001).subarray(0, 20));
    await c.waitClosed(1000);
    const ev = await gone;
    assert.is(ev.reason, 'frame_too_long');
    assert.is(ip(ev.address), me);
    assert.is(h.metrics.disconnects.frame_too_long, 1);
    assert.not.ok(h.pool.has(me));
    // Before any request, an extension request that claims to be long, and IPv6.
    const cases = [
      Uint8Array.from([0x45, 0, 0xea, 0x60, 0, 0, 0, 0, 64, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      Uint8Array.from([0x60, 0, 0, 0, 0x03, 0xc1, 17, 64]),
    ];
    for (const b of cases) {
      const x = await h.raw();
      x.write(b);
      await x.waitClosed(1000);
    }
    assert.is(h.metrics.disconnects.frame_too_long, 3);
    assert.is(peer.state.state, 'ready');
  });
});

test.run();
