// KIND_SUPER frames through the real server: T_OFFLOAD is answered only to a client that
// declares it (and only where 65535-byte frames are allowed); a super-packet reaches a
// client that declared it whole, whatever its MTU, and one that did not split into the
// segments its sender's kernel would have sent (byte for byte against the reference).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OFFLOAD_SUPER, SUPER_HEADER, T_OFFLOAD, eachTlv, type Tlv, u8 } from '../../../protocol/index.js';
import { writeSuperHeader } from '../../../common/offload/super.js';
import { TCP_ACK, TCP_PSH } from '../../../common/offload/vnet.js';
import { type FlowModel, refPacket } from '../../support/offload-reference.js';
import { extRequest, waitFor, withServer } from '../../support/server-net.js';

const DECLARE: Tlv[] = [[T_OFFLOAD, u8(OFFLOAD_SUPER)]];

function offloadIn(reply: Uint8Array): number {
  let v = -1;
  eachTlv(reply, (t, b) => {
    if (t === T_OFFLOAD) v = b[0];
  });
  return v;
}

async function replyTo(h: Parameters<Parameters<typeof withServer>[1]>[0], tlvs: Tlv[]): Promise<Uint8Array> {
  const c = await h.raw();
  c.write(extRequest(0, tlvs));
  await waitFor(() => c.frames.length > 0, 3000, 'the reply');
  c.destroy();
  return c.frames[0];
}

test('T_OFFLOAD is answered to a client that declares it, not to one that does not, nor where frames are capped below 65535', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    assert.is(offloadIn(await replyTo(h, DECLARE)), OFFLOAD_SUPER);
    assert.is(offloadIn(await replyTo(h, [])), -1);
    assert.is(offloadIn(await replyTo(h, [[T_OFFLOAD, u8(0)]])), -1, 'declared without the bit');
  });
  await withServer({ subnet: '10.9.0.0/24', maxFrame: 9000, mtu: 9000 }, async (h) => {
    assert.is(offloadIn(await replyTo(h, DECLARE)), -1);
  });
});

test('a super-packet goes whole to a client that declared T_OFFLOAD and split to one that did not', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const sender = h.sdk({ mtu: 1500, tlvs: DECLARE });
    const whole = h.sdk({ mtu: 1500, tlvs: DECLARE });
    const plain = h.sdk({ mtu: 1500 });
    for (const p of [sender, whole, plain]) await p.ready();
    const flow = (dst: number): FlowModel => ({ src: sender.address, dst, sport: 40000, dport: 5201, tos: 0, ttl: 64, df: true, options: new Uint8Array([1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]), ack: 99, window: 500 });
    const payload = new Uint8Array(20000).map((_, i) => i * 13);
    const frameFor = (dst: number) => {
      // As the kernel hands it over: a partial checksum, which the receiver replaces.
      const p = refPacket({ flow: flow(dst), id: 7, seq: 1000, flags: TCP_ACK | TCP_PSH, payload }, 'partial');
      const f = new Uint8Array(SUPER_HEADER + p.length);
      f.set(p, SUPER_HEADER);
      writeSuperHeader(f, 0, p.length, 1448);
      return f;
    };
    const toWhole = frameFor(whole.address);
    assert.ok(sender.client.send(toWhole));
    await waitFor(() => whole.packets.length === 1, 3000, 'the super-packet');
    assert.equal(new Uint8Array(whole.packets[0]), toWhole, 'whole, as sent, above its 1500-byte MTU');

    assert.ok(sender.client.send(frameFor(plain.address)));
    const n = Math.ceil(payload.length / 1448);
    await waitFor(() => plain.packets.length === n, 3000, 'the segments');
    for (let i = 0; i < n; i++) {
      const want = refPacket({ flow: flow(plain.address), id: 7 + i, seq: 1000 + i * 1448, flags: i === n - 1 ? TCP_ACK | TCP_PSH : TCP_ACK, payload: payload.subarray(i * 1448, (i + 1) * 1448) });
      assert.equal(new Uint8Array(plain.packets[i]), want, `segment ${i}`);
    }
  });
});

test('from a client that did not declare T_OFFLOAD, a frame that looks like one is an ordinary packet', async () => {
  await withServer({ subnet: '10.9.0.0/24' }, async (h) => {
    const sender = h.sdk({ mtu: 1500 });
    const other = h.sdk({ mtu: 1500 });
    await sender.ready();
    await other.ready();
    const p = refPacket({ flow: { src: sender.address, dst: other.address, sport: 1, dport: 2, tos: 0, ttl: 64, df: true, options: new Uint8Array(0), ack: 0, window: 0 }, id: 1, seq: 1, flags: TCP_ACK, payload: new Uint8Array(1000) });
    const f = new Uint8Array(SUPER_HEADER + p.length);
    f.set(p, SUPER_HEADER);
    writeSuperHeader(f, 0, p.length, 100);
    assert.ok(sender.client.send(f));
    await waitFor(() => other.packets.length === 1, 3000, 'the packet');
    assert.equal(new Uint8Array(other.packets[0]), f, 'forwarded as it is, not split');
  });
});

test.run();
