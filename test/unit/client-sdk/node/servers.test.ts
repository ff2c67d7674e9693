// ServerRotation (client-sdk/node/servers.ts) with the SDK's Client, a manual clock and one
// scripted network per server: which server each attempt dials, when, and what it asks for.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../../../../client-sdk/src/client.js';
import type { StateInfo } from '../../../../client-sdk/src/client.js';
import { ServerRotation } from '../../../../client-sdk/node/servers.js';
import { explainError } from '../../../../client-sdk/node/tcp.js';
import { T_LEASE, eachTlv, formatIPv4, SRC, readU32 } from '../../../../protocol/index.js';
import { FakeClock, FakeNet, extReply } from '../../../support/sdk-fakes.js';

const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

function cluster(n: number) {
  const clock = new FakeClock();
  const nets = Array.from({ length: n }, () => new FakeNet());
  const rotation = new ServerRotation(
    nets.map((x) => x.connect),
    nets.map((_, i) => `s${i + 1}`),
  );
  const states: StateInfo[] = [];
  const dialled: Array<{ server: string; at: number }> = [];
  const client = new Client({
    connect: rotation.connect,
    tun: { write: () => true },
    clock,
    random: () => 0.5, // every backoff delay at 3/4 of its cap: 750, 1500, 3000... ms
    onState: (s) => {
      states.push(s);
      // 'connecting' is reported just before the SDK dials: `next` names the server.
      if (s.state === 'connecting') dialled.push({ server: rotation.servers[rotation.next]!, at: clock.now() });
    },
  });
  const total = () => nets.reduce((k, x) => k + x.sockets.length, 0);
  return { clock, nets, rotation, client, states, dialled, total };
}

/** The address and lease token a request asks for. */
function asked(frame: Uint8Array): { address: string; lease: number[] | null } {
  let lease: number[] | null = null;
  eachTlv(frame, (type, v) => {
    if (type === T_LEASE) lease = Array.from(v);
  });
  return { address: formatIPv4(readU32(frame, SRC)), lease };
}

test('stays on a server while its connection lasts; when it ends, the next attempt dials the next server and asks for the same address with the lease token', () => {
  const c = cluster(3);
  c.client.start();
  const first = c.nets[0]!.last;
  first.open();
  first.deliver(extReply('10.0.0.7', { prefix: 24, lease: TOKEN }));
  assert.is(c.states.at(-1)!.state, 'ready');
  c.clock.advance(10_000); // a live link: nothing dials
  assert.is(c.total(), 1);

  first.end('end of stream'); // s1 killed: the kernel closes its sockets
  assert.is(c.states.at(-1)!.state, 'down');
  c.clock.advance(750);
  assert.is(c.nets[1]!.sockets.length, 1, 'the second server is dialled after one backoff');
  const second = c.nets[1]!.last;
  second.open();
  assert.equal(asked(second.writes[0]!), { address: '10.0.0.7', lease: Array.from(TOKEN) });
  second.deliver(extReply('10.0.0.7', { prefix: 24, lease: TOKEN }));
  assert.is(c.client.address, '10.0.0.7');
  assert.equal(
    c.dialled.map((d) => `${d.server}@${d.at}`),
    ['s1@0', 's2@10750'],
  );
});

test('a server that refuses or cannot be reached passes the turn; the list wraps round; the backoff grows across the whole list and resets once ready', () => {
  const c = cluster(3);
  c.client.start();
  c.nets[0]!.last.fail('connect_failed', 'connection refused');
  c.clock.advance(750);
  c.nets[1]!.last.fail('connect_failed', 'connection refused');
  c.clock.advance(1500);
  c.nets[2]!.last.fail('connect_failed', 'connection refused');
  c.clock.advance(3000);
  assert.is(c.nets[0]!.sockets.length, 2, 'round to the first again');
  c.nets[0]!.last.fail('connect_failed', 'connection refused');
  c.clock.advance(6000);
  const s2 = c.nets[1]!.last;
  assert.is(c.nets[1]!.sockets.length, 2);
  s2.open();
  s2.deliver(extReply('10.0.0.9', { prefix: 24 }));
  assert.equal(
    c.dialled.map((d) => `${d.server}@${d.at}`),
    ['s1@0', 's2@750', 's3@2250', 's1@5250', 's2@11250'],
  );
  s2.end();
  c.clock.advance(750);
  assert.is(c.nets[2]!.sockets.length, 2, 'after a ready link, the first delay again, to the next server');
});

test('a connection that times out (no answer) moves on too; a stale close of an earlier connection does not skip a server', () => {
  const c = cluster(2);
  c.client.start();
  c.nets[0]!.last.open(); // opens, never answers the request
  c.clock.advance(10_000); // the request times out: the SDK closes it
  assert.is(c.states.at(-1)!.state, 'down');
  c.clock.advance(750);
  assert.is(c.nets[1]!.sockets.length, 1);
  assert.is(c.rotation.next, 1, 'the connection to s2 is live: s2 stays next');
  c.nets[0]!.sockets[0]!.fail('error', 'late'); // already closed: ignored
  assert.is(c.rotation.next, 1);
});

test('a Connect that throws counts as a failed connection: the next attempt dials the next server', () => {
  let calls = 0;
  const ok = new FakeNet();
  const r = new ServerRotation([
    () => {
      calls++;
      throw new Error('no route');
    },
    ok.connect,
  ]);
  const clock = new FakeClock();
  const client = new Client({ connect: r.connect, tun: { write: () => true }, clock, random: () => 0.5 });
  client.start();
  assert.is(calls, 1);
  clock.advance(750);
  assert.is(ok.sockets.length, 1);
  client.close();
});

test('one server is a list of one; none is a mistake', () => {
  const net = new FakeNet();
  const r = new ServerRotation([net.connect]);
  const clock = new FakeClock();
  const client = new Client({ connect: r.connect, tun: { write: () => true }, clock, random: () => 0.5 });
  client.start();
  net.last.fail('connect_failed');
  clock.advance(750);
  assert.is(net.sockets.length, 2);
  assert.is(r.next, 0);
  client.close();
  assert.throws(() => new ServerRotation([]), /at least one server/);
});

test('a name with several addresses none of which answered (node:net\'s AggregateError) is a failed connection, each address\'s reason said', () => {
  const one = (address: string, code: string) => Object.assign(new Error(`connect ${code} ${address}:2002`), { code, syscall: 'connect', address, port: 2002 });
  const e = Object.assign(new AggregateError([one('10.0.0.1', 'ECONNREFUSED'), one('10.0.0.2', 'EHOSTUNREACH')], ''), { code: 'EHOSTUNREACH' });
  assert.equal(explainError(e as never, false), ['connect_failed', 'cannot connect to 10.0.0.1:2002: connection refused (ECONNREFUSED); cannot connect to 10.0.0.2:2002: host unreachable (EHOSTUNREACH)']);
});

test.run();
