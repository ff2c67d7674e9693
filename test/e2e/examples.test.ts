// The examples against the real server and a real Linux client, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── dev
//   Linux client (tun)       server            example device (Node), the same device
//   + UDP collector                            bundle in QuickJS, and the Node gateway
//
// The devices have no IP stack but the example's: the kernel on c1 is the independent
// judge of their checksums (ping and the UDP socket discard anything malformed).
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { FIXTURES } from '../support/paths.js';
import { type Host, type LogLine, type Proc, ROOT, until, useLab } from '../support/lab.js';

const FIX = FIXTURES;
const EX = join(ROOT, 'dist/js/examples');
const SERVER_ARGS = ['--idle-timeout', '4', '--keepalive', '1'];
const CLIENT_ARGS = ['--max-backoff', '1', '--timeout', '2'];
// Short reconnect settings, so that the restart test takes seconds.
const DEVICE_ARGS = ['--interval', '0.3', '--min-backoff', '0.2', '--max-backoff', '1', '--timeout', '2'];
const PORT = 5005;

let srv: Host, c1: Host, dev: Host;
let srvAddr = '';
let server: Proc, client: Proc, listener: Proc;
let nodeDev: Proc, qjsDev: Proc, gateway: Proc;
let addrC1 = '', addrNode = '', addrQjs = '', addrGw = '';

type Reading = { id: string; seq: number; uptime_s: number; temp_c: number };
const readings = (id: string, from = 0): Array<Reading & { from: string }> =>
  listener.lines
    .slice(from)
    .filter((l) => l.event === 'datagram' && (l.json as Reading | null)?.id === id)
    .map((l) => ({ ...(l.json as Reading), from: String(l.from) }));

function device(kind: 'node' | 'quickjs', id: string, extra: string[] = []): Proc {
  const script = kind === 'node' ? join(EX, 'device/node.js') : join(EX, 'quickjs/run-device.js');
  return dev.node(`${kind}-device`, script, ['--server', srvAddr, '--collector', `${addrC1}:${PORT}`, '--id', id, ...DEVICE_ARGS, ...extra]);
}

/**
 * `ping` with a payload size: true when every echo got a reply the kernel accepted. As root,
 * ping reads a raw socket, which the kernel feeds before it checks ICMP checksums, and this
 * ping does not check them either: so the kernel's own counters are the judge. Every reply
 * must count as an echo reply and none as a checksum or header error.
 */
async function ping(from: Host, addr: string, count = 3, size = 56): Promise<boolean> {
  const before = await from.snmp();
  const r = await from.exec(['ping', '-n', '-c', String(count), '-s', String(size), '-W', '2', '-i', '0.2', addr], 15_000);
  const after = await from.snmp();
  const d = (k: string) => after[k] - before[k];
  assert.is(d('Icmp.InCsumErrors'), 0, `ICMP checksum errors in ${from.name} pinging ${addr}`);
  assert.is(d('Ip.InHdrErrors'), 0, `IP header errors in ${from.name} pinging ${addr}`);
  if (r.code !== 0) return false;
  assert.ok(d('Icmp.InEchoReps') >= count, `${count} echo replies accepted by the kernel, got ${d('Icmp.InEchoReps')}`);
  return true;
}

const memory = (p: Proc, phase: string): LogLine | undefined => p.lines.filter((l) => l.event === 'memory' && l.phase === phase).pop();

const { it, lab } = useLab(test, (lab) => {
  [srv, c1, dev] = lab.star('srv', 'c1', 'dev');
  srvAddr = '198.18.2.1'; // the hub's address on the second spoke's link
});

it('setup: server, a Linux client on a tun, and a UDP collector on its VPN address', async () => {
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  await server.waitFor('tun_up');
  client = c1.client('client', ['-s', '198.18.1.1', '--name', 'c1', ...CLIENT_ARGS]);
  addrC1 = String((await client.waitFor('ready')).address);
  listener = c1.node('collector', join(FIX, 'example-udp-listen.js'), [addrC1, String(PORT)]);
  await listener.waitFor('listening');
});

it('the device on Node gets an address and answers ping from the Linux client (small and near-MTU echoes)', async () => {
  nodeDev = device('node', 'node-1');
  const r = await nodeDev.waitFor('ready');
  addrNode = String(r.address);
  assert.match(addrNode, /^10\.0\./);
  assert.is(r.server, 'simplevpn');
  assert.ok(await ping(c1, addrNode), `c1 -> ${addrNode}`);
  assert.ok(await ping(c1, addrNode, 3, 1400), `c1 -> ${addrNode}, 1400-byte echoes`);
});

it('the same device bundle in QuickJS gets an address and answers ping', async () => {
  qjsDev = device('quickjs', 'qjs-1', ['--memory-every', '1']);
  const r = await qjsDev.waitFor('ready');
  addrQjs = String(r.address);
  assert.is.not(addrQjs, addrNode);
  assert.ok(await ping(c1, addrQjs), `c1 -> ${addrQjs}`);
  assert.ok(await ping(c1, addrQjs, 3, 1400), `c1 -> ${addrQjs}, 1400-byte echoes`);
  assert.ok(memory(qjsDev, 'loaded'), 'the runner reports the engine\'s memory after loading the bundles');
});

it('the UDP collector on the Linux client receives both devices\' telemetry: JSON readings, from their addresses, seq increasing', async () => {
  await until('three readings from each device', () => readings('node-1').length >= 3 && readings('qjs-1').length >= 3, 10_000);
  const k = await c1.snmp();
  assert.is(k['Udp.InCsumErrors'], 0, 'no UDP checksum errors on the collector host');
  assert.is(k['Ip.InHdrErrors'], 0, 'no IP header errors on the collector host');
  for (const [id, addr] of [
    ['node-1', addrNode],
    ['qjs-1', addrQjs],
  ]) {
    const rs = readings(id);
    let last = 0;
    for (const r of rs) {
      assert.is(r.from, addr, `${id} sends from its VPN address`);
      assert.ok(Number.isInteger(r.seq) && r.seq > last, `${id}: seq ${r.seq} after ${last}`);
      last = r.seq;
      assert.ok(r.uptime_s >= 0 && r.uptime_s < 600, `${id}: uptime_s ${r.uptime_s}`);
      assert.ok(r.temp_c > -40 && r.temp_c < 85, `${id}: temp_c ${r.temp_c}`);
    }
  }
});

it('the server killed with SIGKILL and started again: both devices reconnect with their addresses, answer ping, and telemetry resumes', async () => {
  const fromNode = nodeDev.lines.length;
  const fromQjs = qjsDev.lines.length;
  const fromClient = client.lines.length;
  await server.stop('SIGKILL');
  await nodeDev.waitFor('down', () => true, 10_000, fromNode);
  await qjsDev.waitFor('down', () => true, 10_000, fromQjs);
  const seqBefore = Math.max(...readings('node-1').map((r) => r.seq));
  const seqBeforeQ = Math.max(...readings('qjs-1').map((r) => r.seq));
  const fromListener = listener.lines.length;
  server = srv.server(SERVER_ARGS);
  await server.waitFor('listening');
  const rn = await nodeDev.waitFor('ready', () => true, 20_000, fromNode);
  const rq = await qjsDev.waitFor('ready', () => true, 20_000, fromQjs);
  assert.is(rn.address, addrNode, 'the Node device kept its address');
  assert.is(rq.address, addrQjs, 'the QuickJS device kept its address');
  assert.is((await client.waitFor('ready', () => true, 20_000, fromClient)).address, addrC1);
  await until(`ping ${addrNode} after the restart`, () => ping(c1, addrNode, 1), 15_000, 200);
  assert.ok(await ping(c1, addrQjs), `c1 -> ${addrQjs} after the restart`);
  await until('readings after the restart', () => readings('node-1', fromListener).length >= 2 && readings('qjs-1', fromListener).length >= 2, 10_000);
  assert.ok(readings('node-1', fromListener)[0].seq > seqBefore, 'node-1 seq continues');
  assert.ok(readings('qjs-1', fromListener)[0].seq > seqBeforeQ, 'qjs-1 seq continues');
  const connects = nodeDev.lines.slice(fromNode).filter((l) => l.event === 'connecting').length;
  assert.ok(connects >= 1, 'reconnect attempts are logged');
});

it('the Node gateway answers ping and serves UDP echo and status on its VPN address', async () => {
  gateway = dev.node('gateway', join(EX, 'node-gateway/main.js'), ['--server', srvAddr, '--name', 'gw-1', '--max-backoff', '1']);
  const r = await gateway.waitFor('ready');
  addrGw = String(r.address);
  assert.ok(await ping(c1, addrGw), `c1 -> ${addrGw}`);
  const echo = await c1.exec([process.execPath, join(FIX, 'example-udp-ask.js'), addrGw, '7', 'hello over the VPN'], 10_000);
  assert.is(echo.code, 0, echo.stdout + echo.stderr);
  const e = JSON.parse(echo.stdout.trim().split('\n').pop()!);
  assert.is(e.text, 'hello over the VPN');
  assert.is(e.from, addrGw);
  const st = await c1.exec([process.execPath, join(FIX, 'example-udp-ask.js'), addrGw, '7070', 'status?'], 10_000);
  assert.is(st.code, 0, st.stdout + st.stderr);
  const status = JSON.parse(JSON.parse(st.stdout.trim().split('\n').pop()!).text);
  assert.is(status.name, 'gw-1');
  assert.is(status.state, 'ready');
  assert.is(status.address, addrGw);
  assert.ok(status.echo_replies >= 3, `echo_replies ${status.echo_replies}`);
  const none = await c1.exec([process.execPath, join(FIX, 'example-udp-ask.js'), addrGw, '9', 'nobody here', '1000'], 10_000);
  assert.is(none.code, 1, 'a port with no service stays silent');
});

it('SIGTERM: the devices and the gateway exit 0; the QuickJS runtime is freed with nothing held', async () => {
  // Memory of the QuickJS device after traffic, for examples/README.md.
  const ready = memory(qjsDev, 'ready');
  const running = memory(qjsDev, 'running');
  assert.is((await qjsDev.stop('SIGTERM')).code, 0);
  const disposed = await qjsDev.waitFor('runtime_disposed', () => true, 1000);
  assert.is(disposed.sockets, 0);
  assert.is(disposed.timers, 0);
  const stopped = await qjsDev.waitFor('stopped', () => true, 1000);
  assert.ok(Number(stopped.echo_replies) >= 7, `QuickJS echo replies: ${stopped.echo_replies}`);
  assert.is(stopped.bad_checksum, 0);
  assert.is(stopped.malformed, 0);
  const fmt = (l?: LogLine) => (l ? `${l.memory_used_size} B used, ${l.obj_count} objects` : 'n/a');
  console.log(`  QuickJS device memory: loaded ${fmt(memory(qjsDev, 'loaded'))}; ready ${fmt(ready)}; running ${fmt(running)}; stopped ${fmt(memory(qjsDev, 'stopped'))}`);
  assert.is((await nodeDev.stop('SIGTERM')).code, 0);
  const ns = await nodeDev.waitFor('stopped', () => true, 1000);
  assert.ok(Number(ns.echo_replies) >= 7, `Node echo replies: ${ns.echo_replies}`);
  assert.is((await gateway.stop('SIGTERM')).code, 0);
  await gateway.waitFor('stopped', () => true, 1000);
  assert.is((await listener.stop('SIGTERM')).code, 0);
});

it('every namespace is gone after the lab is destroyed', async () => {
  await lab().destroy();
  assert.equal(lab().remaining(), []);
});

test.run();
