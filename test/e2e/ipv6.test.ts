// IPv6 inside the tunnel with the real server (--subnet6) and real Linux clients on real tun
// devices, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                            │   │
//          fd99:3::/64 only  │   │ 198.18.4.0/24
//                           c3   c4 (a seed-protocol client)
//
// c3's link to the server carries IPv6 only: it reaches the server at [fd99:3::1].
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { FIXTURES, ROOT } from '../support/paths.js';
import { type Host, type Proc, until, useLab } from '../support/lab.js';

const SERVER_ARGS = ['--idle-timeout', '6', '--keepalive', '2', '--subnet', '10.0.0.0/16', '--subnet6', 'fd00:5:6::/64', '--route6', '2001:db8:77::/48', '--status', '127.0.0.1:9106'];
const CLIENT_ARGS = ['--max-backoff', '2', '--timeout', '3'];
const GATEWAY6 = 'fd00:5:6::a00:1';

let srv: Host, c1: Host, c2: Host, c3: Host, c4: Host;
let server: Proc;
let a1 = '';
let a2 = '';

const { it } = useLab(test, (lab) => {
  [srv, c1, c2, c3, c4] = lab.star('srv', 'c1', 'c2', 'c3', 'c4');
});

/** ping -6, every echo answered. */
async function ping6(h: Host, addr: string, extra: string[] = []): Promise<boolean> {
  const r = await h.exec(['ping', '-6', '-n', '-c', '3', '-W', '2', '-i', '0.2', ...extra, addr], 12_000);
  return r.code === 0;
}

/** The IPv6 addresses on the host's tun devices (scope global), as ADDR/PREFIX. */
async function tunAddresses6(h: Host): Promise<string[]> {
  const ifaces = JSON.parse((await h.exec(['ip', '-j', 'addr', 'show'])).stdout) as Array<{ link_type: string; addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string }> }>;
  return ifaces.filter((i) => i.link_type === 'none').flatMap((i) => i.addr_info.filter((a) => a.family === 'inet6').map((a) => `${a.local}/${a.prefixlen}`));
}

/** A counter of the server's /metrics (read inside its namespace). */
async function metric(name: string): Promise<number> {
  const js = `fetch('http://127.0.0.1:9106/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const r = await srv.exec([process.execPath, '-e', js], 10_000);
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(r.stdout);
  if (!m) throw new Error(`no ${name} in /metrics: ${r.stdout.slice(0, 300)} ${r.stderr}`);
  return Number(m[1]);
}

it('the server puts its IPv6 address on its tun; two clients get PREFIX + their IPv4 address and configure it', async () => {
  server = srv.server(SERVER_ARGS);
  const up = await server.waitFor('tun_up');
  assert.is(up.address6, `${GATEWAY6}/64`);
  await server.waitFor('listening');
  assert.ok((await tunAddresses6(srv)).includes(`${GATEWAY6}/64`), 'the server tun carries the gateway');
  const client1 = c1.client('client1', ['-s', '198.18.1.1', ...CLIENT_ARGS]);
  const client2 = c2.client('client2', ['-s', '198.18.2.1', ...CLIENT_ARGS]);
  const r1 = await client1.waitFor('ready');
  const r2 = await client2.waitFor('ready');
  a1 = String(r1.address6).split('/')[0];
  a2 = String(r2.address6).split('/')[0];
  assert.match(String(r1.address6), /^fd00:5:6::a00:[0-9a-f]+\/64$/);
  assert.is.not(a1, a2);
  assert.equal(await tunAddresses6(c1), [`${a1}/64`]);
  const routes = (await c1.exec(['ip', '-6', 'route', 'show', '2001:db8:77::/48'])).stdout;
  assert.match(routes, /2001:db8:77::\/48 dev /, 'the pushed IPv6 route');
});

it('ping -6 between the two clients, both ways, and to the server through its tun', async () => {
  assert.ok(await ping6(c1, a2), `c1 -> ${a2}`);
  assert.ok(await ping6(c2, a1), `c2 -> ${a1}`);
  assert.ok(await ping6(c1, GATEWAY6), `c1 -> the server ${GATEWAY6}`);
});

it('a TCP transfer of 8 MB between the two clients over IPv6 arrives intact', async () => {
  const bytes = 8 * 1024 * 1024;
  const sink = c2.node('sink6', join(FIXTURES, 'tcp-sink.js'), [a2, '5006']);
  await sink.waitFor('listening');
  const source = c1.node('source6', join(FIXTURES, 'tcp-source.js'), [a2, '5006', String(bytes)]);
  const sent = await source.waitFor('sent', () => true, 60_000);
  const got = await sink.waitFor('received', () => true, 30_000);
  assert.is(got.bytes, bytes);
  assert.is(got.sha256, sent.sha256);
});

it('IPv6 from an address that is not the client own is dropped and counted as spoofed_source', async () => {
  const before = await metric('simplevpn_dropped_packets_total{reason="spoofed_source"}');
  const tun = JSON.parse((await c1.exec(['ip', '-j', 'link', 'show'])).stdout).find((l: { link_type: string }) => l.link_type === 'none').ifname as string;
  const r = await c1.exec(['ip', '-6', 'addr', 'add', 'fd00:5:6::dead/128', 'dev', tun, 'nodad']);
  assert.is(r.code, 0, r.stderr);
  assert.not.ok(await ping6(c1, a2, ['-I', 'fd00:5:6::dead']), 'nothing answers a spoofed source');
  assert.ok((await metric('simplevpn_dropped_packets_total{reason="spoofed_source"}')) >= before + 3);
  await c1.exec(['ip', '-6', 'addr', 'del', 'fd00:5:6::dead/128', 'dev', tun]);
  assert.ok(await ping6(c1, a2), 'the honest source still passes');
});

it('a seed-protocol client on the same server: its IPv4 works, its tun has no IPv6, and IPv6 clients carry on', async () => {
  const seed = c4.client('seed', ['-s', '198.18.4.1', '--seed', ...CLIENT_ARGS]);
  const r = await seed.waitFor('ready');
  assert.is(r.server, 'seed');
  assert.is(r.address6, undefined);
  assert.equal(await tunAddresses6(c4), []);
  assert.ok(await c4.ping(String((await c1.exec(['ip', '-j', '-4', 'addr', 'show'])).stdout.match(/"local":"(10\.0\.[0-9.]+)"/)![1])), 'seed client -> c1 over IPv4');
  assert.ok(await ping6(c2, a1), 'IPv6 still flows');
  seed.signal('SIGTERM');
});

it('the example device, on Node and in QuickJS, with --ipv6 answers ping -6 on PREFIX + its IPv4 address', async () => {
  const EX = join(ROOT, 'dist/js/examples');
  for (const [kind, script] of [
    ['node', 'device/node.js'],
    ['quickjs', 'quickjs/run-device.js'],
  ]) {
    const d = c2.node(`${kind}-device6`, join(EX, script), ['--server', '198.18.2.1', '--collector', '10.0.0.1:5005', '--id', `${kind}-6`, '--ipv6', '--interval', '5', '--timeout', '3']);
    const r = await d.waitFor('ready');
    const [a, b, c, e] = String(r.address).split('.').map(Number);
    const addr6 = `fd00:5:6::${((a << 8) | b).toString(16)}:${((c << 8) | e).toString(16)}`;
    assert.ok(await ping6(c1, addr6), `c1 -> the ${kind} device at ${addr6}`);
    assert.ok(await ping6(c1, addr6, ['-s', '1200']), `c1 -> the ${kind} device, 1200-byte echoes`);
    d.signal('SIGTERM');
  }
});

it('a client reaches a server it knows only by an IPv6 address: -s [fd99:3::1]', async () => {
  // c3's link: IPv4 off, IPv6 on.
  const link = async (h: Host) => (JSON.parse((await h.exec(['ip', '-j', '-4', 'addr', 'show'])).stdout) as Array<{ ifname: string; addr_info: Array<{ local: string }> }>).find((i) => i.addr_info.some((a) => a.local.startsWith('198.18.3.')))!.ifname;
  const srvIf = await link(srv);
  const c3If = await link(c3);
  for (const [h, dev, addr] of [
    [srv, srvIf, 'fd99:3::1/64'],
    [c3, c3If, 'fd99:3::2/64'],
  ] as const) {
    await h.exec(['ip', '-4', 'addr', 'flush', 'dev', dev]);
    const r = await h.exec(['ip', '-6', 'addr', 'add', addr, 'dev', dev, 'nodad']);
    assert.is(r.code, 0, r.stderr);
  }
  const ip4 = (await c3.exec(['ip', '-4', 'addr', 'show', 'dev', c3If])).stdout;
  assert.not.match(ip4, /inet /, 'c3 has no IPv4 towards the server');
  await until('the IPv6 underlay', async () => (await c3.exec(['ping', '-6', '-c', '1', '-W', '1', 'fd99:3::1'])).code === 0, 10_000, 200);
  const client3 = c3.client('client3', ['-s', '[fd99:3::1]', ...CLIENT_ARGS]);
  const r = await client3.waitFor('ready');
  assert.match(String(r.address6), /^fd00:5:6::/);
  assert.ok(await ping6(c3, a1), 'c3 -> c1 over IPv6 inside the tunnel');
});

test.run();
