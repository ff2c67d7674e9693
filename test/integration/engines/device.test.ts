// The device example in every engine, against the real server and a real Linux client, in
// network namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── dev
//   Linux client (tun)     server (tun,        the device, in one engine at a time:
//   + UDP collector        --state)            Node, QuickJS, XS, Bun, Deno, ES5 context
//
// In each engine: the device gets an address; the Linux client pings it (the kernel on c1 is
// the judge of the replies the device's own IP stack builds) and receives its telemetry over
// UDP; the link stays up on keepalives alone; the server is killed and started again with its
// lease file, and the device comes back with the same address and answers ping again; on
// SIGTERM the runner stops the device and exits 0 by itself (nothing left open).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../../support/paths.js';
import { type Host, type Proc, until, useLab } from '../../support/lab.js';
import { DEVICE_ENGINES, startDevice } from '../../support/engines/device-runners.js';

const PORT = 5005;
const SERVER_HOST = '198.18.2.1'; // the server's address on the device's link
// keepalive 1 s: the device answers several while the test holds the link; idle-timeout 4 s:
// a link that keeps nothing alive is dropped within the hold.
const STATE = mkdtempSync(join(tmpdir(), 'simplevpn-engines-'));
const SERVER_ARGS = ['--keepalive', '1', '--idle-timeout', '4', '--state', join(STATE, 'leases.json')];
// Telemetry every 10 s: the first reading goes out 10 s after the start, so until then the
// device sends nothing but keepalives and ping replies.
const DEVICE_ARGS = ['--interval', '10', '--min-backoff', '0.2', '--max-backoff', '1', '--timeout', '2'];
/** How long the first connection is held with no traffic but keepalives (> the idle timeout). */
const HOLD_MS = 4500;

let srv: Host, c1: Host, dev: Host;
let server: Proc, client: Proc, collector: Proc;
let addrC1 = '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `ping -c 3 -W 2 address` from the Linux client: every echo answered, and every reply
 * accepted by the kernel (its counters judge the checksums the device's IP stack computed).
 */
async function pingDevice(address: string): Promise<void> {
  const before = await c1.snmp();
  const ok = await c1.ping(address, 3, 2);
  const after = await c1.snmp();
  const d = (k: string) => after[k] - before[k];
  assert.ok(ok, `ping -c 3 -W 2 ${address} from the Linux client`);
  assert.is(d('Icmp.InCsumErrors'), 0, `ICMP checksum errors pinging ${address}`);
  assert.is(d('Ip.InHdrErrors'), 0, `IP header errors pinging ${address}`);
  assert.ok(d('Icmp.InEchoReps') >= 3, `3 echo replies accepted by the kernel, got ${d('Icmp.InEchoReps')}`);
}
const startServer = () => srv.server(SERVER_ARGS);

const { it } = useLab(
  test,
  async (lab) => {
    [srv, c1, dev] = lab.star('srv', 'c1', 'dev');
    server = startServer();
    await server.waitFor('listening');
    await server.waitFor('tun_up');
    client = c1.client('client', ['-s', '198.18.1.1', '--name', 'c1', '--max-backoff', '1', '--timeout', '2']);
    addrC1 = String((await client.waitFor('ready')).address);
    collector = c1.node('collector', join(FIXTURES, 'example-udp-listen.js'), [addrC1, String(PORT)]);
    await collector.waitFor('listening');
  },
  { skipNote: 'engine device tests skipped', cleanUp: () => rmSync(STATE, { recursive: true, force: true }) },
);

for (const { engine, what } of DEVICE_ENGINES) {
  it(`${what}: an address, ping from the Linux client, telemetry to it, keepalives, the same address after a server restart, a clean exit`, async () => {
    const id = `${engine}-1`;
    const device = startDevice(dev, engine, SERVER_HOST, ['--server', SERVER_HOST, '--collector', `${addrC1}:${PORT}`, '--id', id, ...DEVICE_ARGS]);
    try {
      const ready = await device.waitFor('ready', () => true, 20_000);
      const address = String(ready.address);
      assert.match(address, /^10\.0\.\d+\.\d+$/);
      assert.is(ready.server, 'simplevpn');
      assert.is(ready.keepalive, 1, 'the keepalive the server pushed');
      await pingDevice(address);

      // Keepalives: the link outlives the server's idle timeout with nothing else to carry.
      const held = device.lines.length;
      await sleep(HOLD_MS);
      assert.equal(device.lines.slice(held).filter((l) => l.event === 'down'), [], 'the link stayed up on keepalives');

      // The server killed and started again from its lease file.
      const before = device.lines.length;
      const clientBefore = client.lines.length;
      await server.stop('SIGKILL');
      await device.waitFor('down', () => true, 10_000, before);
      server = startServer();
      await server.waitFor('listening');
      const back = await device.waitFor('ready', () => true, 20_000, before);
      assert.is(back.address, address, 'the same address after the reconnect');
      await client.waitFor('ready', () => true, 20_000, clientBefore);
      await until(`ping ${address} after the restart`, () => c1.ping(address, 1, 1), 15_000, 200);
      await pingDevice(address);

      // Telemetry from the device's address reaches the collector on the Linux client.
      await until(`a reading from ${id}`, () => collector.lines.some((l) => l.event === 'datagram' && (l.json as { id?: string } | null)?.id === id), 15_000);
      const reading = collector.lines.find((l) => l.event === 'datagram' && (l.json as { id?: string } | null)?.id === id)!;
      assert.is(reading.from, address, 'the reading comes from the device\'s VPN address');

      const exit = await device.stop('SIGTERM', 8000);
      assert.is(exit.code, 0, `${engine}: the runner exits 0 by itself after SIGTERM:\n${device.tail()}`);
      const stopped = await device.waitFor('stopped', () => true, 1000);
      assert.is(device.lines.filter((l) => l.event === 'ready').length, 2, 'ready twice: before and after the restart');
      assert.ok(Number(stopped.connects) >= 2, `connection attempts: ${stopped.connects}`);
      assert.ok(Number(stopped.keepalives) >= 3, `keepalives sent and answered: ${stopped.keepalives}`);
      assert.ok(Number(stopped.echo_replies) >= 6, `echo replies: ${stopped.echo_replies}`);
      assert.is(stopped.bad_checksum, 0);
      assert.is(stopped.malformed, 0);
      const disposed = device.lines.find((l) => l.event === 'runtime_disposed');
      // The bridged engines (QuickJS, XS) say what their host still held for them.
      if (disposed) assert.equal([disposed.sockets, disposed.timers, disposed.guest ?? 'nothing'], [0, 0, 'nothing'], `${engine}: nothing held after the stop`);
      // The engine's own memory figures, where its runner reports them (QuickJS, XS).
      const memory = device.lines.filter((l) => l.event === 'memory').map((l) => `${l.phase} ${l.slots !== undefined ? `${l.slots} slots` : `${l.memory_used_size} B`}`);
      console.log(`  ${engine}: ${address}, ${stopped.echo_replies} echo replies, ${stopped.keepalives} keepalives, ${stopped.connects} connection attempts${memory.length ? '; memory: ' + memory.join(', ') : ''}`);
    } finally {
      await device.stop('SIGKILL', 2000);
      // A test that failed between the kill and the restart leaves the next engine a server.
      if (server.exitCode !== null || server.child.signalCode) {
        server = startServer();
        await server.waitFor('listening').catch(() => {});
      }
    }
  });
}

test.run();
