// The read side of a tun with offloads (linux/tun-offload.ts), on batches laid out as the
// binding hands them over (a virtio-net header before each packet): super-packets split, or
// wrapped whole as KIND_SUPER frames; partial checksums completed; what cannot be handed on
// counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readOffloaded } from '../../../linux/tun-offload.js';
import { SUPER_HEADER } from '../../../protocol/index.js';
import { isSuperFrame, superGsoSize } from '../../../common/offload/super.js';
import { GSO_TCPV4, GSO_TCPV6, TCP_ACK, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, writeVnet } from '../../../common/offload/vnet.js';
import { type FlowModel, refChecksumsValid, refPacket } from '../../support/offload-reference.js';

const flow: FlowModel = { src: 0x0a000002, dst: 0x0a000003, sport: 40000, dport: 5201, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 1, window: 500 };

/** A slab of entries, each [flags, gsoType, gsoSize, packet]: as the binding reads them. */
function batch(entries: Array<[number, number, number, Uint8Array]>): { slab: ArrayBuffer; lengths: Uint32Array } {
  const total = entries.reduce((n, e) => n + VNET_HDR_LEN + e[3].length, 0);
  const bytes = new Uint8Array(total);
  const lengths = new Uint32Array(64);
  let at = 0;
  entries.forEach(([flags, type, gso, p], i) => {
    writeVnet(bytes, at, flags, type, 40, gso, 20, 16);
    bytes.set(p, at + VNET_HDR_LEN);
    lengths[i] = VNET_HDR_LEN + p.length;
    at += lengths[i];
  });
  return { slab: bytes.buffer, lengths };
}

const stats = () => ({ rxPackets: 0, rxBytes: 0, rxSuperPackets: 0, rxUnsplittable: 0 });

test('a super-packet is split into segments and a partial checksum completed; views stay valid after the call', () => {
  const payload = new Uint8Array(4000).map((_, i) => i);
  const superPacket = refPacket({ flow, id: 1, seq: 10, flags: TCP_ACK, payload }, 'partial');
  const small = refPacket({ flow, id: 9, seq: 5000, flags: TCP_ACK, payload: new Uint8Array(10) }, 'partial');
  const plain = refPacket({ flow, id: 10, seq: 5010, flags: TCP_ACK, payload: new Uint8Array(10) });
  const { slab, lengths } = batch([
    [VNET_F_NEEDS_CSUM, GSO_TCPV4, 1448, superPacket],
    [VNET_F_NEEDS_CSUM, 0, 0, small],
    [0, 0, 0, plain],
  ]);
  const views: Uint8Array[] = [new Uint8Array(0)];
  const st = stats();
  const n = readOffloaded(slab, lengths, 3, views, st, false);
  assert.is(n, 3 + 2, 'three segments, then the two packets');
  for (let i = 0; i < 3; i++) {
    const want = refPacket({ flow, id: 1 + i, seq: 10 + i * 1448, flags: TCP_ACK, payload: payload.subarray(i * 1448, (i + 1) * 1448) });
    assert.equal(new Uint8Array(views[i]), want, `segment ${i}`);
  }
  assert.ok(refChecksumsValid(views[3]), 'the partial checksum completed');
  assert.equal(new Uint8Array(views[4]), plain);
  assert.equal(st, { rxPackets: 5, rxBytes: views.slice(0, 5).reduce((s, v) => s + v.length, 0), rxSuperPackets: 1, rxUnsplittable: 0 });
  // The next batch gets buffers of its own.
  const again = batch([[VNET_F_NEEDS_CSUM, GSO_TCPV4, 1448, superPacket]]);
  const kept = views.slice(0, 3).map((v) => v.slice());
  readOffloaded(again.slab, again.lengths, 1, [], stats(), false);
  views.slice(0, 3).forEach((v, i) => assert.equal(v, kept[i]));
});

test('with wrap, a super-packet becomes one KIND_SUPER frame carrying it as read', () => {
  const superPacket = refPacket({ flow, id: 1, seq: 10, flags: TCP_ACK, payload: new Uint8Array(3000) }, 'partial');
  const { slab, lengths } = batch([[VNET_F_NEEDS_CSUM, GSO_TCPV4, 1448, superPacket]]);
  const views: Uint8Array[] = [];
  const st = stats();
  assert.is(readOffloaded(slab, lengths, 1, views, st, true), 1);
  const f = views[0];
  assert.ok(isSuperFrame(f, 0, f.length));
  assert.is(superGsoSize(f, 0), 1448);
  assert.equal(f.subarray(SUPER_HEADER), superPacket);
  assert.is(st.rxSuperPackets, 1);
});

test('what cannot be handed on is counted, and the rest of the batch goes on', () => {
  const udp = refPacket({ flow, id: 1, seq: 10, flags: TCP_ACK, payload: new Uint8Array(3000) });
  udp[9] = 17;
  const ok = refPacket({ flow, id: 2, seq: 10, flags: TCP_ACK, payload: new Uint8Array(10) });
  const { slab, lengths } = batch([
    [VNET_F_NEEDS_CSUM, GSO_TCPV4, 1448, udp], // a GSO type that does not match the packet
    [0, GSO_TCPV6, 1448, ok], // not turned on, so not expected
    [0, 0, 0, ok],
  ]);
  const views: Uint8Array[] = [];
  const st = stats();
  assert.is(readOffloaded(slab, lengths, 3, views, st, false), 1);
  assert.equal(new Uint8Array(views[0]), ok);
  assert.is(st.rxUnsplittable, 2);
});

test.run();
