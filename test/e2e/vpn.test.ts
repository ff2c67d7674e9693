// The real server and real Linux clients on real tun devices, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                              │
//                        198.18.3.0/24
//                              │
//                              c3
//
// The tests run in order and share the lab: each leaves the VPN as the next expects it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES } from '../support/paths.js';
import { type Host, type Proc, until, useLab } from '../support/lab.js';

const FIX = FIXTURES;
const SERVER_ARGS = ['--idle-timeout', '4', '--keepalive', '1'];
const CLIENT_ARGS = ['--max-backoff', '2', '--timeout', '2'];

let srv: Host, c1: Host, c2: Host, c3: Host;
let server: Proc;
let client1: Proc, client2: Proc;
let addr1 = '';
const STATIC2 = '10.0.5.5';
const tunsBefore = countRootTuns();

function countRootTuns(): number {
  return (spawnSync('ip', ['-o', 'link', 'show', 'type', 'tun'], { encoding: 'utf8' }).stdout ?? '').split('\n').filter(Boolean).length;
}

const { it, lab } = useLab(test, (lab) => {
  [srv, c1, c2, c3] = lab.star('srv', 'c1', 'c2', 'c3');
});

it('two clients get addresses (dynamic and static) and configure their tun devices', async () => {
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  await server.waitFor('tun_up');
  client1 = c1.client('client1', ['-s', '198.18.1.1', '--name', 'c1', ...CLIENT_ARGS]);
  client2 = c2.client('client2', ['-s', '198.18.2.1', '-a', STATIC2, '--name', 'c2', ...CLIENT_ARGS]);
  const r1 = await client1.waitFor('ready');
  const r2 = await client2.waitFor('ready');
  addr1 = String(r1.address);
  assert.is(r2.address, STATIC2, 'the static request is honoured');
  assert.is(r1.prefix, 16);
  assert.is(r1.gateway, '10.0.0.1');
  assert.is(r1.server, 'simplevpn');
  const link = await c1.exec(['ip', '-j', 'addr', 'show']);
  const ifaces = JSON.parse(link.stdout) as Array<{ ifname: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
  const tun = ifaces.find((i) => i.addr_info.some((a) => a.local === addr1));
  assert.ok(tun, `an interface in c1 carries ${addr1}: ${link.stdout}`);
  assert.is(tun!.addr_info.find((a) => a.local === addr1)!.prefixlen, 16);
});

it('ping between two clients over their VPN addresses, both ways', async () => {
  assert.ok(await c1.ping(STATIC2), `c1 -> ${STATIC2}`);
  assert.ok(await c2.ping(addr1), `c2 -> ${addr1}`);
});

it('a client with a 1500-byte MTU gets large packets from a 65000-byte one: ICMP tells the sender, which fragments', async () => {
  const small = c3.client('small', ['-s', '198.18.3.1', '--mtu', '1500', ...CLIENT_ARGS]);
  try {
    const r = await small.waitFor('ready');
    assert.is(r.mtu, 1500);
    const link = JSON.parse((await c3.exec(['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; mtu: number; link_type: string }>;
    assert.ok(link.some((l) => l.link_type === 'none' && l.mtu === 1500), 'its tun has MTU 1500');
    // 4000-byte echoes with DF (ping's default): the first is answered by the server's ICMP
    // "fragmentation needed", c1's kernel lowers its path MTU and fragments the rest.
    const p = await c1.exec(['ping', '-n', '-c', '5', '-i', '0.2', '-W', '2', '-s', '4000', String(r.address)], 15_000);
    const received = Number(/(\d+) received/.exec(p.stdout)?.[1] ?? 0);
    assert.ok(received >= 4, `large pings answered: ${p.stdout}`);
  } finally {
    assert.is((await small.stop('SIGTERM')).code, 0);
  }
});

it("ping from a client to the server's own VPN address, through the server's tun", async () => {
  assert.ok(await c1.ping('10.0.0.1'), 'c1 -> 10.0.0.1');
  assert.ok(await c2.ping('10.0.0.1'), 'c2 -> 10.0.0.1');
});

it('a bulk TCP transfer of 32 MB between two clients arrives intact', async () => {
  const bytes = 32 * 1024 * 1024;
  const sink = c2.node('sink', join(FIX, 'tcp-sink.js'), [STATIC2, '5001']);
  await sink.waitFor('listening');
  const source = c1.node('source', join(FIX, 'tcp-source.js'), [STATIC2, '5001', String(bytes)]);
  const sent = await source.waitFor('sent', () => true, 120_000);
  const got = await sink.waitFor('received', () => true, 30_000);
  assert.is(sent.bytes, bytes);
  assert.is(got.bytes, bytes);
  assert.is(got.sha256, sent.sha256);
  console.log(`  32 MB client to client in ${got.ms} ms (${((bytes * 8) / Number(got.ms) / 1e6).toFixed(2)} Gbit/s)`);
});

it('a conflicting static request is refused and the client says why (exit status 3)', async () => {
  const c = c3.client('conflict', ['-s', '198.18.3.1', '-a', STATIC2, ...CLIENT_ARGS]);
  const refused = await c.waitFor('address_refused');
  assert.match(String(refused.reason), /in use/);
  const { code } = await c.exited;
  assert.is(code, 3);
  await server.waitFor('refuse', (l) => l.requested === STATIC2 && l.reason === 'address_in_use');
});

it('the server killed with SIGKILL and started again: clients reconnect with their old addresses and traffic flows', async () => {
  await server.stop('SIGKILL');
  await client1.waitFor('down', () => true, 10_000);
  const from1 = client1.lines.length;
  const from2 = client2.lines.length;
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  const r1 = await client1.waitFor('ready', () => true, 20_000, from1);
  const r2 = await client2.waitFor('ready', () => true, 20_000, from2);
  assert.is(r1.address, addr1, 'c1 got its old address back');
  assert.is(r2.address, STATIC2, 'c2 got its old address back');
  await until('ping c1 -> c2 after the restart', () => c1.ping(STATIC2, 1), 15_000, 200);
  assert.ok(await c2.ping(addr1));
});

it('a client stopped with SIGSTOP is reaped after the idle timeout and its address goes to another client', async () => {
  client2.signal('SIGSTOP');
  try {
    const gone = await server.waitFor('disconnect', (l) => l.address === STATIC2, 15_000);
    assert.is(gone.reason, 'idle_timeout');
    const c = c3.client('successor', ['-s', '198.18.3.1', '-a', STATIC2, ...CLIENT_ARGS]);
    const r = await c.waitFor('ready');
    assert.is(r.address, STATIC2);
    assert.ok(await c1.ping(STATIC2), 'the new owner answers');
    assert.is((await c.stop('SIGTERM')).code, 0);
  } finally {
    client2.signal('SIGCONT');
  }
});

it('SIGTERM: clients and server exit 0 and remove their tun devices', async () => {
  assert.is((await client1.stop('SIGTERM')).code, 0);
  assert.is((await client2.stop('SIGTERM')).code, 0);
  const tuns = await c1.exec(['ip', '-o', 'link', 'show', 'type', 'tun']);
  assert.is(tuns.stdout.trim(), '', 'no tun left in c1');
  assert.is((await server.stop('SIGTERM')).code, 0);
  await server.waitFor('stopped', () => true, 1000).catch(() => {});
  const left = await srv.exec(['ip', '-o', 'link', 'show', 'type', 'tun']);
  assert.is(left.stdout.trim(), '', 'no tun left in srv');
});

it('our client against a seed-style server: address with the /16 default, ping between clients', async () => {
  const seed = srv.node('seed-server', join(FIX, 'seed-server.js'), ['2002']);
  await seed.waitFor('listening');
  const a = c1.client('seed-c1', ['-s', '198.18.1.1', ...CLIENT_ARGS]);
  const b = c2.client('seed-c2', ['-s', '198.18.2.1', '--seed', ...CLIENT_ARGS]);
  const ra = await a.waitFor('ready');
  const rb = await b.waitFor('ready');
  assert.is(ra.server, 'seed');
  assert.is(ra.prefix, 16);
  assert.is(ra.gateway, null);
  assert.is.not(ra.address, rb.address);
  assert.ok(await c1.ping(String(rb.address)), 'c1 -> c2 through the seed-style server');
  await a.stop();
  await b.stop();
  await seed.stop();
});

it('every namespace and tun device is gone after the lab is destroyed', async () => {
  await lab().destroy();
  assert.equal(lab().remaining(), []);
  assert.is(countRootTuns(), tunsBefore, 'no tun device left in the root namespace');
});

test.run();
