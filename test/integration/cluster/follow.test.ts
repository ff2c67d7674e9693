// simplevpn-client (dist/bin, on a real tun) follows a cluster: given several servers
// (-s A,B,C) or a name with several addresses, when its server is killed (-9) it reaches
// another within 10 s, asks there for its address with its lease token, keeps it (the
// servers share leases through etcd), and packets flow again. Three servers on one etcd in
// namespaces: test/support/cluster-lab.ts.
//
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ClusterClient, ClusterLab, type ClusterServer, PORT, clusterUnavailable } from '../../support/cluster-lab.js';
import { type Host, type Proc, until } from '../../support/lab.js';

const skip = clusterUnavailable();
const it = skip ? test.skip : test;
if (skip) console.log(`cluster follow: skipped: ${skip}`);

let L: ClusterLab;
let s1: ClusterServer, s2: ClusterServer, s3: ClusterServer;
let peer: ClusterClient; // an SDK client of s1 alone, to ping

if (!skip) {
  test.before(async () => {
    L = new ClusterLab(3);
    [s1, s2, s3] = L.servers as [ClusterServer, ClusterServer, ClusterServer];
    await L.startAll();
    peer = L.client('peer', 0, { only: true });
    await peer.proc.waitFor('ready', () => true, 20_000);
  });
  test.after(async () => {
    await L?.destroy();
  });
}

/** simplevpn-client in `host` with `-s servers`. */
const linuxClient = (host: Host, servers: string): Proc => host.client('client', ['-s', servers, '--name', host.name, '--log-level', 'debug']);

/** Kills `s` (-9) and waits for `client` to be ready again elsewhere: the new ready line and how long it took. */
async function killAndFollow(s: ClusterServer, client: Proc): Promise<{ ready: Record<string, unknown>; ms: number }> {
  const from = client.lines.length;
  const t0 = Date.now();
  s.proc!.signal('SIGKILL');
  await s.proc!.exited;
  const ready = await client.waitFor('ready', () => true, 10_000, from);
  return { ready, ms: Date.now() - t0 };
}

it('-s A,B,C: on one server, then on the next after kill -9, within 10 s, with the same address; ping both ways after', async () => {
  const host = L.clientHost('k1');
  const client = linuxClient(host, [s2, s3, s1].map((s) => s.underlay).join(','));
  const first = await client.waitFor('ready', () => true, 20_000);
  assert.is(first.via, `${s2.underlay}:${PORT}`, 'the first server of the list');
  assert.ok(await host.ping(peer.address(), 2), 'k1 (s2) -> peer (s1)');

  const { ready, ms } = await killAndFollow(s2, client);
  console.log(`  -s list: ready on ${ready.via} ${ms} ms after kill -9 of s2`);
  assert.ok(ms < 10_000, `${ms} ms`);
  assert.is(ready.via, `${s3.underlay}:${PORT}`, 'the next server of the list');
  assert.is(ready.address, first.address, 'the same address');
  const took = s3.proc!.lines.filter((l) => l.event === 'cluster_takeover' && l.address === first.address);
  assert.is(took.length, 1, 's3 took the lease over with the token');
  assert.ok(await host.ping(peer.address(), 2), 'k1 (s3) -> peer (s1)');
  assert.ok(await peer.host.ping(String(first.address), 2), 'peer (s1) -> k1 (s3)');
  const downs = client.lines.filter((l) => l.event === 'down');
  assert.ok(downs.length >= 1, 'the loss was logged');
  assert.not.ok(client.lines.some((l) => l.level === 'error'), client.lines.filter((l) => l.level === 'error').map((l) => JSON.stringify(l)).join('\n'));
});

it('a name with several addresses: the client reaches the next address when the first server is killed, same address, ping after', async () => {
  const host = L.clientHost('k2');
  // s2 is dead already: the first address refuses, the next is s3; then s3 dies, s1 is left.
  L.resolve(host, 'vpn.cluster.test', [s2.underlay, s3.underlay, s1.underlay]);
  const client = linuxClient(host, 'vpn.cluster.test');
  const first = await client.waitFor('ready', () => true, 20_000);
  assert.is(first.via, undefined, 'one server given: no via field');
  await until('s3 to hold the address', () => s3.proc!.lines.some((l) => l.event === 'assign' && l.address === first.address), 5000);
  assert.ok(await host.ping(peer.address(), 2), 'k2 (s3) -> peer (s1)');

  const { ready, ms } = await killAndFollow(s3, client);
  console.log(`  a name with three addresses: ready again ${ms} ms after kill -9 of s3`);
  assert.ok(ms < 10_000, `${ms} ms`);
  assert.is(ready.address, first.address, 'the same address');
  assert.ok(
    s1.proc!.lines.some((l) => l.event === 'cluster_takeover' && l.address === first.address),
    's1 took it over',
  );
  assert.ok(await host.ping(peer.address(), 2), 'k2 (s1) -> peer (s1)');
});

test.run();
