// The server's own tun in the native hub (linux/native/hub_tun.c): the internet-bound path, with
// the real server, real clients and a host beyond the server, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                              │  \
//                  198.18.3.0/24    198.18.4.0/24, fd00:9::/64
//                              │      \
//                              c3      out (beyond the server: Linux on srv routes to it)
//
// c1 (--offload) and c2 (plain) are native sessions on the server: their packets for `out` are
// written to the server's tun in C and the replies read from it in C (super-packets whole for
// c1). c3 speaks the 2013 protocol (--seed), so its session stays on JavaScript: the hub must
// never hand Linux a packet for c3's address, and the tun's packets for c3 still reach it.
// /metrics counts what C moved. Then the tun is deleted under the server, which goes on
// switching between clients and says so. The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { transfers } from '../support/lab-transfer.js';
import { type Host, type Proc, until, useLab } from '../support/lab.js';

const STATUS = '127.0.0.1:9100';
const SUBNET = '10.0.0.0/24';
const SUBNET6 = 'fd00:5:8::/64';
const BEYOND6 = 'fd00:9::';
const SERVER_ARGS = ['--subnet', SUBNET, '--subnet6', SUBNET6, '--route', '198.18.4.0/24', '--route6', `${BEYOND6}/64`, '--status', STATUS, '--tun', 'svsrv%d'];
const CLIENT_ARGS = ['--mtu', '1500', '--max-backoff', '2', '--timeout', '2'];

let srv: Host, c1: Host, c2: Host, c3: Host, out: Host;
let server: Proc;
let tunName = '';
const clients: Record<string, Proc> = {};
const addr: Record<string, string> = {};

const { it } = useLab(test, (lab) => {
  [srv, c1, c2, c3, out] = lab.star('srv', 'c1', 'c2', 'c3', 'out');
});

async function run(h: Host, argv: string[]): Promise<void> {
  const r = await h.exec(argv, 10_000);
  assert.is(r.code, 0, `${h.name}: ${argv.join(' ')}: ${r.stderr}`);
}

async function status(path: string): Promise<string> {
  const r = await srv.exec(['curl', '-sf', `http://${STATUS}${path}`], 5000);
  assert.is(r.code, 0, `GET ${path}: ${r.stderr}`);
  return r.stdout;
}

const metric = (text: string, name: string) => Number(new RegExp(`^simplevpn_${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
const drops = (text: string, reason: string) => Number(new RegExp(`^simplevpn_dropped_packets_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

const transfer = transfers(5400);

it('the server reads and writes its tun in C; two native clients and a 2013-protocol one come up', async () => {
  // srv routes between the VPN (its tun) and out, as a VPN server routes to its networks.
  await run(srv, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  await run(srv, ['ip', 'addr', 'add', `${BEYOND6}1/64`, 'dev', 'veth4a', 'nodad']);
  await run(out, ['ip', 'addr', 'add', `${BEYOND6}2/64`, 'dev', 'veth4b', 'nodad']);
  await run(out, ['ip', 'route', 'add', SUBNET, 'via', '198.18.4.1']);
  await run(out, ['ip', 'route', 'add', SUBNET6, 'via', `${BEYOND6}1`]);
  server = srv.server(SERVER_ARGS);
  const up = await server.waitFor('tun_up');
  tunName = String(up.name);
  const l = await server.waitFor('listening');
  assert.is(l.data_path, 'native');
  assert.is(l.tun_data_path, 'native', String(l.data_path_detail));
  const hosts = { c1, c2, c3 } as Record<string, Host>;
  for (const [name, net] of [['c1', 1], ['c2', 2], ['c3', 3]] as const) {
    const own = name === 'c1' ? ['--offload'] : name === 'c3' ? ['--seed', '--tun', 'svseed0'] : [];
    clients[name] = hosts[name].client(name, ['-s', `198.18.${net}.1`, ...own, ...CLIENT_ARGS]);
    const r = await clients[name].waitFor('ready');
    addr[name] = String(r.address);
  }
  // A 2013-protocol client gets no pushed routes: its way to `out` and to the other clients is set here.
  await run(c3, ['ip', 'route', 'add', '198.18.4.0/24', 'dev', 'svseed0']);
  await run(c3, ['ip', 'route', 'replace', SUBNET, 'dev', 'svseed0']);
});

it('native clients reach the host beyond the server, byte for byte both ways, through the tun in C', async () => {
  const before = await status('/metrics');
  for (const [name, h] of [['c1', c1], ['c2', c2]] as const) {
    assert.ok(await h.ping('198.18.4.2'), `${name} -> out`);
    await transfer(h, out, '198.18.4.2', 16 << 20);
    await transfer(out, h, addr[name], 16 << 20);
  }
  const after = await status('/metrics');
  // Every packet of it crossed the tun; C counted them when /metrics looked: 64 MB in all, at
  // least one packet per 64 KiB (super-packets) and the other way's ACKs.
  const sent = metric(after, 'tun_sent_packets_total') - metric(before, 'tun_sent_packets_total');
  const read = metric(after, 'tun_received_packets_total') - metric(before, 'tun_received_packets_total');
  console.log(`  64 MB to and from the host beyond: ${sent} packets written to the tun, ${read} read from it`);
  assert.ok(sent > 500 && read > 500, `written to the tun: ${sent}, read from it: ${read}`);
  assert.is(drops(after, 'tun_rejected'), drops(before, 'tun_rejected'), 'nothing refused by the kernel');
});

it('IPv6 to the host beyond the server', async () => {
  for (const h of [c1, c2]) {
    const r = await h.exec(['ping', '-6', '-n', '-c', '3', '-W', '2', '-i', '0.2', `${BEYOND6}2`], 12_000);
    assert.is(r.code, 0, `${h.name} -> out over IPv6: ${r.stdout}`);
  }
  await transfer(out, c1, (await c1Address6()) ?? '', 4 << 20);
});

async function c1Address6(): Promise<string | undefined> {
  const list = JSON.parse(await status('/clients')) as { address: string; address6?: string }[];
  return list.find((c) => c.address === addr.c1)?.address6?.split('/')[0];
}

it("a JavaScript session's address never goes to Linux: c1 and c3 reach each other, and out reaches c3", async () => {
  const before = metric(await status('/metrics'), 'tun_sent_packets_total');
  assert.ok(await c1.ping(addr.c3, 10), 'c1 -> c3');
  assert.ok(await c3.ping(addr.c1, 10), 'c3 -> c1');
  // Had C sent c1's packets for c3 to the tun, Linux would have routed them back into it.
  const written = metric(await status('/metrics'), 'tun_sent_packets_total') - before;
  assert.ok(written < 5, `packets written to the tun meanwhile: ${written}`);
  assert.ok(await c3.ping('198.18.4.2'), 'c3 -> out (JavaScript both ways)');
  assert.ok(await out.ping(addr.c3), 'out -> c3: the tun read in C, handed to JavaScript');
  await transfer(out, c3, addr.c3, 4 << 20);
});

it('the tun deleted under the server: it says so, and clients still reach each other', async () => {
  const from = server.lines.length;
  await run(srv, ['ip', 'link', 'del', tunName]);
  // What the server reads or writes next fails: pings towards out make it write.
  await c1.ping('198.18.4.2', 2, 1);
  const failed = await server.waitFor('tun_failed', () => true, 10_000, from);
  assert.match(String(failed.consequence), 'clients can reach each other');
  assert.ok(await c1.ping(addr.c2), 'c1 -> c2 after the tun is gone');
  assert.ok(await c2.ping(addr.c3), 'c2 -> c3 after the tun is gone');
  await until('the server still answers', async () => (await srv.exec(['curl', '-sf', `http://${STATUS}/metrics`], 3000)).code === 0, 5000);
  const r = await server.stop('SIGTERM');
  assert.is(r.code, 0, server.tail());
});

test.run();
