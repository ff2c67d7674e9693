// The server's tun port on a device with offloads: TCP segments switched in one chunk reach
// the kernel as one super-packet, written when the switch flushes; the rest as they came;
// drops and failures counted and reported as for a plain device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseIPv4 } from '../../../../protocol/index.js';
import { Metrics } from '../../../../server/src/metrics/metrics.js';
import type { Port } from '../../../../server/src/data/port.js';
import { Switch } from '../../../../server/src/data/switch.js';
import { type ServerTun, TunPort } from '../../../../server/src/data/tun-port.js';
import { GSO_TCPV4, TCP_ACK, type VnetHeader, readVnet } from '../../../../common/offload/vnet.js';
import { type FlowModel, refPacket } from '../../../support/offload-reference.js';

class OffloadDevice implements ServerTun {
  readonly name = 'fake0';
  readonly offload = true;
  readonly stats = { txRejected: 0 };
  readonly written: Array<{ hdr: VnetHeader | null; bytes: Uint8Array }> = [];
  next: 'ok' | 'full' | Error = 'ok';
  write(buf: Uint8Array, off: number, len: number): boolean {
    return this.take(null, buf, off, len);
  }
  writeVnet(hdr: Uint8Array, buf: Uint8Array, off: number, len: number): boolean {
    return this.take(readVnet(hdr, 0, {} as VnetHeader), buf, off, len);
  }
  private take(hdr: VnetHeader | null, buf: Uint8Array, off: number, len: number): boolean {
    if (this.next instanceof Error) throw this.next;
    if (this.next === 'full') return false;
    this.written.push({ hdr, bytes: buf.slice(off, off + len) });
    return true;
  }
  close(): void {}
}

const flow: FlowModel = { src: parseIPv4('10.0.0.2'), dst: parseIPv4('192.0.2.9'), sport: 40000, dport: 80, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 1, window: 500 };
const segment = (i: number) => refPacket({ flow, id: i, seq: 1000 * i, flags: TCP_ACK, payload: new Uint8Array(1000).fill(i) });

function setup() {
  const m = new Metrics();
  const sw = new Switch(m, parseIPv4('10.0.0.1'));
  const dev = new OffloadDevice();
  const failures: Error[] = [];
  const port = new TunPort(dev, sw, m, (err) => failures.push(err));
  sw.setFallback(port);
  // The sender: a port of its own, as a session is.
  const from: Port = { mtu: 65535, coalesce: true, write: () => true, deliver: () => true, flush() {} };
  return { m, sw, dev, port, failures, from };
}

test('segments of one flow in a chunk go to the kernel as one super-packet when the switch flushes', () => {
  const { m, sw, dev, from } = setup();
  const chunk = [segment(0), segment(1), segment(2)];
  for (const p of chunk) sw.route(from, p, 0, p.length, flow.dst);
  assert.is(dev.written.length, 0, 'held until the end of the chunk');
  sw.flush();
  assert.is(dev.written.length, 1);
  const w = dev.written[0];
  assert.equal([w.hdr?.gsoType, w.hdr?.gsoSize, w.bytes.length], [GSO_TCPV4, 1000, 20 + 20 + 3000]);
  assert.is(m.tunTxPackets, 1);
  // The next chunk corks again.
  const p = segment(3);
  sw.route(from, p, 0, p.length, flow.dst);
  sw.flush();
  assert.is(dev.written.length, 2);
  assert.equal(dev.written[1], { hdr: null, bytes: p }, 'a lone segment is written as it came');
});

test('a full device is counted as tun_full; a failing one is reported, not thrown at the sender', () => {
  const { m, sw, dev, from, failures } = setup();
  dev.next = 'full';
  for (const p of [segment(0), segment(1)]) sw.route(from, p, 0, p.length, flow.dst);
  sw.flush();
  assert.is(m.drops.tun_full, 1);
  dev.next = Object.assign(new Error('fake0: gone'), { code: 'EBADF' });
  for (const p of [segment(2), segment(3)]) sw.route(from, p, 0, p.length, flow.dst);
  sw.flush();
  assert.is(failures.length, 1);
  assert.is(m.drops.no_route, 1);
});

test.run();
