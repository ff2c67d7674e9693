// The server's framer: a frame that spans chunks is handed on as the bytes
// held from earlier chunks and a view of the chunk that completes it. Checked for frames cut
// at every byte of the header and of the payload, into 2 and 3 chunks: the parts joined are
// the frame; the first part holds HEAD_PART bytes or the whole frame; the parts stay valid
// after later chunks; and what an unfinished frame keeps alive is at most twice what arrived.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Framer } from '../../../../protocol/index.js';
import { HEAD_PART, SessionFramer } from '../../../../server/src/data/session-framer.js';

/** An IPv4 frame of `len` bytes (header, then bytes counting from `seed`). */
function frame(len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len).map((_, i) => (seed + i * 7) & 255);
  f[0] = 0x45;
  f[2] = len >> 8;
  f[3] = len & 255;
  return f;
}

interface Got {
  bytes: Uint8Array;
  /** The frame as the framer handed it: its parts, still pointing where they did. */
  parts: Uint8Array[];
}

/** Pushes `chunks` (fresh copies each, as Node's reads are) through the server's framer; the frames and their parts. */
function feed(f: SessionFramer, chunks: Uint8Array[], check?: (f: SessionFramer) => void): Got[] {
  const out: Got[] = [];
  for (const c of chunks) {
    f.push(c.slice());
    for (let n; (n = f.advance()) > 0; ) {
      if (f.split === 0) {
        out.push({ bytes: f.buf.slice(f.start, f.start + n), parts: [f.buf.subarray(f.start, f.start + n)] });
        continue;
      }
      assert.is(f.length, n);
      assert.ok(f.split >= HEAD_PART, `a first part of ${f.split} bytes, fewer than HEAD_PART`);
      const head = f.buf.subarray(f.start, f.start + f.split);
      const tail = f.tail.subarray(f.tailStart, f.tailStart + n - f.split);
      out.push({ bytes: f.joined(), parts: [head, tail] });
    }
    check?.(f);
  }
  return out;
}

const join = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** The frames found, and their parts read back after every chunk was pushed, equal `want`. */
function expectFrames(got: Got[], want: Uint8Array[], what: string): void {
  assert.is(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Buffer.from(got[i].bytes).equals(want[i]), `${what}: frame ${i}`);
    assert.ok(Buffer.from(join(got[i].parts)).equals(want[i]), `${what}: frame ${i}'s parts changed after later chunks`);
  }
}

/** What the framer's unfinished frame keeps alive, against what arrived of it. */
function bounded(f: SessionFramer): void {
  const part = (f as unknown as { part: Uint8Array }).part;
  const held = f.pending;
  if (held === 0) return;
  assert.ok(part.buffer.byteLength <= Math.max(16, 2 * held), `${held} bytes held keep ${part.buffer.byteLength} alive`);
}

test('a frame cut into two chunks at every byte, then a whole one: the parts are the frame', () => {
  for (const len of [20, 60, HEAD_PART - 1, HEAD_PART, HEAD_PART + 1, 400, 1500]) {
    const a = frame(len, len);
    const b = frame(100, 3);
    const stream = join([a, b]);
    for (let cut = 1; cut < len; cut++) {
      const f = new SessionFramer(65535);
      const got = feed(f, [stream.subarray(0, cut), stream.subarray(cut)], bounded);
      expectFrames(got, [a, b], `${len} bytes cut at ${cut}`);
      assert.is(f.pending, 0);
      // Short frames, or a cut before HEAD_PART of a longer one's bytes: never a first part below HEAD_PART.
      if (len <= HEAD_PART) assert.is(got[0].parts.length, 1, `${len} bytes cut at ${cut}: whole`);
    }
  }
});

test('a frame cut into three chunks at every pair of bytes: the first two chunks held, the third a view', () => {
  const len = 300;
  const a = frame(len, 9);
  for (let i = 1; i < len - 1; i++) {
    for (let j = i + 1; j < len; j++) {
      const f = new SessionFramer(65535);
      const got = feed(f, [a.subarray(0, i), a.subarray(i, j), a.subarray(j)], bounded);
      expectFrames(got, [a], `cut at ${i} and ${j}`);
    }
  }
});

test('a 64 KiB frame cut in its header, in its payload, and across three chunks, behind another frame', () => {
  const len = 65000;
  const a = frame(len, 1);
  const lead = frame(1000, 2);
  const stream = join([lead, a]);
  const cuts = [...Array.from({ length: 200 }, (_, i) => 1000 + i + 1), 1000 + 32768, 1000 + 40000, stream.length - 1];
  for (const cut of cuts) {
    const f = new SessionFramer(65535);
    expectFrames(feed(f, [stream.subarray(0, cut), stream.subarray(cut)], bounded), [lead, a], `cut at ${cut}`);
    const g = new SessionFramer(65535);
    const mid = Math.min(stream.length - 1, cut + 20000);
    expectFrames(feed(g, [stream.subarray(0, cut), stream.subarray(cut, mid), stream.subarray(mid)], bounded), [lead, a], `cut at ${cut} and ${mid}`);
  }
});

test('the first part is a view of the earlier chunk only when the frame is half of it or more', () => {
  const a = frame(60000, 5);
  // 40,000 bytes of a 50,000-byte chunk: a view, no copy.
  const lead = frame(10000, 6);
  const f = new SessionFramer(65535);
  const c1 = join([lead, a.subarray(0, 40000)]);
  f.push(c1);
  assert.is(f.advance(), 10000);
  assert.is(f.advance(), 0);
  assert.is((f as unknown as { part: Uint8Array }).part.buffer, c1.buffer);
  f.push(a.slice(40000));
  assert.is(f.advance(), 60000);
  assert.is(f.buf.buffer, c1.buffer);
  assert.is(f.split, 40000);
  // 1,000 bytes at the end of a 60,000-byte chunk: copied, the chunk let go.
  const g = new SessionFramer(65535);
  const c2 = join([frame(59000, 7), a.subarray(0, 1000)]);
  g.push(c2);
  assert.is(g.advance(), 59000);
  assert.is(g.advance(), 0);
  assert.is.not((g as unknown as { part: Uint8Array }).part.buffer, c2.buffer);
  assert.is((g as unknown as { part: Uint8Array }).part.length, 1000);
});

test("the protocol Framer (the clients') joins as before, and the server's next() joins parts", () => {
  const a = frame(5000, 4);
  const plain = new Framer();
  plain.push(a.slice(0, 3000));
  assert.is(plain.next(), null);
  plain.push(a.slice(3000));
  const whole = plain.next()!;
  assert.ok(Buffer.from(whole).equals(a));
  const parts = new SessionFramer(65535);
  parts.push(a.slice(0, 3000));
  assert.is(parts.next(), null);
  parts.push(a.slice(3000));
  assert.ok(Buffer.from(parts.next()!).equals(a));
});

test.run();
