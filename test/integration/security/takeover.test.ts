// Session takeover: a client whose link died reconnects before the server noticed and gets
// its address back at once, proving it owns the stale session with its lease token or its
// credentials. The link is killed by a proxy that black-holes the connection: no FIN, no
// RST, so the server keeps the stale session until the idle timeout (60 s here).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REFUSAL, KIND_REPLY, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, T_LEASE, type Tlv, credentials, extKind, readRefusal, formatIPv4 } from '../../../protocol/index.js';
import { type Harness, type SdkPeer, equalBytes, ip, ipPacket, nextEvent, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import {
  Proxy,
  type TestClient,
  credsOf,
  leaseOf,
  memoryLogger,
  newSecret,
  rawRequest,
  readyCount,
  replyAddress,
  viaProxy,
  waitReadyCount,
  writeAuth,
} from '../../support/security-kit.js';

let tmp = '';
let n = 0;
test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-takeover-'));
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const ALICE: TestClient = { id: 'alice', secret: newSecret() };
const BOB: TestClient = { id: 'bob', secret: newSecret() };
const SENSOR: TestClient = { id: 'sensor', secret: newSecret(), address: '10.4.0.50' };

/** Server options: the stale session would live a minute; keepalive 1 s so clients notice fast. */
const SLOW_IDLE = { subnet: '10.4.0.0/24', idleTimeout: 60, keepalive: 1 };
/** SDK options: notice a dead link within ~2 s, reconnect within 100 ms. */
const FAST_CLIENT = { timeout: 1, minBackoff: 0.1, maxBackoff: 0.2 };

async function withAuth(fn: (h: Harness) => Promise<void>, opts: Parameters<typeof withServer>[0] = {}) {
  const path = join(tmp, `auth-${++n}.json`);
  await writeAuth(path, [ALICE, BOB, SENSOR]);
  await withServer({ ...SLOW_IDLE, auth: path, ...opts }, fn);
}

/** An SDK client through a fresh proxy; both closed by the harness. */
async function proxied(h: Harness, opts: Parameters<Harness['sdk']>[0] = {}): Promise<{ peer: SdkPeer; proxy: Proxy }> {
  const proxy = await Proxy.start(h.port);
  h.track(proxy);
  const peer = h.sdk({ connect: viaProxy(proxy), ...FAST_CLIENT, ...opts });
  await peer.ready();
  return { peer, proxy };
}

/** Kills the link under `peer` and waits for it to come back; returns what happened. */
async function dieAndReturn(h: Harness, peer: SdkPeer, proxy: Proxy) {
  const takeover = nextEvent<any>(h.server, 'takeover', 10_000);
  const replaced = nextEvent<any>(h.server, 'disconnect', 10_000, (e) => e.reason === 'replaced');
  const oldSession = h.clientAt(peer.address)!;
  const t0 = Date.now();
  proxy.blackhole();
  await waitFor(() => peer.states.some((s) => s.state === 'down'), 5000, 'the client to notice the dead link', () => peer.states);
  assert.ok(oldSession && !oldSession.closed, 'the server still holds the stale session when the client gives up on it');
  const readies = readyCount(peer);
  await waitReadyCount(peer, readies + 1, 5000);
  return { t: Date.now() - t0, takeover: await takeover, replaced: await replaced, oldSession };
}

test('a client whose link died gets its address back at once with its lease; the stale session is closed (replaced)', async () => {
  const logger = memoryLogger();
  await withServer({ ...SLOW_IDLE, logger }, async (h) => {
    const bystander = h.sdk();
    await bystander.ready();
    const { peer, proxy } = await proxied(h, { name: 'roamer' });
    const addr = peer.state.address!;
    assert.ok(peer.client.lease && peer.client.lease.length >= 16, 'the reply carried a lease');
    const { t, takeover, replaced, oldSession } = await dieAndReturn(h, peer, proxy);
    assert.is(peer.state.address, addr, 'the same address');
    assert.ok(t < 8000, `back after ${t} ms, long before the 60 s idle timeout`);
    assert.is(takeover.address, addr);
    assert.is(takeover.by, 'lease');
    assert.is(takeover.replaced, oldSession.id);
    assert.is(replaced.id, oldSession.id);
    assert.match(replaced.detail, /taken over/);
    assert.ok(oldSession.closed);
    assert.is(h.metrics.disconnects.replaced, 1);
    assert.is(h.metrics.refusals.address_in_use ?? 0, 0, 'not refused on the way');
    assert.ok(logger.find('takeover').length === 1 && logger.find('takeover')[0].level === 'info');
    assert.is(h.sessions, 2);
    assert.is(h.pool.size, 2);
    // Traffic flows to the new session, both ways.
    const p = ipPacket(bystander.address, ip(addr), 90, rng(1));
    const before = peer.packets.length;
    bystander.client.send(p);
    await waitFor(() => peer.packets.slice(before).some((x) => equalBytes(x, p)), 3000, 'delivery to the new session');
    const q = ipPacket(ip(addr), bystander.address, 70, rng(2));
    peer.client.send(q);
    await waitFor(() => bystander.packets.some((x) => equalBytes(x, q)), 3000, 'delivery from the new session');
  });
});

test('the lease is renewed at each takeover: the client can die and come back again', async () => {
  await withServer(SLOW_IDLE, async (h) => {
    const proxy = await Proxy.start(h.port);
    h.track(proxy);
    const peer = h.sdk({ connect: viaProxy(proxy), ...FAST_CLIENT });
    const addr = (await peer.ready()).address;
    const leases = [Buffer.from(peer.client.lease!).toString('hex')];
    for (let i = 0; i < 2; i++) {
      await dieAndReturn(h, peer, proxy);
      assert.is(peer.state.address, addr);
      leases.push(Buffer.from(peer.client.lease!).toString('hex'));
    }
    assert.is(new Set(leases).size, 3, 'a new lease each time');
    assert.is(h.metrics.disconnects.replaced, 2);
  });
});

test('a wrong lease does not take over: REFUSE_IN_USE, the holder keeps its session; an old lease is void after a takeover', async () => {
  await withServer(SLOW_IDLE, async (h) => {
    const holder = await h.raw();
    const r0 = await rawRequest(holder, 0, []);
    const addr = replyAddress(r0!);
    const lease = leaseOf(r0!)!;
    assert.ok(lease, 'a lease in the reply');
    const wrong: Array<[string, Tlv[]]> = [
      ['no lease', []],
      ['a random lease', [[T_LEASE, randomBytes(lease.length)]]],
      ['the lease with one bit flipped', [[T_LEASE, Uint8Array.from(lease, (b, i) => (i === 0 ? b ^ 1 : b))]]],
      ['a prefix of the lease', [[T_LEASE, lease.subarray(0, 8)]]],
      ['the lease with a byte more', [[T_LEASE, Uint8Array.from([...lease, 0])]]],
      ['an empty lease', [[T_LEASE, new Uint8Array(0)]]],
    ];
    for (const [name, tlvs] of wrong) {
      const c = await h.raw();
      const f = await rawRequest(c, addr, tlvs);
      assert.is(extKind(f!), KIND_REFUSAL, name);
      assert.is(readRefusal(f!).code, REFUSE_IN_USE, name);
      await c.waitClosed();
    }
    assert.is(h.metrics.disconnects.replaced ?? 0, 0);
    assert.not.ok(holder.closed, 'the holder is untouched');
    // The right lease takes over; after that, the old lease is worth nothing.
    const taker = await h.raw();
    const r1 = await rawRequest(taker, addr, [[T_LEASE, lease]]);
    assert.is(extKind(r1!), KIND_REPLY);
    assert.is(replyAddress(r1!), addr);
    await holder.waitClosed();
    const again = await h.raw();
    const r2 = await rawRequest(again, addr, [[T_LEASE, lease]]);
    assert.is(readRefusal(r2!).code, REFUSE_IN_USE, 'the old lease again');
    assert.not.ok(taker.closed);
    // A seed session has no lease: nothing can take it over.
    const seed = await h.raw();
    const seedAddr = await seed.requestSeed(ip('10.4.0.99'));
    const c = await h.raw();
    const r3 = await rawRequest(c, seedAddr, [[T_LEASE, new Uint8Array(16)]]);
    assert.is(readRefusal(r3!).code, REFUSE_IN_USE);
    assert.not.ok(seed.closed);
  });
});

test('with auth: an SDK client whose link died comes back to its address (credentials and lease)', async () => {
  await withAuth(async (h) => {
    const { peer, proxy } = await proxied(h, { credentials: credsOf(ALICE) });
    const addr = peer.state.address;
    const { t, takeover } = await dieAndReturn(h, peer, proxy);
    assert.is(peer.state.address, addr);
    assert.ok(t < 8000, `${t} ms`);
    // It presented both; the lease alone is proof enough, whatever the holder's silence.
    assert.is(takeover.by, 'lease');
    assert.is(h.clientAt(ip(addr!))!.authId, 'alice');
  });
});

test('with auth: the same credentials take over a stale session silent for a keepalive interval, not a live one; another client\'s never', async () => {
  await withAuth(async (h) => {
    const stale = await h.raw();
    const r0 = await rawRequest(stale, 0, credentials(ALICE.id, ALICE.secret));
    const addr = replyAddress(r0!);
    // Bob asks for Alice's address: in use.
    const bob = await h.raw();
    const rb = await rawRequest(bob, addr, credentials(BOB.id, BOB.secret));
    assert.is(readRefusal(rb!).code, REFUSE_IN_USE);
    assert.not.ok(stale.closed);
    assert.is(h.metrics.disconnects.replaced ?? 0, 0);
    // Alice from a second connection while the first was just heard from: a live session
    // is not evicted by credentials alone (shared or stolen credentials cannot flap it).
    const early = await h.raw();
    const re = await rawRequest(early, addr, credentials(ALICE.id, ALICE.secret));
    assert.is(readRefusal(re!).code, REFUSE_IN_USE);
    assert.not.ok(stale.closed);
    // Silent for more than the keepalive interval (1 s here): now it is stale.
    await new Promise((r) => setTimeout(r, 1300));
    const takeover = nextEvent<any>(h.server, 'takeover', 3000);
    const again = await h.raw();
    const ra = await rawRequest(again, addr, credentials(ALICE.id, ALICE.secret));
    assert.is(extKind(ra!), KIND_REPLY);
    assert.is(replyAddress(ra!), addr);
    const ev = await takeover;
    assert.is(ev.by, 'credentials');
    await stale.waitClosed();
    assert.is(h.metrics.disconnects.replaced, 1);
    // A wrong secret for alice takes nothing over either.
    const liar = await h.raw();
    const rl = await rawRequest(liar, addr, credentials(ALICE.id, 'not-her-secret'));
    assert.is(extKind(rl!), KIND_REFUSAL);
    assert.not.ok(again.closed);
  });
});

test('with auth: a client with a fixed address takes over its own stale session on a dynamic request', async () => {
  await withAuth(async (h) => {
    const stale = await h.raw();
    const r0 = await rawRequest(stale, 0, credentials(SENSOR.id, SENSOR.secret));
    assert.is(formatIPv4(replyAddress(r0!)), SENSOR.address);
    await new Promise((r) => setTimeout(r, 1300)); // silent for more than the keepalive interval
    const again = await h.raw();
    const r1 = await rawRequest(again, 0, credentials(SENSOR.id, SENSOR.secret));
    assert.is(extKind(r1!), KIND_REPLY, 'refused: ' + readRefusal(r1!).text);
    assert.is(formatIPv4(replyAddress(r1!)), SENSOR.address);
    await stale.waitClosed();
    assert.is(h.metrics.disconnects.replaced, 1);
    assert.is(h.pool.size, 1);
  });
});

test('with auth: a fixed address holder cannot be kicked by a request that is then refused (another id presenting its lease)', async () => {
  await withAuth(async (h) => {
    const owner = await h.raw();
    const r0 = await rawRequest(owner, 0, credentials(SENSOR.id, SENSOR.secret));
    assert.is(formatIPv4(replyAddress(r0!)), SENSOR.address);
    const lease = leaseOf(r0!)!;
    // Bob somehow has the sensor's lease (leases cross the plain listener in clear) and asks for its fixed address.
    const bob = await h.raw();
    const rb = await rawRequest(bob, ip(SENSOR.address!), [...credentials(BOB.id, BOB.secret), [T_LEASE, lease]]);
    assert.is(extKind(rb!), KIND_REFUSAL);
    assert.is(readRefusal(rb!).code, REFUSE_NOT_ALLOWED, 'bob may not hold the sensor\'s address');
    await sleep(50);
    assert.is(h.metrics.disconnects.replaced ?? 0, 0, 'the refused request closed the owner\'s session anyway');
    assert.not.ok(owner.closed, 'the owner was kicked off by a request that was refused');
  });
});

test('with auth: another client\'s credentials do not take over even with the holder\'s lease (a session belongs to its id)', async () => {
  await withAuth(async (h) => {
    const alice = await h.raw();
    const r0 = await rawRequest(alice, 0, credentials(ALICE.id, ALICE.secret));
    const addr = replyAddress(r0!);
    const bob = await h.raw();
    const rb = await rawRequest(bob, addr, [...credentials(BOB.id, BOB.secret), [T_LEASE, leaseOf(r0!)!]]);
    assert.is(extKind(rb!), KIND_REFUSAL, 'bob was given alice\'s address');
    assert.is(readRefusal(rb!).code, REFUSE_IN_USE);
    assert.not.ok(alice.closed);
  });
});

test('a spoofed source never reaches another client, also from a client that took over', async () => {
  await withServer(SLOW_IDLE, async (h) => {
    const victim = h.sdk();
    await victim.ready();
    const other = h.sdk();
    await other.ready();
    const first = await h.raw();
    const r0 = await rawRequest(first, 0, []);
    const addr = replyAddress(r0!);
    const taker = await h.raw();
    const r1 = await rawRequest(taker, addr, [[T_LEASE, leaseOf(r0!)!]]);
    assert.is(replyAddress(r1!), addr);
    await first.waitClosed();
    // As the victim, as the other client, as the replaced session's address... only the last is its own.
    taker.write(ipPacket(victim.address, other.address, 60));
    taker.write(ipPacket(other.address, victim.address, 60));
    taker.write(ipPacket(ip('10.4.0.200'), victim.address, 60));
    taker.write(ipPacket(0, victim.address, 60));
    const honest = ipPacket(addr, victim.address, 61);
    taker.write(honest);
    await waitFor(() => victim.packets.length >= 1, 3000, 'the honest packet');
    await sleep(30);
    assert.is(victim.packets.length, 1);
    assert.ok(equalBytes(victim.packets[0], honest));
    assert.is(other.packets.length, 0);
    assert.is(h.metrics.drops.spoofed_source, 4);
    // The replaced connection can send nothing any more.
    assert.ok(first.closed);
  });
});

test('two reconnects racing with the same lease: one wins, the other is refused, nothing leaks', async () => {
  await withServer(SLOW_IDLE, async (h) => {
    const holder = await h.raw();
    const r0 = await rawRequest(holder, 0, []);
    const addr = replyAddress(r0!);
    const lease = leaseOf(r0!)!;
    const a = await h.raw();
    const b = await h.raw();
    const [ra, rb] = await Promise.all([rawRequest(a, addr, [[T_LEASE, lease]]), rawRequest(b, addr, [[T_LEASE, lease]])]);
    const kinds = [extKind(ra!), extKind(rb!)].sort();
    assert.equal(kinds, [KIND_REPLY, KIND_REFUSAL].sort());
    await holder.waitClosed();
    await waitFor(() => h.sessions === 1, 3000, 'one session left', () => h.server.clients());
    assert.is(h.pool.size, 1);
    assert.is(h.switch.size, 1);
  });
});

test.run();
