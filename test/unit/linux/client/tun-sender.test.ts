// linux/client/tun-sender.ts: batches from the tun go out as runs of adjacent packets; when
// the socket is full the tun is paused and the refused runs wait, in order, for onWritable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../../../../client-sdk/src/client.js';
import { TunSender } from '../../../../linux/client/tun-sender.js';
import type { TunDevice } from '../../../../linux/tun.js';
import { Framer } from '../../../../protocol/index.js';
import { FakeClock, FakeNet, dataPacket, extReply } from '../../../support/sdk-fakes.js';

function setup() {
  const net = new FakeNet();
  const calls: string[] = [];
  const tun = { pause: () => calls.push('pause'), resume: () => calls.push('resume') } as unknown as TunDevice;
  let sender: TunSender;
  const client = new Client({
    connect: net.connect,
    tun: { write: () => true },
    clock: new FakeClock(),
    random: () => 0.5,
    onWritable: () => sender.writable(),
    onState: (s) => s.state !== 'ready' && sender.reset(),
  });
  sender = new TunSender(tun, () => client);
  client.start();
  net.last.open();
  net.last.deliver(extReply('10.0.0.5', { prefix: 24 }));
  assert.is(client.info.state, 'ready');
  calls.length = 0;
  return { client, sender, net, calls, sock: () => net.last };
}

/** Packets back to back in one buffer, as the binding hands over a batch, with their views. */
function batch(...packets: Uint8Array[]): Uint8Array[] {
  const all = new Uint8Array(packets.reduce((n, p) => n + p.length, 0));
  const views: Uint8Array[] = [];
  let o = 0;
  for (const p of packets) {
    all.set(p, o);
    views.push(all.subarray(o, o + p.length));
    o += p.length;
  }
  return views;
}

/** The data frames the socket carried after the request, in order. */
function sentFrames(stream: Uint8Array): Uint8Array[] {
  const f = new Framer();
  f.push(stream);
  f.next(); // the request
  const out: Uint8Array[] = [];
  for (let x = f.next(); x; x = f.next()) out.push(x.slice());
  return out;
}

const pk = (n: number) => dataPacket('10.0.0.5', '10.0.0.9', 40 + n, n);

test('adjacent packets of a batch go out in one write', () => {
  const s = setup();
  const before = s.sock().writes.length;
  const b = batch(pk(1), pk(2), pk(3));
  s.sender.send(b, 3);
  assert.is(s.sock().writes.length - before, 1);
  assert.equal(sentFrames(s.sock().stream), [pk(1), pk(2), pk(3)]);
  assert.equal(s.calls, []);
});

test('a full socket pauses the tun; the refused packets wait and go first, in order, when it has room', () => {
  const s = setup();
  s.sock().full = true;
  s.sender.send(batch(pk(1), pk(2)), 2);
  assert.equal(s.calls, ['pause']);
  assert.is(s.client.stats.dropped, 0, 'nothing dropped');
  s.sock().drain();
  assert.equal(s.calls, ['pause', 'resume']);
  s.sender.send(batch(pk(3)), 1);
  assert.equal(sentFrames(s.sock().stream), [pk(1), pk(2), pk(3)]);
  assert.is(s.client.stats.dropped, 0);
  assert.is(s.client.stats.txPackets, 3);
});

test('packets of a separate buffer in the same batch wait behind the refused run, so order holds', () => {
  const s = setup();
  const a = batch(pk(1));
  const b = batch(pk(2));
  s.sock().full = true;
  s.sender.send([a[0]!, b[0]!], 2);
  s.sock().full = false; // room for one write, but the drain has not come yet
  s.sock().drain();
  assert.equal(sentFrames(s.sock().stream), [pk(1), pk(2)]);
});

test('room for part of what waits: the rest keeps waiting and the tun stays paused', () => {
  const s = setup();
  const a = batch(pk(1));
  const b = batch(pk(2));
  s.sock().full = true;
  s.sender.send([a[0]!, b[0]!], 2);
  s.sock().drain(pk(1).length); // exactly one packet's room
  assert.equal(s.calls, ['pause'], 'not resumed');
  s.sock().drain();
  assert.equal(s.calls, ['pause', 'resume']);
  assert.equal(sentFrames(s.sock().stream), [pk(1), pk(2)]);
});

test('a lost connection drops what waited, counted, and reading resumes', () => {
  const s = setup();
  s.sock().full = true;
  s.sender.send(batch(pk(1), pk(2), pk(3)), 3);
  s.sock().end('reset');
  assert.equal(s.calls, ['pause', 'resume']);
  assert.is(s.sender.dropped, 3);
});

test('a malformed packet is dropped by the SDK, never held (it would wait forever)', () => {
  const s = setup();
  s.sender.send([pk(1).subarray(0, 10)], 1);
  assert.equal(s.calls, []);
  assert.is(s.client.stats.dropped, 1);
});

test.run();
