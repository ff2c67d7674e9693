// The Linux client's native data path (linux/native/splice.c, linux/client/native-path.ts)
// with the real server and real tun devices, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                              │
//                        198.18.3.0/24
//                              │
//                              c3 (--offload, then SIMPLEVPN_NATIVE_PATH=0)
//
// Packets take the native path once each session is ready; JavaScript still gets the
// keepalive echoes (the server pushes a 1 s keepalive: a client whose echoes did not reach
// the SDK would time out within 3 s), sees the server go, reconnects and attaches again.
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { transfers } from '../support/lab-transfer.js';
import { type Host, type Proc, until, useLab } from '../support/lab.js';

const SERVER_ARGS = ['--idle-timeout', '4', '--keepalive', '1'];
const CLIENT_ARGS = ['--mtu', '1500', '--max-backoff', '2', '--timeout', '2'];

let srv: Host, c1: Host, c2: Host, c3: Host;
let server: Proc;
let client1: Proc, client2: Proc;
const addr: Record<string, string> = {};

const { it, lab } = useLab(test, (lab) => {
  [srv, c1, c2, c3] = lab.star('srv', 'c1', 'c2', 'c3');
});

const send = transfers(5100);
async function transfer(from: Host, to: Host, toAddr: string, bytes: number): Promise<void> {
  const ms = await send(from, to, toAddr, bytes);
  console.log(`  ${bytes >> 20} MB ${from.name} -> ${to.name} in ${ms} ms (${((bytes * 8) / ms / 1e6).toFixed(2)} Gbit/s)`);
}

it('two clients on plain TCP come up on the native data path', async () => {
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  client1 = c1.client('client1', ['-s', '198.18.1.1', ...CLIENT_ARGS]);
  client2 = c2.client('client2', ['-s', '198.18.2.1', ...CLIENT_ARGS]);
  for (const [name, p] of [['c1', client1], ['c2', client2]] as const) {
    const r = await p.waitFor('ready');
    assert.is(r.data_path, 'native', `${name} attached`);
    addr[name] = String(r.address);
  }
});

it('ping both ways and a byte-exact transfer each way', async () => {
  assert.ok(await c1.ping(addr.c2), 'c1 -> c2');
  assert.ok(await c2.ping(addr.c1), 'c2 -> c1');
  assert.ok(await c1.ping('10.0.0.1'), "c1 -> the server's own address");
  await transfer(c1, c2, addr.c2, 32 << 20);
  await transfer(c2, c1, addr.c1, 8 << 20);
});

it('keepalive echoes reach JavaScript: no keepalive timeout over 5 s of 1 s keepalives', async () => {
  const from = client1.lines.length;
  await new Promise((r) => setTimeout(r, 5000));
  const down = client1.lines.slice(from).filter((l) => l.event === 'down');
  assert.equal(down, [], 'c1 stayed up');
  assert.ok(await c1.ping(addr.c2, 2), 'and still carries packets');
});

it('a client with --offload on the native path: super-packets whole both ways, byte for byte', async () => {
  const c = c3.client('offload', ['-s', '198.18.3.1', '--offload', ...CLIENT_ARGS]);
  try {
    const r = await c.waitFor('ready');
    assert.is(r.super_packets, true);
    assert.is(r.data_path, 'native');
    assert.ok(await c3.ping(addr.c1), 'c3 -> c1');
    await transfer(c3, c1, addr.c1, 32 << 20);
    await transfer(c1, c3, String(r.address), 32 << 20);
  } finally {
    const line = c.waitFor('stopped');
    assert.is((await c.stop('SIGTERM')).code, 0);
    const st = await line;
    assert.ok(Number(st.tun_super_read) > 0, 'super-packets read from the tun went out whole');
    assert.ok(Number(st.tun_super_written) > 0, "the server's segments coalesced in C (gro.c) on their way to the tun");
    assert.ok(Number(st.native_tx_packets) > 0 && Number(st.native_rx_packets) > 0, 'counted in C');
    assert.is(st.tun_dropped, 0);
  }
});

it('the server killed and started again: the clients reconnect, attach again, and carry packets', async () => {
  await server.stop('SIGKILL');
  await client1.waitFor('down', () => true, 10_000);
  const from1 = client1.lines.length;
  const from2 = client2.lines.length;
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  const r1 = await client1.waitFor('ready', () => true, 20_000, from1);
  const r2 = await client2.waitFor('ready', () => true, 20_000, from2);
  assert.is(r1.data_path, 'native');
  assert.is(r2.data_path, 'native');
  await until('ping c1 -> c2 after the restart', () => c1.ping(String(r2.address), 1), 15_000, 200);
  await transfer(c2, c1, String(r1.address), 4 << 20);
});

it('SIMPLEVPN_NATIVE_PATH=0 keeps the JavaScript path, which works beside native clients', async () => {
  const c = c3.client('js', ['-s', '198.18.3.1', ...CLIENT_ARGS], { SIMPLEVPN_NATIVE_PATH: '0' });
  try {
    const r = await c.waitFor('ready');
    assert.is(r.data_path, 'js');
    assert.ok(await c3.ping(addr.c1), 'c3 -> c1');
    await transfer(c1, c3, String(r.address), 8 << 20);
  } finally {
    const line = c.waitFor('stopped');
    await c.stop('SIGTERM');
    const st = await line;
    assert.is(st.native_attaches, undefined, 'never attached');
    assert.ok(Number(st.rx_packets) > 0);
  }
});

it('SIGTERM: the stopped line counts the native packets and the keepalive echoes; nothing is left', async () => {
  for (const p of [client1, client2]) {
    const line = p.waitFor('stopped');
    assert.is((await p.stop('SIGTERM')).code, 0);
    const st = await line;
    assert.ok(Number(st.native_attaches) >= 2, `${p.name} attached on each connection: ${st.native_attaches}`);
    assert.ok(Number(st.native_rx_control) > 0, `${p.name}: keepalive echoes handed to JavaScript`);
    assert.ok(Number(st.tx_packets) >= Number(st.native_tx_packets) && Number(st.native_tx_packets) > 0);
  }
  await server.stop('SIGTERM');
  await lab().destroy();
  assert.equal(lab().remaining(), []);
});

test.run();
