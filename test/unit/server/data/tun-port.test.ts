// The server's tun as a port: what it counts when the device takes a packet, is full, or the
// kernel refuses the packet; that any other failure is not swallowed; and what it does with
// the packets Linux routes into it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DST, SRC, parseIPv4, writeU32 } from '../../../../protocol/index.js';
import { Metrics } from '../../../../server/src/metrics/metrics.js';
import type { Port } from '../../../../server/src/data/port.js';
import { Switch } from '../../../../server/src/data/switch.js';
import { type ServerTun, TunPort } from '../../../../server/src/data/tun-port.js';

const ip = (s: string) => parseIPv4(s);

/** A device that answers as it is told: true, false ('full'), false with txRejected counted ('reject'), or throws. */
class FakeDevice implements ServerTun {
  readonly name = 'fake0';
  readonly written: number[][] = [];
  next: 'ok' | 'full' | 'reject' | Error = 'ok';
  stats?: { txRejected: number } = { txRejected: 0 };
  write(buf: Uint8Array, off: number, len: number): boolean {
    const n = this.next;
    if (n instanceof Error) throw n;
    if (n === 'reject') {
      this.stats!.txRejected++;
      return false;
    }
    if (n === 'full') return false;
    this.written.push(Array.from(buf.subarray(off, off + len)));
    return true;
  }
  close(): void {}
}

function packet(src: number, dst: number, len: number): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = 0x45;
  p[2] = len >> 8;
  p[3] = len & 255;
  writeU32(p, SRC, src);
  writeU32(p, DST, dst);
  return p;
}

function setup() {
  const m = new Metrics();
  const sw = new Switch(m, ip('10.0.0.1'));
  const dev = new FakeDevice();
  const failures: Error[] = [];
  const port = new TunPort(dev, sw, m, (err) => failures.push(err));
  return { m, sw, dev, port, failures };
}

test('written: tunTxPackets; full: tun_full; refused by the kernel: tun_rejected', () => {
  const { m, dev, port } = setup();
  const p = packet(ip('10.0.0.2'), ip('8.8.8.8'), 40);
  assert.is(port.write(p, 0, 40), true);
  dev.next = 'full';
  assert.is(port.write(p, 0, 40), false);
  dev.next = 'reject';
  assert.is(port.write(p, 0, 40), false);
  assert.is(port.write(p, 0, 40), false);
  dev.next = 'full';
  assert.is(port.write(p, 0, 40), false);
  assert.is(m.tunTxPackets, 1);
  assert.is(m.drops.tun_full, 2);
  assert.is(m.drops.tun_rejected, 2);
});

test('a device without stats: every false counts as full', () => {
  const { m, dev, port } = setup();
  delete dev.stats;
  dev.next = 'full';
  port.write(packet(1, 2, 20), 0, 20);
  assert.is(m.drops.tun_full, 1);
  assert.is(m.drops.tun_rejected, 0);
});

test('any other failure of the device (EBADF) is the device failing, not a drop: reported, never thrown at the sender', () => {
  const { m, dev, port, failures } = setup();
  const e = Object.assign(new Error('svpn0: writing a 40-byte packet failed: Bad file descriptor'), { code: 'EBADF' });
  dev.next = e;
  assert.is(port.write(packet(1, 2, 40), 0, 40), false);
  assert.equal(failures, [e]);
  assert.is(m.drops.tun_full + m.drops.tun_rejected + m.tunTxPackets, 0);
  assert.is(m.drops.no_route, 1);
});

test('fragments handed over together are written one packet each', () => {
  const { dev, port } = setup();
  const a = packet(1, 2, 28);
  const b = packet(1, 2, 36);
  const both = new Uint8Array(64);
  both.set(a);
  both.set(b, 28);
  assert.is(port.deliver(both, 2), true);
  assert.equal(dev.written, [Array.from(a), Array.from(b)]);
});

test('packets read from the tun: counted, non-IPv4 and runts dropped, the rest switched, then one flush', () => {
  const { m, sw, port } = setup();
  const got: Array<[string, number]> = [];
  let flushes = 0;
  const client: Port = {
    mtu: 1500,
    coalesce: false,
    write: (_b, _o, n) => (got.push(['write', n]), true),
    deliver: (d, n) => (got.push(['deliver', n]), true),
    flush: () => void flushes++,
  };
  sw.bind(ip('10.0.0.2'), client);
  sw.corked(client); // as a session does on its first delivery
  sw.setFallback(port);
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  const runt = new Uint8Array([0x45, 0, 0, 10, 1, 2, 3, 4, 5, 6]);
  const batch = [packet(ip('1.1.1.1'), ip('10.0.0.2'), 60), v6, runt, packet(ip('1.1.1.1'), ip('10.0.0.9'), 60), packet(ip('1.1.1.1'), ip('10.0.0.2'), 70)];
  port.receive(batch, 5);
  assert.equal(got, [
    ['write', 60],
    ['write', 70],
  ]);
  assert.is(m.tunRxPackets, 5);
  assert.is(m.drops.not_ipv4, 1, 'the runt');
  assert.is(m.drops.no_route, 2, 'nobody owns 10.0.0.9 nor the IPv6 destination, and neither is sent back into the tun');
  assert.is(flushes, 1);
});

test.run();
