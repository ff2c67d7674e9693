// Session takeover (control/admission.ts takeOver()) when the sessions are native
// (linux/native/hub.c, server/src/data/native-sessions.ts): a client that reconnects with the
// lease token of its native session gets its addresses back (IPv4 and IPv6); the old session
// is detached from the hub and ends 'replaced', the new one moves to the hub, and packets
// between it and another native session are switched in C both ways, byte for byte. One
// holder of each address in the switch, the pool, the hub and /clients; counters that add up;
// no descriptor left. Then the same with the old connection half-closed by its client (FIN)
// around the takeover request, in each order the server can read the two in. Needs the built
// addon (no root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { openServerHub } from '../../../linux/server-hub.js';
import { TunError, load } from '../../../linux/tun.js';
import { KIND_REPLY, T_IPV6, T_LEASE, type Tlv, extKind, formatIPv4, ipv6Request, readIpv6Config } from '../../../protocol/index.js';
import { packet6, v6 } from '../../support/ipv6-packets.js';
import { granted, jsReads, nativeAt } from '../../support/native-hub.js';
import { leaseOf, replyAddress } from '../../support/security-kit.js';
import { type Harness, type RawClient, equalBytes, extRequest, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';

const fds = () => readdirSync('/proc/self/fd').length;
const loaded = !(load() instanceof TunError);

/** Any IPv6 address: the prefix and the client's IPv4 address, the same again after a takeover. */
const ASK6: Tlv[] = [[T_IPV6, ipv6Request()]];

/** A server with IPv6, its subnets numbered by `n`. */
const options = (n: number) => ({ subnet: `10.9.${n}.0/24`, subnet6: `fd00:9${n}::/64`, openHub: openServerHub });

interface Ev {
  name: string;
  id?: number;
  reason?: string;
  detail?: string;
  address?: string;
  replaced?: number;
  by?: string;
}

/** The server's takeover, disconnect and native_path_failed events, in order. */
function recordEvents(h: Harness): Ev[] {
  const seen: Ev[] = [];
  for (const name of ['takeover', 'disconnect', 'native_path_failed']) h.server.on(name, (f: object) => seen.push({ name, ...f }));
  return seen;
}

/** Sessions attached to the hub, as native-sessions.ts counts them (a private field: read here only). */
function hubSessions(h: Harness): number {
  return (h.server as unknown as { native: { slots: Map<unknown, number> } }).native.slots.size;
}

interface Peer {
  c: RawClient;
  address: number;
  address6: Uint8Array;
}

/** `count` packets from `from` to `to`, IPv4 and IPv6 mixed, sent in writes cut at random bytes; what was sent. */
async function sendSplit(from: Peer, to: Peer, count: number, r: () => number): Promise<Uint8Array[]> {
  const packets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const size = Math.floor(r() * 1400);
    packets.push(r() < 0.5 ? ipPacket(from.address, to.address, 20 + size, r) : packet6(from.address6, to.address6, Uint8Array.from({ length: size }, () => r() * 256)));
  }
  const stream = Buffer.concat(packets);
  for (let at = 0; at < stream.length; ) {
    const n = 1 + Math.floor(r() * 4000);
    await from.c.writeAll(stream.subarray(at, at + n));
    at += n;
  }
  return packets;
}

/** `c` received `packets`, in order and byte for byte, after the first `skip` frames, and nothing else. */
async function receivedExactly(c: RawClient, packets: Uint8Array[], skip: number, what: string): Promise<void> {
  await waitFor(() => c.frames.length >= skip + packets.length, 5000, what, () => ({ got: c.frames.length - skip, want: packets.length }));
  await sleep(20);
  assert.is(c.frames.length, skip + packets.length, `${what}: nothing more`);
  for (let i = 0; i < packets.length; i++) assert.ok(equalBytes(c.frames[skip + i], packets[i]), `${what}: packet ${i} byte for byte`);
}

/** The request of a client back for `old`'s addresses, with its lease. */
const takeoverRequest = (old: Peer, lease: Uint8Array) => extRequest(old.address, [[T_LEASE, lease], ...ASK6]);

/** `c`'s answer to its takeover request: granted, `old`'s addresses again. */
async function grantedBack(c: RawClient, old: Peer): Promise<Peer> {
  await waitFor(() => c.frames.length > 0 || c.closed, 3000, 'the answer to the takeover request');
  const reply = c.frames.shift();
  assert.ok(reply && extKind(reply) === KIND_REPLY, 'granted, not refused');
  assert.is(replyAddress(reply!), old.address, 'the IPv4 address it held');
  const six = readIpv6Config(reply!);
  assert.ok(six && equalBytes(v6(six.address), old.address6), 'the IPv6 address it held');
  return { c, address: old.address, address6: old.address6 };
}

/** B and A granted (IPv4 and IPv6) and native, A's lease, and packets both ways between them through C. */
async function nativePair(h: Harness, seed: number) {
  const peer = async (): Promise<Peer & { reply: Uint8Array }> => {
    const g = await granted(h, undefined, 0, ASK6);
    assert.ok(g.address6, 'granted IPv6');
    await nativeAt(h, g.address);
    return { c: g.c, address: g.address, address6: g.address6!, reply: g.reply };
  };
  const b = await peer();
  const a = await peer();
  const lease = leaseOf(a.reply);
  assert.ok(lease, 'a lease in the reply');
  const r = rng(seed);
  const toB = await sendSplit(a, b, 3, r);
  const toA = await sendSplit(b, a, 2, r);
  await receivedExactly(b.c, toB, 0, 'A -> B');
  await receivedExactly(a.c, toA, 0, 'B -> A');
  const old = h.clientAt(a.address)!;
  return { a, b, lease: lease!, old, sentByA: toB.length, sentToA: toA.length };
}

/**
 * After A' took A's addresses over, beside B: both native, packets both ways switched in C,
 * one holder of each address everywhere, and the server's counters the sum of what every
 * client sent (`earlier`: packets received, and delivered, before the takeover).
 */
async function checkAfter(h: Harness, ev: Ev[], a2: Peer, b: Peer, earlier: number, seed: number): Promise<void> {
  await nativeAt(h, a2.address);
  assert.is(h.sessionAt(b.address)!.native, true);
  assert.equal(ev.filter((e) => e.name === 'native_path_failed'), [], 'the hub took the new session (it refuses an address it still holds)');
  const aReads = jsReads(h, a2.address);
  const bReads = jsReads(h, b.address);
  const r = rng(seed);
  const bSkip = b.c.frames.length;
  const toB = await sendSplit(a2, b, 200, r);
  const toA = await sendSplit(b, a2, 150, r);
  await receivedExactly(b.c, toB, bSkip, "A' -> B");
  await receivedExactly(a2.c, toA, 0, "B -> A'");
  assert.is(aReads.n, 0, "switched in C: no chunk of A' reached JavaScript");
  assert.is(bReads.n, 0, 'switched in C: no chunk of B reached JavaScript');

  // One holder of each address: the switch, the pool, the hub, /clients.
  const holder = h.clientAt(a2.address)!;
  assert.is(h.switch.size, 2, 'two IPv4 addresses bound');
  assert.is(h.switch.lookup(a2.address), holder.session);
  assert.is(h.switch.lookup6(a2.address6, 0), holder.session, 'the IPv6 address bound to the new session');
  assert.is(h.switch.lookup6(b.address6, 0), h.sessionAt(b.address));
  assert.is(h.pool.size, 2, 'two addresses leased');
  assert.is(hubSessions(h), 2, 'two sessions in the hub');
  const clients = h.server.clients();
  assert.is(clients.length, 2, 'two connections');
  assert.equal(clients.filter((c) => c.address === formatIPv4(a2.address)).map((c) => c.id), [holder.id], "/clients: A' alone at the address");

  // Counters: every packet a client sent was received and delivered once; A' counts only its own.
  const text = h.server.metricsText();
  const m = h.metrics;
  const total = earlier + toB.length + toA.length;
  assert.is(m.rxPackets, total, 'received, server-wide');
  assert.is(m.txPackets, total, 'delivered, server-wide');
  assert.is(Object.values(m.drops).reduce((x, y) => x + y, 0), 0, 'no drop');
  assert.equal(m.refusals, {}, 'no refusal');
  const s = holder.session;
  assert.is(s.rxPackets, toB.length, "A' counts what it sent");
  assert.is(s.rxBytes, toB.reduce((n, p) => n + p.length, 0));
  assert.is(s.txPackets, toA.length, "A' counts what it was sent");
  assert.match(text, /^simplevpn_sessions 2$/m);
  assert.match(text, /^simplevpn_addresses_in_use 2$/m);
}

if (!loaded) {
  test.skip('takeover between native sessions (binding not built)', () => {});
} else {
  test('a client back with its lease takes its native session over: the old one ends replaced, the new one switches in C', async () => {
    await withServer(options(8), async (h) => {
      const ev = recordEvents(h);
      const { a, b, lease, old, sentByA, sentToA } = await nativePair(h, 31);
      const before = fds();
      const c = await h.raw();
      c.write(takeoverRequest(a, lease));
      const a2 = await grantedBack(c, a);
      await a.c.waitClosed();
      assert.is(a.c.error, null, 'the old connection closed cleanly (FIN, not reset)');
      const holder = h.clientAt(a.address)!;
      assert.is.not(holder, old);
      assert.ok(old.closed && !old.session.native, 'the old session is closed and out of the hub');
      const ended = ev.filter((e) => e.name === 'disconnect');
      const took = ev.filter((e) => e.name === 'takeover');
      assert.equal(ended.map((e) => [e.id, e.reason, e.detail]), [[old.id, 'replaced', `taken over by connection ${holder.id} from ${holder.remote}`]], 'the old session ended once, replaced');
      assert.equal(took.map((e) => [e.id, e.address, e.replaced, e.by]), [[holder.id, formatIPv4(a.address), old.id, 'lease']]);
      assert.ok(ev.indexOf(ended[0]) < ev.indexOf(took[0]), 'ended before the takeover is told');
      assert.is(h.metrics.disconnects.replaced, 1);
      assert.is(old.session.rxPackets, sentByA, "the old session's counters were taken from the hub at its detach");
      assert.is(old.session.txPackets, sentToA);
      await checkAfter(h, ev, a2, b, sentByA + sentToA, 32);
      assert.match(h.server.metricsText(), /^simplevpn_disconnects_total\{reason="replaced"\} 1$/m);
      await waitFor(() => fds() === before, 3000, 'one connection in, one out: as many descriptors as before', () => ({ before, now: fds() }));
    });
  });

  // A's client half-closes its connection (FIN) around A''s takeover request. The server reads
  // sockets in the order their bytes arrived (epoll's ready list), so the order the two are
  // written in is the order it handles them in; either way the addresses end with one holder.
  const orders = [
    { name: 'the server ended A at its FIN before the request was sent: no takeover, the addresses were free', fin: 'ended first', ends: 'client_closed' },
    { name: "A's FIN and then the request, both unread when the server's loop turns: A ends at its FIN first", fin: 'first', ends: 'client_closed' },
    { name: "the request and then A's FIN, both unread: A, its FIN unread, is replaced", fin: 'second', ends: 'replaced' },
  ] as const;
  for (const [i, o] of orders.entries()) {
    test(`A's native connection half-closed by its client around the takeover (${o.name})`, async () => {
      await withServer(options(i + 1), async (h) => {
        const ev = recordEvents(h);
        const { a, b, lease, old, sentByA, sentToA } = await nativePair(h, 40 + i);
        const before = fds();
        const c = await h.raw();
        // Accepted, and polled (libuv adds a socket to epoll on its loop's next turn): from here
        // the server reads A's FIN and A''s request in the order they come.
        await waitFor(() => h.sessions === 3, 3000, "the server to take A''s connection");
        await sleep(20);
        const request = takeoverRequest(a, lease);
        if (o.fin === 'ended first') {
          a.c.sock.end();
          await waitFor(() => old.closed, 3000, 'the server to end the half-closed session');
          c.write(request);
        } else if (o.fin === 'first') {
          // 'finish': the FIN has been sent; the request follows before the loop polls again.
          a.c.sock.once('finish', () => c.write(request));
          a.c.sock.end();
        } else {
          c.write(request);
          a.c.sock.end(); // sent at the loop's next turn, before it polls
        }
        const a2 = await grantedBack(c, a);
        await a.c.waitClosed();
        const ended = ev.filter((e) => e.name === 'disconnect');
        assert.equal(ended.map((e) => [e.id, e.reason]), [[old.id, o.ends]], 'the old session ended once, in the order the server read the two');
        assert.is(ev.filter((e) => e.name === 'takeover').length, o.ends === 'replaced' ? 1 : 0);
        assert.is(h.metrics.disconnects[o.ends], 1);
        await checkAfter(h, ev, a2, b, sentByA + sentToA, 50 + i);
        await waitFor(() => fds() === before, 3000, 'as many descriptors as before', () => ({ before, now: fds() }));
      });
    });
  }
}

test.run();
