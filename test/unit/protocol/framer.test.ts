// The framer finds packet boundaries in a stream with no length prefix. Properties over
// random frame sequences and random chunkings, then exact cases from the seed protocol.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { E_IHL, E_TOO_LONG, E_VERSION, Framer, frameLength } from '../../../protocol/index.js';

const ERRORS = [E_VERSION, E_IHL, E_TOO_LONG];
const RUNS = 2000;

// ---- generators -------------------------------------------------------------------------

/** Deterministic filler so frames are random without large shrink trees. */
function noise(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    b[i] = s & 255;
  }
  return b;
}

type FrameSpec =
  | { kind: 'v4'; ihl: number; payload: number; seed: number }
  | { kind: 'v4short'; ihl: number; tl: number; seed: number }
  | { kind: 'control'; src: number; dst: number }
  | { kind: 'v6'; payload: number; seed: number };

const frameSpec: fc.Arbitrary<FrameSpec> = fc.oneof(
  fc.record({ kind: fc.constant('v4' as const), ihl: fc.integer({ min: 5, max: 15 }), payload: fc.integer({ min: 0, max: 300 }), seed: fc.integer() }),
  // Total length below the header length (0 included): the frame is the header alone.
  fc
    .integer({ min: 5, max: 15 })
    .chain((ihl) => fc.record({ kind: fc.constant('v4short' as const), ihl: fc.constant(ihl), tl: fc.integer({ min: 0, max: ihl * 4 - 1 }), seed: fc.integer() })),
  fc.record({ kind: fc.constant('control' as const), src: fc.nat({ max: 0xffffffff }), dst: fc.nat({ max: 0xffffffff }) }),
  fc.record({ kind: fc.constant('v6' as const), payload: fc.integer({ min: 0, max: 300 }), seed: fc.integer() }),
);

function buildFrame(s: FrameSpec): Uint8Array {
  switch (s.kind) {
    case 'v4': {
      const hl = s.ihl * 4;
      const f = noise(s.seed, hl + s.payload);
      f[0] = 0x40 | s.ihl;
      f[2] = f.length >> 8;
      f[3] = f.length & 255;
      return f;
    }
    case 'v4short': {
      const f = noise(s.seed, s.ihl * 4);
      f[0] = 0x40 | s.ihl;
      f[2] = s.tl >> 8;
      f[3] = s.tl & 255;
      return f;
    }
    case 'control': {
      const f = Uint8Array.from([0x45, 0x14, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      new DataView(f.buffer).setUint32(12, s.src);
      new DataView(f.buffer).setUint32(16, s.dst);
      return f;
    }
    case 'v6': {
      const f = noise(s.seed, 40 + s.payload);
      f[0] = 0x60 | (f[0] & 15);
      f[4] = s.payload >> 8;
      f[5] = s.payload & 255;
      return f;
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

type Chunking = { mode: 'one' } | { mode: 'bytes' } | { mode: 'cuts'; cuts: number[] };

const chunking: fc.Arbitrary<Chunking> = fc.oneof(
  fc.constant({ mode: 'one' as const }),
  fc.constant({ mode: 'bytes' as const }),
  fc.record({ mode: fc.constant('cuts' as const), cuts: fc.array(fc.nat(), { maxLength: 40 }) }),
);

/** Cuts `stream` into separate buffers (copies, so in-chunk views can be told apart). */
function cut(stream: Uint8Array, c: Chunking): Uint8Array[] {
  let points: number[];
  if (c.mode === 'one') points = [];
  else if (c.mode === 'bytes') points = Array.from({ length: Math.max(0, stream.length - 1) }, (_, i) => i + 1);
  // Duplicates are kept on purpose: they make empty chunks.
  else points = c.cuts.map((x) => (stream.length ? x % (stream.length + 1) : 0)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(stream.slice(prev, p));
    prev = p;
  }
  chunks.push(stream.slice(prev));
  return chunks;
}

interface Out {
  frame: Uint8Array;
  start: number;
  chunk: number;
  inChunk: boolean;
}

/**
 * Feeds chunks to a framer through advance(), the allocation-free API. Each loop must end
 * within a bound; a loop that does not fails the property instead of hanging the test.
 */
function feed(framer: Framer, chunks: Uint8Array[]): { out: Out[]; pendingAfter: number[] } {
  const out: Out[] = [];
  const pendingAfter: number[] = [];
  chunks.forEach((c, ci) => {
    framer.push(c);
    // Every frame is at least 20 bytes and at most one reassembled frame completes per chunk.
    const bound = c.length / 20 + 2;
    for (let i = 0; ; i++) {
      if (i > bound) throw new Error('advance() kept returning frames beyond what the chunk can hold');
      const n = framer.advance();
      if (n === 0) break;
      const inChunk = framer.buf === c;
      out.push({ frame: framer.buf.slice(framer.start, framer.start + n), start: framer.start, chunk: ci, inChunk });
    }
    pendingAfter.push(framer.pending);
  });
  return { out, pendingAfter };
}

// ---- properties --------------------------------------------------------------------------

test('valid frames (IPv4 IHL 5..15, seed control, IPv6) in any chunking come out frame for frame, byte for byte', () => {
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 12 }), chunking, (specs, ch) => {
      const frames = specs.map(buildFrame);
      const stream = concat(frames);
      const chunks = cut(stream, ch);
      const framer = new Framer();
      const { out } = feed(framer, chunks);
      assert.is(framer.error, null);
      assert.is(framer.pending, 0);
      assert.is(out.length, frames.length);
      for (let i = 0; i < frames.length; i++) assert.equal(out[i].frame, frames[i], `frame ${i}`);
    }),
    { numRuns: RUNS },
  );
});

test('start is the offset in the chunk for in-chunk frames (returned as views of it) and -1 for reassembled ones', () => {
  fc.assert(
    fc.property(fc.array(frameSpec, { minLength: 1, maxLength: 10 }), chunking, (specs, ch) => {
      const frames = specs.map(buildFrame);
      const chunks = cut(concat(frames), ch);
      const chunkStart: number[] = [];
      let acc = 0;
      for (const c of chunks) {
        chunkStart.push(acc);
        acc += c.length;
      }
      const { out } = feed(new Framer(), chunks);
      let off = 0;
      for (let i = 0; i < frames.length; i++) {
        const len = frames[i].length;
        // The chunk holding the frame's last byte is the one in which next() returns it.
        let ci = chunks.length - 1;
        while (chunkStart[ci] > off + len - 1 || chunks[ci].length === 0) ci--;
        const whole = chunkStart[ci] <= off;
        assert.is(out[i].chunk, ci, `frame ${i} returned while chunk ${ci} is current`);
        assert.is(out[i].start, whole ? off - chunkStart[ci] : 0, `start of frame ${i}`);
        assert.is(out[i].inChunk, whole, `frame ${i} is ${whole ? 'a view of the chunk' : 'a buffer of its own'}`);
        off += len;
      }
    }),
    { numRuns: RUNS },
  );
});

test('pending is the number of bytes of the unfinished frame after each chunk', () => {
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 8 }), chunking, (specs, ch) => {
      const frames = specs.map(buildFrame);
      const ends: number[] = [];
      let acc = 0;
      for (const f of frames) ends.push((acc += f.length));
      const chunks = cut(concat(frames), ch);
      const { pendingAfter } = feed(new Framer(), chunks);
      let pos = 0;
      chunks.forEach((c, i) => {
        pos += c.length;
        const lastEnd = [0, ...ends].filter((e) => e <= pos).pop()!;
        assert.is(pendingAfter[i], pos - lastEnd, `after chunk ${i}`);
      });
    }),
    { numRuns: RUNS },
  );
});

test('random bytes never throw and every push/next loop ends, with frames that are a prefix of the input or one of the exported errors', () => {
  fc.assert(
    fc.property(
      fc.array(frameSpec, { maxLength: 4 }),
      fc.uint8Array({ maxLength: 600 }),
      chunking,
      fc.integer({ min: 20, max: 70000 }),
      (specs, garbage, ch, maxFrame) => {
        const valid = specs.map(buildFrame).filter((f) => f.length <= maxFrame);
        const stream = concat([...valid, garbage]);
        const framer = new Framer(maxFrame);
        const { out } = feed(framer, cut(stream, ch));
        const got = concat(out.map((o) => o.frame));
        assert.equal(got, stream.subarray(0, got.length), 'frames are the stream, in order');
        for (let i = 0; i < valid.length; i++) assert.equal(out[i].frame, valid[i], `valid frame ${i} before the garbage`);
        if (framer.error === null) assert.is(got.length + framer.pending, stream.length, 'no byte lost');
        else assert.ok(ERRORS.includes(framer.error), framer.error);
        for (const o of out) assert.ok(o.frame.length <= maxFrame);
      },
    ),
    { numRuns: RUNS },
  );
});

test('an unfinished frame holds a buffer of at most twice the bytes that arrived (16 at least), never its declared length up front', () => {
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 6 }), chunking, fc.integer({ min: 60, max: 65535 }), (specs, ch, maxFrame) => {
      const frames = specs.map(buildFrame).filter((f) => f.length <= maxFrame);
      // Ends with the first bytes of a frame declaring the maximum: the attack of issue 12.
      const long = noise(9, 20);
      long[0] = 0x45;
      long[2] = maxFrame >> 8;
      long[3] = maxFrame & 255;
      const framer = new Framer(maxFrame);
      for (const c of cut(concat([...frames, long]), ch)) {
        framer.push(c);
        while (framer.advance() > 0);
        const held = (framer as unknown as { part: Uint8Array }).part.length;
        assert.ok(held <= Math.max(16, 2 * framer.pending), `${held} bytes held for ${framer.pending} received`);
      }
      assert.is(framer.pending, 20);
    }),
    { numRuns: RUNS },
  );
});

test('4 bytes of a header declaring 65,535 bytes hold a 16-byte buffer; the frame, once complete, is one buffer of exactly its length', () => {
  const frame = noise(5, 65535);
  frame[0] = 0x45;
  frame[2] = 0xff;
  frame[3] = 0xff;
  const f = new Framer();
  const part = () => (f as unknown as { part: Uint8Array }).part.length;
  f.push(frame.subarray(0, 4));
  assert.is(f.advance(), 0);
  assert.is(part(), 16);
  // Then a byte at a time for a while: the buffer doubles as bytes arrive.
  for (let i = 4; i < 1000; i++) {
    f.push(frame.subarray(i, i + 1));
    assert.is(f.advance(), 0);
  }
  assert.ok(part() >= 1000 && part() <= 2000, `${part()} bytes held for 1,000`);
  f.push(frame.subarray(1000));
  assert.is(f.advance(), 65535);
  assert.is(f.buf.length, 65535);
  assert.equal(f.buf, frame);
  assert.is(part(), 0, 'nothing held once the frame is out');
});

test('after an error the framer stays failed whatever is pushed next', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.array(frameSpec, { minLength: 1, maxLength: 4 }), (garbage, specs) => {
      const framer = new Framer(1000);
      const { out } = feed(framer, [garbage]);
      fc.pre(framer.error !== null);
      const error = framer.error;
      const after = feed(framer, [concat(specs.map(buildFrame)), garbage]);
      assert.is(after.out.length, 0);
      assert.is(framer.error, error);
      assert.ok(out.length <= garbage.length / 20);
    }),
    { numRuns: RUNS },
  );
});

test('a frame longer than maxFrame gives E_TOO_LONG in any chunking, after the frames before it', () => {
  const tooLong = fc.oneof(
    // IPv4: total length above maxFrame.
    fc.record({ v: fc.constant(4), over: fc.integer({ min: 1, max: 2000 }), ihl: fc.integer({ min: 5, max: 15 }) }),
    // IPv6: 40 + payload length above maxFrame.
    fc.record({ v: fc.constant(6), over: fc.integer({ min: 1, max: 2000 }), ihl: fc.constant(0) }),
  );
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 4 }), tooLong, fc.integer({ min: 60, max: 60000 }), chunking, (specs, t, maxFrame, ch) => {
      const before = specs.map(buildFrame).filter((f) => f.length <= maxFrame);
      const len = maxFrame + t.over;
      const head = noise(len, 40);
      if (t.v === 4) {
        head[0] = 0x40 | t.ihl;
        head[2] = len >> 8;
        head[3] = len & 255;
      } else {
        head[0] = 0x60;
        head[4] = (len - 40) >> 8;
        head[5] = (len - 40) & 255;
      }
      const framer = new Framer(maxFrame);
      const { out } = feed(framer, cut(concat([...before, head]), ch));
      assert.is(framer.error, E_TOO_LONG);
      assert.is(out.length, before.length);
    }),
    { numRuns: RUNS },
  );
});

test('a frame of exactly maxFrame bytes is accepted', () => {
  fc.assert(
    fc.property(fc.integer({ min: 60, max: 4000 }), fc.boolean(), chunking, (maxFrame, v6, ch) => {
      const f = noise(maxFrame, maxFrame);
      if (v6) {
        f[0] = 0x60;
        f[4] = (maxFrame - 40) >> 8;
        f[5] = (maxFrame - 40) & 255;
      } else {
        f[0] = 0x45;
        f[2] = maxFrame >> 8;
        f[3] = maxFrame & 255;
      }
      const framer = new Framer(maxFrame);
      const { out } = feed(framer, cut(f, ch));
      assert.is(framer.error, null);
      assert.is(out.length, 1);
      assert.equal(out[0].frame, f);
    }),
    { numRuns: 500 },
  );
});

test('IHL below 5 gives E_IHL as soon as the first byte arrives, even alone', () => {
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 4 }), fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 30 }), (specs, ihl, rest) => {
      const before = specs.map(buildFrame);
      const framer = new Framer();
      const { out } = feed(framer, [concat(before), Uint8Array.of(0x40 | ihl)]);
      assert.is(framer.error, E_IHL);
      assert.is(out.length, before.length);
      feed(framer, [rest]);
      assert.is(framer.error, E_IHL);
    }),
    { numRuns: RUNS },
  );
});

test('a version other than 4 or 6 gives E_VERSION from the first byte, even when split', () => {
  const badVersion = fc.integer({ min: 0, max: 15 }).filter((v) => v !== 4 && v !== 6);
  fc.assert(
    fc.property(fc.array(frameSpec, { maxLength: 4 }), badVersion, fc.nat({ max: 15 }), chunking, (specs, v, low, ch) => {
      const before = specs.map(buildFrame);
      const framer = new Framer();
      // Everything before arrives in any chunking; the bad byte comes alone.
      const { out } = feed(framer, [...cut(concat(before), ch), Uint8Array.of((v << 4) | low)]);
      assert.is(framer.error, E_VERSION);
      assert.is(out.length, before.length);
    }),
    { numRuns: RUNS },
  );
});

// ---- exact cases ----------------------------------------------------------------------------

const KEEPALIVE = Uint8Array.from([0x45, 0x14, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);

test('a control message with total length 0 is exactly 20 bytes and the next frame follows it', () => {
  const data = noise(7, 28);
  data[0] = 0x45;
  data[2] = 0;
  data[3] = 28;
  const chunk = concat([KEEPALIVE, data, KEEPALIVE]);
  const f = new Framer();
  f.push(chunk);
  const a = f.next();
  assert.equal(a, KEEPALIVE);
  assert.is(f.start, 0);
  const b = f.next();
  assert.equal(b, data);
  assert.is(f.start, 20);
  const c = f.next();
  assert.equal(c, KEEPALIVE);
  assert.is(f.start, 48);
  assert.is(f.next(), null);
  assert.is(f.pending, 0);
  assert.is(frameLength(KEEPALIVE, 0, 20, 65535), 20);
});

test('a total length smaller than IHL*4 counts as IHL*4', () => {
  // IHL 6 (24 bytes) claiming total length 20, then IHL 15 (60 bytes) claiming 1.
  const a = noise(1, 24);
  a[0] = 0x46;
  a[2] = 0;
  a[3] = 20;
  const b = noise(2, 60);
  b[0] = 0x4f;
  b[2] = 0;
  b[3] = 1;
  const f = new Framer();
  f.push(concat([a, b]));
  assert.equal(f.next(), a);
  assert.equal(f.next(), b);
  assert.is(f.next(), null);
  assert.is(frameLength(b, 0, 4, 65535), 60);
});

test('a frame split one byte at a time is returned whole, once, at its last byte', () => {
  const frame = noise(3, 44);
  frame[0] = 0x47; // IHL 7: 28-byte header
  frame[2] = 0;
  frame[3] = 44;
  const f = new Framer();
  for (let i = 0; i < frame.length - 1; i++) {
    f.push(frame.subarray(i, i + 1));
    assert.is(f.next(), null, `byte ${i}`);
    assert.is(f.pending, i + 1);
  }
  f.push(frame.subarray(frame.length - 1));
  const out = f.next();
  assert.equal(out, frame);
  assert.is(f.start, 0, 'a reassembled frame starts its own buffer');
  assert.is(f.buf.length, frame.length);
  assert.is(f.next(), null);
  assert.is(f.pending, 0);
  assert.is(f.error, null);
});

test('an IPv6 frame is 40 bytes plus its payload length', () => {
  const v6 = noise(4, 40 + 300);
  v6[0] = 0x60;
  v6[4] = 300 >> 8;
  v6[5] = 300 & 255;
  const f = new Framer();
  f.push(concat([v6, KEEPALIVE]));
  assert.equal(f.next(), v6);
  assert.equal(f.next(), KEEPALIVE);
});

test('a lone version-5 byte fails the framer at once and nothing pushed later is framed', () => {
  const f = new Framer();
  f.push(Uint8Array.of(0x50));
  assert.is(f.next(), null);
  assert.is(f.error, E_VERSION);
  f.push(KEEPALIVE);
  assert.is(f.next(), null);
  assert.is(f.error, E_VERSION);
});

test('frameLength needs 4 bytes for IPv4 and 6 for IPv6 before it can tell', () => {
  assert.is(frameLength(KEEPALIVE, 0, 0, 65535), 0);
  assert.is(frameLength(KEEPALIVE, 0, 3, 65535), 0);
  assert.is(frameLength(KEEPALIVE, 0, 4, 65535), 20);
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  assert.is(frameLength(v6, 0, 5, 65535), 0);
  assert.is(frameLength(v6, 0, 6, 65535), 40);
  assert.is(frameLength(Uint8Array.of(0x43), 0, 1, 65535), -2);
  assert.is(frameLength(Uint8Array.of(0x50), 0, 1, 65535), -1);
  assert.is(frameLength(KEEPALIVE, 0, 20, 19), -3);
});

test.run();
