// Three simplevpn servers (dist/bin, each in a namespace with its own tun) sharing one etcd
// (started here), clients on real tun devices (SDK, test/support/fixtures/cluster-client):
// packets between clients of different servers cross the underlay by the /32 routes each
// server keeps to the others' clients; when a server is killed (-9), its clients reconnect
// to another server and keep their addresses. Topology: test/support/cluster-lab.ts.
//
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { type ClusterClient, ClusterLab, type ClusterServer, clusterUnavailable } from '../../support/cluster-lab.js';
import { until } from '../../support/lab.js';
import { FIXTURES } from '../../support/paths.js';
import { SHELL_LANGS, fences } from '../doc-commands.js';

const skip = clusterUnavailable();
const it = skip ? test.skip : test;
if (skip) console.log(`cluster: skipped: ${skip}`);

let L: ClusterLab;
let s1: ClusterServer, s2: ClusterServer, s3: ClusterServer;
let c1: ClusterClient, c2a: ClusterClient, c2b: ClusterClient, c3: ClusterClient;

if (!skip) {
  test.before(async () => {
    L = new ClusterLab(3);
    [s1, s2, s3] = L.servers as [ClusterServer, ClusterServer, ClusterServer];
    await L.startAll();
  });
  test.after(async () => {
    await L?.destroy();
  });
}

const clients = () => [c1, c2a, c2b, c3];

/**
 * Where a server's kernel routes disagree with who holds what (none to its own clients, one via
 * the holder to each other), the first disagreement; undefined when they agree.
 */
function routesDisagree(servers: ClusterServer[]): string | undefined {
  for (const s of servers) {
    const routes = L.routes(s);
    for (const c of clients()) {
      const holder = L.serverAt(String(c.readies().at(-1)!.server))!;
      const line = routes.find((r) => r.startsWith(c.address() + ' '));
      if (holder === s) {
        if (line !== undefined) return `${s.name}: a route to its own client ${c.name}: ${line}`;
      } else if (!line?.startsWith(`${c.address()} via ${holder.underlay} `)) {
        return `${s.name}: ${c.name} should go via ${holder.name} (${holder.underlay}), route is ${line ?? 'missing'}`;
      }
    }
  }
  return undefined;
}

/** Waits (bounded) until the routes agree; a route moved by an etcd watch arrives a moment after the client's ready line. */
async function routesFollow(servers: ClusterServer[]): Promise<void> {
  try {
    await until('the routes to follow the leases', () => routesDisagree(servers) === undefined, 10_000);
  } catch {
    const why = routesDisagree(servers);
    if (why) assert.unreachable(why);
  }
}

it('three servers join one etcd; a client on each gets its own address; /cluster, /metrics and the kernel routes show the cluster', async () => {
  c1 = L.client('c1', 0);
  c2a = L.client('c2a', 1);
  c2b = L.client('c2b', 1);
  c3 = L.client('c3', 2);
  for (const c of clients()) await c.proc.waitFor('ready', () => true, 20_000);
  const addrs = clients().map((c) => c.address());
  assert.is(new Set(addrs).size, 4, addrs.join());
  assert.is(L.serverAt(String(c2a.readies()[0]!.server)), s2);
  await routesFollow([s1, s2, s3]);
  assert.equal([s1, s2, s3].map((s) => L.routes(s).length), [3, 2, 3], 'one route per client of another server, nothing more');
  const cluster = JSON.parse(await L.status(s1, '/cluster'));
  assert.is(cluster.store, 'etcd');
  assert.is(cluster.reachable, true);
  assert.is(cluster.leases_held, 1);
  assert.is(cluster.leases_elsewhere, 3);
  assert.is(cluster.routes, 3);
  assert.is(cluster.server, 's1');
  assert.equal(cluster.leases.map((l: { address: string }) => l.address).sort(), [...addrs].sort());
  const metrics = await L.status(s2, '/metrics');
  assert.match(metrics, /^simplevpn_lease_store_reachable\{store="etcd"\} 1$/m);
  assert.match(metrics, /^simplevpn_leases_held\{store="etcd"\} 2$/m);
  assert.match(metrics, /^simplevpn_peer_routes\{store="etcd"\} 2$/m);
});

it('ping between clients of different servers, both ways; the servers forward, as README.md says to set', async () => {
  for (const s of [s1, s2, s3]) {
    const r = await s.host.exec(['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter']);
    assert.equal(r.stdout.split('\n').filter(Boolean), ['1', '2'], `${s.name}: ip_forward=1, rp_filter=2`);
  }
  // Without forwarding on the holder's side the packet stops there: the setting is needed.
  await s3.host.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
  assert.not.ok(await c1.host.ping(c3.address(), 1, 1), 'no forwarding on s3: nothing gets through');
  await s3.host.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  assert.ok(await c1.host.ping(c3.address()), 'c1 (s1) -> c3 (s3)');
  assert.ok(await c3.host.ping(c2a.address()), 'c3 (s3) -> c2a (s2)');
  assert.ok(await c2b.host.ping(c1.address()), 'c2b (s2) -> c1 (s1)');
  assert.ok(await c2a.host.ping(c2b.address()), 'c2a -> c2b, both on s2');
});

it('a TCP transfer from a client of s1 to a client of s3 arrives whole', async () => {
  const bytes = 8 * 1024 * 1024;
  const sink = c3.host.node('sink', join(FIXTURES, 'tcp-sink.js'), [c3.address(), '5001']);
  await sink.waitFor('listening');
  const source = c1.host.node('source', join(FIXTURES, 'tcp-source.js'), [c3.address(), '5001', String(bytes)]);
  const sent = await source.waitFor('sent', () => true, 60_000);
  const got = await sink.waitFor('received', () => true, 30_000);
  assert.is(got.bytes, bytes);
  assert.is(got.sha256, sent.sha256);
  console.log(`  8 MB from s1's client to s3's client in ${got.ms} ms`);
});

it('kill -9 of s2: its clients reconnect to another server and keep their addresses within 10 s, none held twice; ping and routes follow', async () => {
  const before = clients().map((c) => c.address());
  const from = [c2a, c2b].map((c) => c.proc.lines.length);
  const t0 = Date.now();
  s2.proc!.signal('SIGKILL');
  await s2.proc!.exited;
  await Promise.all([c2a, c2b].map((c, i) => c.proc.waitFor('ready', () => true, 10_000, from[i])));
  const took = Date.now() - t0;
  console.log(`  s2's clients ready again on another server ${took} ms after kill -9`);
  assert.ok(took < 10_000, `${took} ms`);
  assert.equal(
    clients().map((c) => c.address()),
    before,
    'every client keeps its address',
  );
  for (const c of [c2a, c2b]) assert.is.not(L.serverAt(String(c.readies().at(-1)!.server)), s2);
  const takeovers = [s1, s3].flatMap((s) => s.proc!.lines.filter((l) => l.event === 'cluster_takeover'));
  assert.is(takeovers.length, 2, 'taken over with their lease tokens, before the dead server\'s lease ran out');
  await routesFollow([s1, s3]);
  assert.is(L.routes(s1).length + L.routes(s3).length, 4, 'one route per client of the other server, nothing more');
  for (const s of [s1, s3]) assert.not.ok(L.routes(s).some((r) => r.includes(` via ${s2.underlay} `)), `${s.name}: no route via the dead s2`);
  assert.ok(await c1.host.ping(c2a.address()), 'c1 -> c2a');
  assert.ok(await c2b.host.ping(c3.address()), 'c2b -> c3');
  const seen = JSON.parse(await L.status(s3, '/cluster')).leases.map((l: { address: string }) => l.address);
  assert.is(new Set(seen).size, seen.length, 'one holder per address');
});

it('s2 starts again and rejoins; its clients stay where they are; a new client of s2 reaches all', async () => {
  await L.startServer(1);
  const c4 = L.client('c4', 1);
  await c4.proc.waitFor('ready', () => true, 15_000);
  assert.not.ok(clients().map((c) => c.address()).includes(c4.address()));
  await until("s2's routes", () => L.routes(s2).length === 4, 10_000);
  assert.ok(await c4.host.ping(c1.address()), 'c4 (s2) -> c1 (s1)');
  assert.ok(await c4.host.ping(c2a.address()), "c4 (s2) -> c2a (s2's old client, now elsewhere)");
});

it("README's VXLAN lines, as printed, on two hosts in different networks: their advertise addresses become neighbours, and a server's route via one carries packets", async () => {
  const f = fences('README.md').find((x) => SHELL_LANGS.has(x.lang) && x.lines.some((l) => l.text.includes('type vxlan')));
  assert.ok(f, 'the VXLAN lines in README.md');
  const one = f!.lines.map((l) => l.text.trim()).filter((t) => t && !t.startsWith('#'));
  // Server 2's lines, as the README says to change them.
  const two = one.map((l) => l.replace('local 203.0.113.1', 'local 198.51.100.2').replace('dst 198.51.100.2', 'dst 203.0.113.1').replace('172.31.0.1/24', '172.31.0.2/24'));
  assert.ok(two.some((l, i) => l !== one[i]));
  const v1 = L.lab.host('v1');
  const v2 = L.lab.host('v2');
  // Two networks: each public address alone on its side, the other reached through the wire.
  const w = L.wire(v1, v2);
  for (const [h, dev, mine, peer] of [
    [v1, w.a, '203.0.113.1', '198.51.100.2'],
    [v2, w.b, '198.51.100.2', '203.0.113.1'],
  ] as const) {
    assert.is((await h.exec(['ip', 'addr', 'add', `${mine}/32`, 'dev', dev])).code, 0);
    assert.is((await h.exec(['ip', 'route', 'add', `${peer}/32`, 'dev', dev])).code, 0);
  }
  for (const [h, lines] of [
    [v1, one],
    [v2, two],
  ] as const) {
    for (const line of lines) {
      const r = await h.exec(['bash', '-c', line]);
      assert.is(r.code, 0, `${h.name}: ${line}: ${r.stderr}`);
    }
  }
  assert.ok(await v1.ping('172.31.0.2', 2), 'neighbours over VXLAN');
  // What a server does for a client of the other: a host route via its advertise address.
  assert.is((await v2.exec(['ip', 'addr', 'add', '10.99.0.5/32', 'dev', 'lo'])).code, 0);
  assert.is((await v1.exec(['ip', 'route', 'replace', '10.99.0.5/32', 'via', '172.31.0.2', 'proto', '157'])).code, 0);
  assert.ok(await v1.ping('10.99.0.5', 2), 'routed across the segment');
});

test.run();
