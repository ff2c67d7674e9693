// The cluster's lease store over an etcd in memory (test/support/fake-etcd.ts) and a manual
// clock: what it decides, without etcd. Several stores share one fake etcd, as servers share
// one cluster; a store's connection can be cut from it. The same store against the real
// etcd, in the real server, is tested in test/integration/cluster/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatIPv4, parseIPv4 } from '../../../../protocol/index.js';
import { EtcdLeaseStore } from '../../../../server/src/cluster/etcd-lease-store.js';
import type { RouteTable } from '../../../../server/src/cluster/peer-routes.js';
import type { LeaseClaim } from '../../../../server/src/control/lease-store.js';
import { FakeEtcd, ManualClock, settle } from '../../../support/fake-etcd.js';

const ip = (s: string) => parseIPv4(s);
const GW = ip('10.9.0.1');

class FakeRoutes implements RouteTable {
  readonly table = new Map<string, string>();
  flushes = 0;
  replace(a: string, via: string) {
    this.table.set(a, via);
  }
  remove(a: string) {
    this.table.delete(a);
  }
  async settled() {}
  async flush() {
    this.flushes++;
    this.table.clear();
  }
}

function server(etcd: FakeEtcd, name: string, via: string, opts: { subnet?: string; ttl?: number } = {}) {
  const conn = etcd.connection();
  const evicted: Array<{ address: string; code: string; at: number }> = [];
  const events: Array<{ name: string; fields: Record<string, unknown> }> = [];
  const routes = new FakeRoutes();
  const [net, prefix] = (opts.subnet ?? '10.9.0.0/24').split('/');
  const store = new EtcdLeaseStore({
    network: ip(net!),
    prefix: Number(prefix),
    reserved: [GW],
    connect: async () => conn,
    keyPrefix: '/t/',
    ttl: opts.ttl ?? 10,
    id: name,
    advertise: via,
    localAddress: async () => via,
    endpoints: 'fake',
    hooks: {
      evict: (a, code) => evicted.push({ address: formatIPv4(a), code, at: etcd.clock.now() }),
      event: (_level, n, fields) => events.push({ name: n, fields }),
    },
    openRoutes: () => routes,
    clock: etcd.clock,
    startWaitMs: 1000,
  });
  return { store, conn, evicted, events, routes, via };
}

const bytes = (s: string) => Buffer.from(s.padEnd(16, '.'));
/** A claim as admission makes it: the token of the reply (base64url) and what the client presented. */
function claim(token: string | null, presented: string | null = null, client = '', proven = false): LeaseClaim {
  return { token: token && bytes(token).toString('base64url'), client, proven, presented: presented ? bytes(presented) : null };
}

async function cluster(n = 2, ttl = 10) {
  const clock = new ManualClock();
  const etcd = new FakeEtcd(clock);
  const servers = Array.from({ length: n }, (_, i) => server(etcd, `s${i + 1}`, `198.18.0.${i + 1}`, { ttl }));
  for (const s of servers) await s.store.open();
  return { clock, etcd, servers };
}

test('two servers allocate at once: never one address twice; each routes the other\'s via its underlay address', async () => {
  const { servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  const got = await Promise.all([...Array(60)].map((_, i) => (i % 2 ? b : a).store.allocate(0, false, i + 1, claim(`t${i}`))));
  assert.ok(got.every((x) => typeof x === 'number'), JSON.stringify(got));
  assert.is(new Set(got).size, 60, 'no duplicate');
  assert.ok(a.conn.batches <= 2 && b.conn.batches <= 2, `asked in one turn, recorded in one transaction or two: ${a.conn.batches}, ${b.conn.batches}`);
  await settle();
  for (const [i, x] of got.entries()) {
    const mine = i % 2 ? b : a;
    const other = i % 2 ? a : b;
    assert.ok(other.store.isLeased(x as number), 'known to the other server');
    assert.is(other.routes.table.get(formatIPv4(x as number)), mine.via, 'routed via its holder');
    assert.not.ok(mine.routes.table.has(formatIPv4(x as number)), 'no route to a client of its own');
  }
  assert.equal(a.store.health().held, 30);
  assert.equal(a.store.health().elsewhere, 30);
});

test('an address held elsewhere is in use, unless the client presents its lease token: then the old server closes its session and routes the address to the new one', async () => {
  const { etcd, servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  const X = ip('10.9.0.50');
  assert.is(await a.store.allocate(X, false, 7, claim('tok-A')), X);
  await settle();
  assert.is(await b.store.allocate(X, false, 1, claim('tok-B')), 'in_use', 'no token');
  assert.is(await b.store.allocate(X, false, 2, claim('tok-C', 'wrong')), 'in_use', 'a wrong token');
  assert.is(await b.store.allocate(X, false, 3, claim('tok-D', 'tok-A')), X, 'the token of its lease');
  await settle();
  assert.equal(a.evicted, [{ address: '10.9.0.50', code: 'replaced', at: etcd.clock.now() }]);
  assert.is(a.routes.table.get('10.9.0.50'), b.via);
  assert.not.ok(b.routes.table.has('10.9.0.50'));
  // Admission then releases the ended session's address on A: B's key stays.
  a.store.release(X, 7);
  await settle();
  assert.ok(etcd.keys.has('/t/leases/10.9.0.50'));
  assert.ok(b.events.some((e) => e.name === 'cluster_takeover' && e.fields.from_server === 's1'));
});

test('a lease whose client proved an auth id is taken over only with the token and the same id', async () => {
  const { servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  const X = ip('10.9.0.60');
  assert.is(await a.store.allocate(X, false, 1, claim('tok', null, 'dev-1', true)), X);
  assert.is(await b.store.allocate(X, false, 2, claim('new', 'tok', 'dev-2', true)), 'in_use', 'another id');
  assert.is(await b.store.allocate(X, false, 3, claim('new', 'tok', 'dev-1', false)), 'in_use', 'the name alone, not proved');
  assert.is(await b.store.allocate(X, false, 4, claim('new', null, 'dev-1', true)), 'in_use', 'the id without the token: the holder may be alive on its server');
  assert.is(await b.store.allocate(X, false, 5, claim('new', 'tok', 'dev-1', true)), X);
});

test('release deletes the key; the same server asked for the address at once waits for that, and grants it', async () => {
  const { etcd, servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  const X = ip('10.9.0.70');
  assert.is(await a.store.allocate(X, false, 1, claim('t')), X);
  a.store.release(X, 1);
  assert.is(await a.store.allocate(X, false, 2, claim('u')), X);
  a.store.release(X, 2);
  await settle();
  assert.not.ok(etcd.keys.has('/t/leases/10.9.0.70'));
  assert.not.ok(b.store.isLeased(X));
  assert.not.ok(b.routes.table.has('10.9.0.70'), 'the route goes with the lease');
  assert.is(await b.store.allocate(X, false, 1, claim('v')), X);
});

test('cut from etcd: sessions go on, assignments are refused saying why, and the sessions close before etcd can free their addresses', async () => {
  const { clock, etcd, servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  const X = ip('10.9.0.80');
  assert.is(await a.store.allocate(X, false, 1, claim('t')), X);
  await clock.advance(3000); // a keepalive or so
  a.conn.cut();
  const refused = await a.store.allocate(0, false, 2, claim('u'));
  assert.is(refused, 'unavailable');
  assert.match(a.store.unavailableDetail(), /etcd\) is unreachable/);
  assert.is(a.store.health().reachable, false);
  assert.ok(a.events.some((e) => e.name === 'cluster_unreachable'));
  assert.equal(a.evicted, [], 'sessions go on for now');
  // Time passes; etcd expires the lease when it is due. Who acts first?
  let keyGoneAt = 0;
  for (let i = 0; i < 100 && !keyGoneAt; i++) {
    await clock.advance(100);
    etcd.expire();
    if (!etcd.keys.has('/t/leases/10.9.0.80')) keyGoneAt = clock.now();
    if (!keyGoneAt) assert.is(await b.store.allocate(X, false, 9, claim('x')), 'in_use', 'not free while the key is there');
  }
  assert.ok(keyGoneAt > 0, 'the lease expired');
  assert.is(a.evicted.length, 1);
  assert.is(a.evicted[0]!.code, 'lease_lost');
  assert.ok(a.evicted[0]!.at < keyGoneAt, `closed at ${a.evicted[0]!.at}, before etcd freed the address at ${keyGoneAt}`);
  assert.ok(keyGoneAt - a.evicted[0]!.at >= 1000, 'with a margin');
  assert.ok(a.events.some((e) => e.name === 'cluster_lease_lost'));
  await settle();
  assert.is(await b.store.allocate(X, false, 10, claim('y')), X, 'free for the cluster once etcd freed it');
  // Back in touch: a new lease, and assignments again.
  a.conn.join();
  await clock.advance(5000);
  assert.is(a.store.health().reachable, true);
  assert.is(a.events.filter((e) => e.name === 'cluster_joined').length, 2);
  assert.type(await a.store.allocate(0, false, 3, claim('z')), 'number');
  assert.ok(a.store.isLeased(X), "it knows B's lease again");
  assert.is(a.routes.table.get('10.9.0.80'), b.via);
});

test('a renewal that etcd answers with TTL 0 (the lease expired meanwhile): the sessions close at once', async () => {
  const { clock, etcd, servers } = await cluster(1);
  const a = servers[0]!;
  const X = ip('10.9.0.90');
  assert.is(await a.store.allocate(X, false, 1, claim('t')), X);
  a.conn.cut();
  for (const l of etcd.leases.values()) l.expiresAt = clock.now(); // as if the process had been stopped
  etcd.expire();
  a.conn.join(); // the deletion it missed is held back until now
  await clock.advance(2600);
  assert.equal(
    a.evicted.map((e) => e.code),
    ['lease_lost'],
  );
});

test('every server of a cluster hands out the same subnet: one with another fails to start and says what differs', async () => {
  const clock = new ManualClock();
  const etcd = new FakeEtcd(clock);
  await server(etcd, 's1', '198.18.0.1').store.open();
  const other = server(etcd, 's2', '198.18.0.2', { subnet: '10.9.1.0/24' });
  try {
    await other.store.open();
    assert.unreachable('open() should fail');
  } catch (err: any) {
    assert.match(err.message, /--subnet 10\.9\.0\.0\/24.*this server --subnet 10\.9\.1\.0\/24/);
  }
});

test('the etcd client cannot be loaded (an optional dependency left out): open() fails, saying so', async () => {
  const clock = new ManualClock();
  const s = new EtcdLeaseStore({
    network: ip('10.9.0.0'),
    prefix: 24,
    reserved: [GW],
    connect: async () => {
      throw new Error('--etcd needs the etcd3 package, an optional dependency of simplevpn that is not installed here');
    },
    keyPrefix: '/t/',
    ttl: 10,
    id: 's1',
    advertise: '198.18.0.1',
    localAddress: async () => '198.18.0.1',
    endpoints: 'fake',
    hooks: { evict: () => {}, event: () => {} },
    openRoutes: null,
    clock,
  });
  try {
    await s.open();
    assert.unreachable('open() should fail');
  } catch (err: any) {
    assert.match(err.message, /needs the etcd3 package/);
  }
});

test('close() revokes the lease: the keys go at once, the others forget them, the routes are flushed', async () => {
  const { etcd, servers } = await cluster();
  const [a, b] = servers as [ReturnType<typeof server>, ReturnType<typeof server>];
  for (let i = 0; i < 5; i++) assert.type(await a.store.allocate(0, false, i + 1, claim(`t${i}`)), 'number');
  assert.type(await b.store.allocate(0, false, 1, claim('b')), 'number');
  await settle();
  assert.is(b.routes.table.size, 5);
  await a.store.close();
  await settle();
  assert.is([...etcd.keys.keys()].filter((k) => k.startsWith('/t/leases/')).length, 1, "only B's lease is left");
  assert.is(b.routes.table.size, 0);
  assert.ok(a.routes.flushes >= 2, 'flushed at open and at close');
  assert.ok(a.conn.closed);
});

test.run();
