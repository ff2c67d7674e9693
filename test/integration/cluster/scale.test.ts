// Many assignments at once across servers sharing one etcd (started here, on loopback): never
// one address twice. 10,000 through three of the cluster's lease stores in this process
// (the real etcd client, the real etcd), and a few hundred through three simplevpn-server
// processes over TCP, including many clients racing for the same address.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ANY, DST, KIND_REFUSAL, KIND_REPLY, REFUSE_IN_USE, extKind, formatIPv4, parseIPv4, readRefusal, readU32 } from '../../../protocol/index.js';
import { openEtcd } from '../../../server/src/cluster/etcd-backend.js';
import { EtcdLeaseStore } from '../../../server/src/cluster/etcd-lease-store.js';
import type { Allocation } from '../../../server/src/control/lease-store.js';
import { type EtcdNode, etcdUnavailable, loopbackEtcd } from '../../support/etcd.js';
import { CliServer } from '../../support/server-cli.js';
import { RawClient, extRequest, waitFor } from '../../support/server-net.js';

const skip = etcdUnavailable();
const it = skip ? test.skip : test;
if (skip) console.log(`cluster scale: skipped: ${skip}`);

let etcd: EtcdNode | null = null;
let under = '';
const closers: Array<() => unknown> = [];

test.before(async () => {
  if (skip) return;
  // etcd's data on tmpfs where there is one: the test measures the lease store, not the disk.
  under = mkdtempSync(join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), 'svpn-scale-'));
  etcd = await loopbackEtcd('scale', under);
});

test.after(async () => {
  for (const c of closers.reverse()) await c();
  await etcd?.stop();
  if (under) rmSync(under, { recursive: true, force: true });
});

function store(id: string, prefix: string): EtcdLeaseStore {
  const url = etcd!.url;
  const s = new EtcdLeaseStore({
    network: parseIPv4('10.0.0.0'),
    prefix: 16,
    reserved: [parseIPv4('10.0.0.1')],
    connect: () => openEtcd({ urls: [url], ca: null, cert: null, key: null, callTimeoutMs: 10_000 }),
    keyPrefix: prefix,
    ttl: 10,
    id,
    advertise: '127.0.0.1',
    localAddress: async () => '127.0.0.1',
    endpoints: url,
    hooks: { evict: () => {}, event: () => {} },
    openRoutes: null,
  });
  closers.push(() => s.close());
  return s;
}

it('10,000 concurrent assignments across three lease stores: all granted, none twice, each recorded in etcd as its server\'s', async () => {
  const prefix = '/scale/';
  const stores = ['a', 'b', 'c'].map((id) => store(id, prefix));
  await Promise.all(stores.map((s) => s.open()));
  const N = 10_000;
  const t0 = performance.now();
  const got: Allocation[] = await Promise.all(
    [...Array(N)].map((_, i) => stores[i % 3]!.allocate(0, false, i + 1, { token: null, client: `c${i}`, proven: false, presented: null })),
  );
  const ms = performance.now() - t0;
  const refused = got.filter((a) => typeof a !== 'number');
  assert.equal(refused, [], `${refused.length} refused`);
  assert.is(new Set(got).size, N, 'no address twice');
  console.log(`  ${N} assignments through etcd in ${Math.round(ms)} ms: ${Math.round((N / ms) * 1000)} per second`);
  const b = await openEtcd({ urls: [etcd!.url], ca: null, cert: null, key: null, callTimeoutMs: 10_000 });
  closers.push(() => b.close());
  const { kvs } = await b.list(prefix + 'leases/');
  assert.is(kvs.length, N);
  const owner = new Map(got.map((a, i) => [formatIPv4(a as number), ['a', 'b', 'c'][i % 3]]));
  for (const kv of kvs) assert.is(JSON.parse(kv.value).server, owner.get(kv.key.slice((prefix + 'leases/').length)), kv.key);
  // Each store knows every lease, its own and the others'.
  await waitFor(() => stores.every((s) => s.inUse === N), 10_000, 'every store to see every lease', () => stores.map((s) => s.inUse));
  for (const [i, s] of stores.entries()) assert.is(s.health().held, got.filter((_, j) => j % 3 === i).length);
  // And gives them all back.
  got.forEach((a, i) => stores[i % 3]!.release(a as number, i + 1));
  await waitFor(() => stores.every((s) => s.inUse === 0), 20_000, 'every lease released', () => stores.map((s) => s.inUse));
  assert.is((await b.list(prefix + 'leases/')).kvs.length, 0);
});

/** One client's request over TCP: the address granted, or the refusal code. */
async function ask(port: number, wanted = ANY): Promise<{ address: string } | { code: number }> {
  const c = await RawClient.connect(port);
  closers.push(() => c.sock.destroy());
  c.write(extRequest(wanted));
  await waitFor(() => c.frames.length > 0 || c.closed, 15_000, 'a reply');
  const f = c.frames[0];
  if (!f) throw new Error('closed without a reply');
  if (extKind(f) === KIND_REPLY) return { address: formatIPv4(readU32(f, DST)) };
  assert.is(extKind(f), KIND_REFUSAL);
  return { code: readRefusal(f).code };
}

it('through three servers over TCP: 600 clients at once get 600 addresses, and of 60 asking for one address, one gets it', async () => {
  const prefix = '/scale-tcp/';
  const servers = [1, 2, 3].map((i) => {
    const s = new CliServer(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--etcd', etcd!.url, '--etcd-prefix', prefix, '--cluster-id', `srv${i}`, '--cluster-advertise', '127.0.0.1', '--max-per-source', '0', '--conn-rate', '0', '--log-format', 'json']);
    closers.push(() => s.stop());
    return s;
  });
  for (const s of servers) await s.event('cluster_joined', 15_000);
  const ports = await Promise.all(servers.map((s) => s.port()));
  const t0 = performance.now();
  const answers = await Promise.all([...Array(600)].map((_, i) => ask(ports[i % 3]!)));
  const addrs = answers.map((a) => ('address' in a ? a.address : `refused ${a.code}`));
  assert.ok(
    addrs.every((a) => !a.startsWith('refused')),
    addrs.filter((a) => a.startsWith('refused')).join(','),
  );
  assert.is(new Set(addrs).size, 600, 'no address twice');
  console.log(`  600 clients over TCP through 3 servers in ${Math.round(performance.now() - t0)} ms`);
  const X = '10.0.200.200';
  const race = await Promise.all([...Array(60)].map((_, i) => ask(ports[i % 3]!, parseIPv4(X))));
  const won = race.filter((a) => 'address' in a);
  assert.is(won.length, 1, JSON.stringify(race));
  assert.ok(race.every((a) => ('address' in a ? a.address === X : a.code === REFUSE_IN_USE)));
});

test.run();
