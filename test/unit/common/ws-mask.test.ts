// The masking the CLIs give ws in bufferutil's place (common/ws-mask.ts), both the one in use
// (bufferutil's native code where it loads) and the JavaScript one it falls back to: the same
// bytes as ws's own byte-at-a-time masking, for every length, every alignment of the memory,
// every offset into the output, and a buffer that is a view into a larger one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { bufferutilLoads } from '../../support/websocket-kit.js';
import * as wsMask from '../../../common/ws-mask.js';

function reference(src: Uint8Array, key: Uint8Array): Uint8Array {
  return Uint8Array.from(src, (b, i) => b ^ key[i & 3]);
}


test('the masking in use is bufferutil\'s native one wherever its binary loads, else the JavaScript one', () => {
  const native = bufferutilLoads();
  assert.is(wsMask.maskImplementation, native ? 'bufferutil' : 'js');
  assert.is(wsMask.mask === wsMask.jsMask, !native);
  assert.is(wsMask.unmask === wsMask.jsUnmask, !native);
});

for (const [impl, mask, unmask] of [
  ['in use', wsMask.mask, wsMask.unmask],
  ['JavaScript', wsMask.jsMask, wsMask.jsUnmask],
] as const) {

test(`${impl}: unmask: as a byte-at-a-time XOR, at every length from 0 to 80 and every alignment, in place and nowhere else`, () => {
  for (let len = 0; len <= 80; len++) {
    for (let start = 0; start < 4; start++) {
      const key = randomBytes(4);
      const backing = randomBytes(len + 8);
      const before = Uint8Array.from(backing);
      const view = backing.subarray(start, start + len);
      unmask(view, key);
      assert.equal(Array.from(view), Array.from(reference(before.subarray(start, start + len), key)), `length ${len} at ${start}`);
      assert.equal(Array.from(backing.subarray(0, start)), Array.from(before.subarray(0, start)), 'nothing before');
      assert.equal(Array.from(backing.subarray(start + len)), Array.from(before.subarray(start + len)), 'nothing after');
    }
  }
});

test(`${impl}: unmask twice gives the bytes back; a long buffer (1 MiB) as well`, () => {
  const key = randomBytes(4);
  const data = randomBytes(1 << 20);
  const copy = Buffer.from(data);
  unmask(data.subarray(3), key);
  assert.equal(Buffer.from(data.subarray(3)).equals(Buffer.from(reference(copy.subarray(3), key))), true);
  unmask(data.subarray(3), key);
  assert.ok(data.equals(copy));
});

test(`${impl}: mask: \`length\` bytes of the source into the output at the offset, masked, the rest of the output untouched`, () => {
  for (const [len, offset] of [[0, 0], [1, 2], [47, 6], [48, 10], [1400, 2], [1400, 14], [65536, 4], [65536, 10]]) {
    const key = randomBytes(4);
    const src = randomBytes(len + 5);
    const out = Buffer.alloc(offset + len + 3, 0xee);
    mask(src, key, out, offset, len);
    assert.equal(Buffer.from(out.subarray(offset, offset + len)).equals(Buffer.from(reference(src.subarray(0, len), key))), true, `${len} at ${offset}`);
    assert.ok(out.subarray(0, offset).every((b) => b === 0xee) && out.subarray(offset + len).every((b) => b === 0xee), 'outside untouched');
  }
});
}

test('JavaScript: buffers in turn from different memory, and views at different places of one, each masked right', () => {
  const key = randomBytes(4);
  const a = Buffer.from(new ArrayBuffer(4096));
  const b = Buffer.from(new ArrayBuffer(8192));
  a.fill(0x5a);
  b.fill(0xa5);
  const rounds: Array<[Buffer, number, number]> = [[a, 5, 600], [b, 3000, 1000], [a, 1024, 700], [b, 7, 64], [a, 4000, 96]];
  for (const [buf, at, len] of rounds) {
    const before = Buffer.from(buf);
    wsMask.jsUnmask(buf.subarray(at, at + len), key);
    assert.ok(Buffer.from(buf.subarray(at, at + len)).equals(Buffer.from(reference(before.subarray(at, at + len), key))), `${at}+${len}`);
    assert.ok(buf.subarray(0, at).equals(before.subarray(0, at)) && buf.subarray(at + len).equals(before.subarray(at + len)), 'nothing else');
    wsMask.jsUnmask(buf.subarray(at, at + len), key);
  }
});

test.run();
