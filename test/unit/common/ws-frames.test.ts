// The reading of WebSocket frames off a socket's chunks (common/ws-frames.ts), as the server
// reads a client's (masked) and the Node client the server's (unmasked):
// the payload of binary messages comes out unmasked and in order however the frames are cut
// into chunks (a byte at a time, fragments, control frames between them, every header form);
// control frames come out whole, as received; each rule `ws` applies to a client's frames
// fails with the same close status, and nothing is read after a close frame or an error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameReader } from '../../../common/ws-frames.js';
import { OP, frame } from '../../support/websocket-kit.js';
import { rng } from '../../support/server-net.js';

const MAX_MESSAGE = 256 * 1024;
const MAX_FRAGMENTS = 1024;
const CLIENT = { masked: true, maxMessage: MAX_MESSAGE, maxFragments: MAX_FRAGMENTS };

function reader() {
  const got = { data: [] as Buffer[], control: [] as Buffer[], fail: [] as Array<[number, string]> };
  const r = new FrameReader({
    data: (b) => got.data.push(Buffer.from(b)),
    control: (f) => got.control.push(Buffer.from(f)),
    fail: (status, _m, code) => got.fail.push([status, code]),
  }, CLIENT);
  return { r, got, bytes: () => Buffer.concat(got.data) };
}

function random(n: number, seed: number): Buffer {
  const rand = rng(seed);
  return Buffer.from(Array.from({ length: n }, () => (rand() * 256) | 0));
}

/** Feeds `wire` in pieces of the sizes `cut` gives, in turn. */
function feed(r: FrameReader, wire: Buffer, cut: (i: number) => number): void {
  for (let o = 0, i = 0; o < wire.length; i++) {
    const n = Math.max(1, cut(i));
    // A copy per piece: the reader unmasks in place, as in a socket's chunk.
    r.push(Buffer.from(wire.subarray(o, o + n)));
    o += n;
  }
}

test('the payload of binary messages, every length form, fragments and control frames between them, cut into chunks anyhow', () => {
  const a = random(100, 1);
  const b = random(300, 2);
  const c = random(70_000, 3);
  const d = random(5, 4);
  const wire = Buffer.concat([
    frame(OP.binary, a),
    frame(OP.binary, b, { fin: false }),
    frame(OP.ping, 'hello'),
    frame(OP.cont, c, { fin: false }),
    frame(OP.pong, new Uint8Array(0)),
    frame(OP.cont, d),
    frame(OP.binary, new Uint8Array(0)),
  ]);
  const want = Buffer.concat([a, b, c, d]);
  for (const [what, cut] of [
    ['whole', () => wire.length],
    ['a byte at a time', () => 1],
    ['3 bytes at a time', () => 3],
    ['random pieces', ((rand) => () => 1 + ((rand() * 2000) | 0))(rng(9))],
    ['pieces of 16 KiB', () => 16384],
  ] as Array<[string, (i: number) => number]>) {
    const { r, got, bytes } = reader();
    feed(r, wire, cut);
    assert.equal(got.fail, [], what);
    assert.ok(bytes().equals(want), `${what}: the stream's bytes`);
    assert.is(got.control.length, 2, `${what}: the ping and the pong`);
    assert.ok(got.control[0].equals(wire.subarray(2 + 4 + 100 + 4 + 4 + 300, 2 + 4 + 100 + 4 + 4 + 300 + 2 + 4 + 5)), `${what}: the ping as received`);
    assert.is(got.control[1][0] & 0x0f, OP.pong);
  }
});

test('a payload comes out as views of the chunk, unmasked in place: no copy', () => {
  const seen: Buffer[] = [];
  const r2 = new FrameReader({ data: (b) => seen.push(b), control: () => {}, fail: () => assert.unreachable() }, CLIENT);
  const chunk = frame(OP.binary, random(1000, 5));
  r2.push(chunk);
  assert.is(seen.length, 1);
  assert.is(seen[0].buffer, chunk.buffer);
  assert.is(seen[0].byteOffset, chunk.byteOffset + 4 + 4);
});

test('bad frames fail with the status ws would close with; nothing is read after', () => {
  const cases: Array<[string, Buffer, number]> = [
    ['a message over the maximum', frame(OP.binary, new Uint8Array(MAX_MESSAGE + 1)), 1009],
    ['a message over the maximum in fragments', Buffer.concat(Array.from({ length: 5 }, (_, i) => frame(i ? OP.cont : OP.binary, new Uint8Array(60_000), { fin: false }))), 1009],
    ['a text message', frame(OP.text, 'hello'), 1003],
    ['an unmasked frame', frame(OP.binary, new Uint8Array(4), { mask: false }), 1002],
    ['an unmasked ping', frame(OP.ping, 'x', { mask: false }), 1002],
    ['a fragmented ping', frame(OP.ping, 'x', { fin: false }), 1002],
    ['a control frame over 125 bytes', frame(OP.ping, new Uint8Array(126)), 1002],
    ['a close frame of one byte', frame(OP.close, new Uint8Array(1)), 1002],
    ['RSV1', frame(OP.binary, new Uint8Array(4), { rsv: 4 }), 1002],
    ['RSV2', frame(OP.binary, new Uint8Array(4), { rsv: 2 }), 1002],
    ['an unknown opcode', frame(3, new Uint8Array(4)), 1002],
    ['an unknown control opcode', frame(0xb, new Uint8Array(4)), 1002],
    ['a continuation with nothing to continue', frame(OP.cont, new Uint8Array(4)), 1002],
    ['a new message inside a fragmented one', Buffer.concat([frame(OP.binary, new Uint8Array(4), { fin: false }), frame(OP.binary, new Uint8Array(4))]), 1002],
    ['more than MAX_FRAGMENTS fragments', Buffer.concat([frame(OP.binary, new Uint8Array(1), { fin: false }), ...Array.from({ length: MAX_FRAGMENTS + 5 }, () => frame(OP.cont, new Uint8Array(1), { fin: false }))]), 1008],
    ['a 64-bit length past 2^32', (() => {
      const f = frame(OP.binary, new Uint8Array(0));
      const h = Buffer.alloc(14);
      h[0] = 0x82;
      h[1] = 0x80 | 127;
      h.writeUInt32BE(1, 2);
      return Buffer.concat([h, f]);
    })(), 1009],
  ];
  const after = random(10, 6);
  for (const [what, wire, status] of cases) {
    for (const piece of [wire.length, 1]) {
      const { r, got } = reader();
      // Whatever follows is never read.
      feed(r, Buffer.concat([wire, frame(OP.binary, after), frame(OP.ping, 'p')]), () => piece);
      assert.equal(got.fail.map((f) => f[0]), [status], `${what} (pieces of ${piece})`);
      assert.ok(r.done);
      assert.is(got.control.length, 0, `${what}: nothing read after`);
      assert.ok(got.data.every((d) => !d.equals(after)), `${what}: no data after`);
    }
  }
});

test('exactly MAX_MESSAGE bytes in MAX_FRAGMENTS fragments is allowed, and the count starts again with each message', () => {
  const { r, got, bytes } = reader();
  const per = MAX_MESSAGE / MAX_FRAGMENTS;
  for (let m = 0; m < 2; m++) {
    const parts = Array.from({ length: MAX_FRAGMENTS }, (_, i) => frame(i ? OP.cont : OP.binary, new Uint8Array(per).fill(m + 1), { fin: i === MAX_FRAGMENTS - 1 }));
    r.push(Buffer.concat(parts));
  }
  assert.equal(got.fail, []);
  assert.is(bytes().length, 2 * MAX_MESSAGE);
});

test('a close frame is handed on whole, and nothing after it is read', () => {
  const { r, got } = reader();
  const close = frame(OP.close, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]));
  feed(r, Buffer.concat([frame(OP.binary, random(10, 7)), close, frame(OP.binary, random(10, 8))]), () => 2);
  assert.is(got.control.length, 1);
  assert.ok(got.control[0].equals(close));
  assert.is(Buffer.concat(got.data).length, 10);
  assert.ok(r.done);
});

test('stop(): nothing more is read, even within the chunk being read', () => {
  const seen: number[] = [];
  const r = new FrameReader({
    data: (b) => {
      seen.push(b.length);
      r.stop();
    },
    control: () => assert.unreachable(),
    fail: () => assert.unreachable(),
  }, CLIENT);
  r.push(Buffer.concat([frame(OP.binary, random(10, 1)), frame(OP.binary, random(20, 2)), frame(OP.ping, 'x')]));
  assert.equal(seen, [10]);
});

test('reading a server: unmasked frames pass as they are, cut anyhow; a masked one fails with 1002; no limit on messages', () => {
  const server = { masked: false, maxMessage: Number.MAX_SAFE_INTEGER, maxFragments: Number.MAX_SAFE_INTEGER };
  const a = random(300_000, 11);
  const b = random(3, 12);
  const wire = Buffer.concat([frame(OP.binary, a, { mask: false }), frame(OP.ping, 'x', { mask: false }), frame(OP.binary, b, { mask: false, fin: false }), frame(OP.cont, b, { mask: false })]);
  for (const piece of [wire.length, 1, 1000]) {
    const got: Buffer[] = [];
    const control: Buffer[] = [];
    const r = new FrameReader({ data: (d) => got.push(Buffer.from(d)), control: (f) => control.push(Buffer.from(f)), fail: () => assert.unreachable() }, server);
    feed(r, wire, () => piece);
    assert.ok(Buffer.concat(got).equals(Buffer.concat([a, b, b])), `pieces of ${piece}`);
    assert.equal(control.map((c) => c.toString('latin1', 2)), ['x']);
  }
  const fails: number[] = [];
  const r = new FrameReader({ data: () => assert.unreachable(), control: () => assert.unreachable(), fail: (status) => fails.push(status) }, server);
  r.push(frame(OP.binary, random(10, 13)));
  assert.equal(fails, [1002]);
});

test.run();
