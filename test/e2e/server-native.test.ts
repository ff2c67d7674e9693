// The server's native switching path (linux/native/hub.c, server/src/data/native-sessions.ts)
// with the real server, real clients and tun devices, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                              │
//                        198.18.3.0/24
//                              │
//                              c3 (SIMPLEVPN_NATIVE_PATH=0: the client's JavaScript path)
//
// c1 and c2 are native clients with --offload; the server switches their packets in C, their
// TCP super-packets (KIND_SUPER) too, and those of c3 (its session is plain TCP too, so it is
// native on the server) as well; c3 has no offloads: JavaScript splits what c1 and c2 send it. Every pair pings and
// moves bytes byte for byte, over IPv6 too (switched in C between native sessions); /metrics and /clients count what C switched; a client that goes
// silent is ended by the idle timeout and a server shutdown ends the rest, the server's
// descriptors back where they were. The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { transfers } from '../support/lab-transfer.js';
import { type Host, type Proc, until, useLab } from '../support/lab.js';

const STATUS = '127.0.0.1:9100';
const SERVER_ARGS = ['--idle-timeout', '4', '--keepalive', '1', '--status', STATUS, '--subnet6', 'fd00:5:7::/64'];
const CLIENT_ARGS = ['--mtu', '1500', '--max-backoff', '2', '--timeout', '2'];

let srv: Host, c1: Host, c2: Host, c3: Host;
let server: Proc;
const clients: Record<string, Proc> = {};
const addr: Record<string, string> = {};
const addr6: Record<string, string> = {};
let idleFds = 0;

const { it } = useLab(test, (lab) => {
  [srv, c1, c2, c3] = lab.star('srv', 'c1', 'c2', 'c3');
});

const fdCount = (p: Proc) => readdirSync(`/proc/${p.pid}/fd`).length;

async function status(path: string): Promise<string> {
  const r = await srv.exec(['curl', '-sf', `http://${STATUS}${path}`], 5000);
  assert.is(r.code, 0, `GET ${path}: ${r.stderr}`);
  return r.stdout;
}

const metric = (text: string, name: string) => Number(new RegExp(`^simplevpn_${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

const transfer = transfers(5300);

it('the server says it switches in C; two native clients and one on JavaScript come up', async () => {
  server = srv.server(SERVER_ARGS);
  const l = await server.waitFor('listening');
  assert.is(l.data_path, 'native');
  idleFds = fdCount(server);
  const hosts = { c1, c2, c3 } as Record<string, Host>;
  for (const [name, net] of [['c1', 1], ['c2', 2], ['c3', 3]] as const) {
    const own = name === 'c3' ? [] : ['--offload'];
    clients[name] = hosts[name].client(name, ['-s', `198.18.${net}.1`, ...own, ...CLIENT_ARGS], name === 'c3' ? { SIMPLEVPN_NATIVE_PATH: '0' } : {});
    const r = await clients[name].waitFor('ready');
    assert.is(r.data_path, name === 'c3' ? 'js' : 'native');
    addr[name] = String(r.address);
    addr6[name] = String(r.address6).split('/')[0];
  }
  // Each native session: Node's socket and the hub's dup of it.
  await until('two descriptors per session', () => fdCount(server) === idleFds + 6, 5000, 100);
});

it('every pair pings and moves bytes byte for byte, both ways (super-packets whole between c1 and c2, split for c3)', async () => {
  const hosts: Record<string, Host> = { c1, c2, c3 };
  for (const [a, b] of [['c1', 'c2'], ['c1', 'c3'], ['c2', 'c3']]) {
    assert.ok(await hosts[a].ping(addr[b]), `${a} -> ${b}`);
    assert.ok(await hosts[b].ping(addr[a]), `${b} -> ${a}`);
    await transfer(hosts[a], hosts[b], addr[b], 8 << 20);
    await transfer(hosts[b], hosts[a], addr[a], 4 << 20);
  }
  // c1 -> c2 went as super-packets: far fewer packets than 1500-byte segments would be.
  const list = JSON.parse(await status('/clients')) as { address: string; rxBytes: number; rxPackets: number }[];
  const one = list.find((c) => c.address === addr.c1)!;
  assert.ok(one.rxBytes / one.rxPackets > 2000, `c1 sent super-packets: ${JSON.stringify(one)}`);
  assert.ok(await c1.ping('10.0.0.1'), "c1 -> the server's own address (through JavaScript to the tun)");
});

it('IPv6: every pair pings, and bytes move byte for byte between the native clients', async () => {
  const hosts: Record<string, Host> = { c1, c2, c3 };
  for (const [a, b] of [['c1', 'c2'], ['c1', 'c3'], ['c2', 'c3']]) {
    for (const [x, y] of [[a, b], [b, a]]) {
      const r = await hosts[x].exec(['ping', '-6', '-n', '-c', '3', '-W', '2', '-i', '0.2', addr6[y]], 12_000);
      assert.is(r.code, 0, `${x} -> ${y} over IPv6: ${r.stdout}`);
    }
  }
  const before = metric(await status('/metrics'), 'received_packets_total');
  await transfer(c1, c2, addr6.c2, 8 << 20);
  await transfer(c2, c1, addr6.c1, 4 << 20);
  assert.ok(metric(await status('/metrics'), 'received_packets_total') - before > 1000, 'counted');
});

it('/metrics and /clients count the packets C switched', async () => {
  const before = metric(await status('/metrics'), 'received_packets_total');
  assert.ok(await c1.ping(addr.c2, 20), 'c1 -> c2, 20 pings');
  const after = await status('/metrics');
  // 20 echo requests and 20 replies, and whatever keepalives the clients sent meanwhile.
  assert.ok(metric(after, 'received_packets_total') - before >= 40, `received: ${metric(after, 'received_packets_total') - before}`);
  assert.ok(metric(after, 'sent_packets_total') >= metric(after, 'received_packets_total') - 100, 'sent counts them too');
  const list = JSON.parse(await status('/clients')) as { address: string; rxPackets: number; txPackets: number; lastSeen: string }[];
  const one = list.find((c) => c.address === addr.c1)!;
  assert.ok(one.rxPackets > 1000 && one.txPackets > 1000, `c1's figures: ${JSON.stringify(one)}`);
  assert.ok(Date.now() - Date.parse(one.lastSeen) < 3000, 'last seen now');
});

it('a client gone silent is ended by the idle timeout; nothing is left', async () => {
  const from = server.lines.length;
  clients.c2.signal('SIGSTOP');
  try {
    const d = await server.waitFor('disconnect', (l) => l.address === addr.c2, 10_000, from);
    assert.is(d.reason, 'idle_timeout');
  } finally {
    clients.c2.signal('SIGCONT');
  }
  await clients.c2.stop('SIGTERM');
});

it('a server shutdown ends the native sessions; no descriptor is left', async () => {
  await clients.c3.stop('SIGTERM');
  await until('c3 gone from the server', async () => !JSON.parse(await status('/clients')).some((c: { address: string }) => c.address === addr.c3), 5000, 100);
  await until('the server back at its idle descriptors plus c1', () => fdCount(server) === idleFds + 2, 5000, 100);
  const from = server.lines.length;
  const stopped = server.waitFor('stopped', () => true, 10_000, from);
  server.signal('SIGTERM');
  const d = await server.waitFor('disconnect', (l) => l.address === addr.c1, 10_000, from);
  assert.is(d.reason, 'shutdown');
  await stopped;
  assert.is((await server.exitWithin(10_000)).code, 0);
  await clients.c1.stop('SIGTERM');
});

test.run();
