// TUN offloads on real tun devices: Linux clients opened with --offload read TCP
// super-packets from their tun (split in user space) and write coalesced ones (GRO in user
// space), at a 1500-byte tunnel MTU where that matters most. Transfers between two clients
// with offloads, and between one with and one without, arrive byte for byte, and no tun
// device drops a packet. c1 and c3 take the native data path (linux/native/splice.c), c2 the
// JavaScript one (SIMPLEVPN_NATIVE_PATH=0), whose coalescing the last test checks.
//
//        c1 (--offload) ── srv ── c2 (--offload)
//                          │   │
//                 c3 (plain)   beyond: a host on 198.18.4.0/24, routed by srv's kernel
//
// The server's tun has offloads too: traffic to and from the host beyond goes through it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { FIXTURES } from '../support/paths.js';
import { type Host, type Proc, useLab } from '../support/lab.js';

const CLIENT_ARGS = ['--mtu', '1500', '--max-backoff', '2', '--timeout', '5'];

let srv: Host, c1: Host, c2: Host, c3: Host, beyond: Host;
let client1: Proc, client2: Proc, client3: Proc;
const addr: Record<string, string> = {};

const { it } = useLab(test, (lab) => {
  [srv, c1, c2, c3] = lab.star('srv', 'c1', 'c2', 'c3');
  beyond = lab.host('beyond');
  lab.link(srv, beyond); // 198.18.4.1 (srv) and 198.18.4.2
});

/** The tun device's drop counters as the kernel keeps them (`ip -s link`). */
async function tunDrops(h: Host): Promise<{ name: string; rx: number; tx: number }> {
  const links = JSON.parse((await h.exec(['ip', '-j', '-s', 'link', 'show', 'type', 'tun'])).stdout) as Array<{ ifname: string; stats64: { rx: { dropped: number }; tx: { dropped: number } } }>;
  assert.is(links.length, 1, `one tun device in ${h.name}`);
  return { name: links[0].ifname, rx: links[0].stats64.rx.dropped, tx: links[0].stats64.tx.dropped };
}

async function transfer(from: Host, to: Host, toAddr: string, port: number, bytes: number): Promise<void> {
  const sink = to.node(`sink${port}`, join(FIXTURES, 'tcp-sink.js'), [toAddr, String(port)]);
  await sink.waitFor('listening');
  const source = from.node(`source${port}`, join(FIXTURES, 'tcp-source.js'), [toAddr, String(port), String(bytes)]);
  const sent = await source.waitFor('sent', () => true, 120_000);
  const got = await sink.waitFor('received', () => true, 30_000);
  assert.is(sent.bytes, bytes);
  assert.is(got.bytes, bytes);
  assert.is(got.sha256, sent.sha256, 'byte for byte');
  console.log(`  ${bytes >> 20} MB ${from.name} -> ${to.name} at MTU 1500 in ${got.ms} ms (${((bytes * 8) / Number(got.ms) / 1e6).toFixed(2)} Gbit/s)`);
}

it('clients opened with --offload get tun devices with offloads; one without gets a plain one', async () => {
  const server = srv.server(['--keepalive', '1', '--route', '198.18.4.0/24']);
  await server.waitFor('listening');
  const up = await server.waitFor('tun_up');
  assert.is(up.offload, true, "the server's tun has offloads");
  client1 = c1.client('client1', ['-s', '198.18.1.1', '--offload', ...CLIENT_ARGS]);
  client2 = c2.client('client2', ['-s', '198.18.2.1', '--offload', ...CLIENT_ARGS], { SIMPLEVPN_NATIVE_PATH: '0' });
  client3 = c3.client('client3', ['-s', '198.18.3.1', ...CLIENT_ARGS]);
  for (const [name, p] of [['c1', client1], ['c2', client2], ['c3', client3]] as const) {
    const created = await p.waitFor('tun_created');
    assert.is(created.offload, name === 'c3' ? undefined : true, `${name}: offload as asked`);
    const ready = await p.waitFor('ready');
    assert.is(ready.mtu, 1500);
    // Both ends of c1's and c2's links declared T_OFFLOAD: super-packets travel whole.
    assert.is(ready.super_packets, name === 'c3' ? undefined : true, `${name}: super-packets as declared`);
    assert.is(ready.data_path, name === 'c2' ? 'js' : 'native', `${name}: the data path`);
    addr[name] = String(ready.address);
  }
});

it('a 32 MB transfer between two clients with offloads arrives intact', async () => {
  await transfer(c1, c2, addr.c2, 5001, 32 << 20);
});

it('a 32 MB transfer from a client with offloads to one without, and back, arrives intact', async () => {
  await transfer(c1, c3, addr.c3, 5002, 32 << 20);
  await transfer(c3, c2, addr.c2, 5003, 32 << 20);
});

it("to and from a host beyond the server, through the server's tun with offloads, with and without them on the client", async () => {
  assert.is((await srv.exec(['sysctl', '-w', 'net.ipv4.ip_forward=1'])).code, 0);
  assert.is((await beyond.exec(['ip', 'route', 'add', '10.0.0.0/16', 'via', '198.18.4.1'])).code, 0);
  await transfer(c1, beyond, '198.18.4.2', 5004, 32 << 20);
  await transfer(beyond, c1, addr.c1, 5005, 32 << 20);
  // From the server's tun, super-packets are split by the server for the plain client.
  await transfer(beyond, c3, addr.c3, 5006, 16 << 20);
  const d = await tunDrops(srv);
  assert.equal({ rx: d.rx, tx: d.tx }, { rx: 0, tx: 0 }, `the server's ${d.name}: no drops`);
});

it('no tun device with offloads dropped a packet, and super-packets were read and written', async () => {
  // A tun queues up to txqueuelen (500) packets for its reader: 750 KB at MTU 1500, which a
  // reader that is not scheduled for a few milliseconds overruns (the plain c3 may drop, and
  // TCP recovers); with TSO each entry is a super-packet of up to 64 KiB.
  for (const h of [c1, c2]) {
    const d = await tunDrops(h);
    assert.equal({ rx: d.rx, tx: d.tx }, { rx: 0, tx: 0 }, `${h.name}'s ${d.name}: ip -s link shows no drops`);
  }
  const plain = await tunDrops(c3);
  console.log(`  c3 (no offloads) dropped ${plain.tx} packets at its tun`);
  const stopped: Record<string, Record<string, unknown>> = {};
  for (const [name, p] of [['c1', client1], ['c2', client2], ['c3', client3]] as const) {
    const line = p.waitFor('stopped');
    await p.stop('SIGTERM');
    stopped[name] = await line;
  }
  // c1 sent to c2 and c3: the kernel gave it super-packets. c2 got c1's whole (one frame each,
  // written whole to its tun) and coalesced c3's segments (the JavaScript path here; the native
  // one coalesces in C, linux/native/gro.c); c3 got c1's split by the server.
  assert.ok(Number(stopped.c1.tun_super_read) > 0, 'c1 read super-packets');
  assert.ok(Number(stopped.c1.tun_super_whole) > 0, 'c1 (native path) wrote super-packets whole: from beyond, through the server tun');
  assert.ok(Number(stopped.c2.tun_super_whole) > 0, 'c2 got super-packets whole');
  assert.ok(Number(stopped.c2.tun_super_written) > 0, 'c2 coalesced segments into super-packets');
  assert.is(stopped.c3.tun_super_read, undefined, 'c3 has no offloads');
  for (const name of ['c1', 'c2', 'c3']) assert.is(stopped[name].tun_dropped, 0, `${name}: nothing dropped writing to the tun`);
});

test.run();
