// The server's framer hands the few bytes of an unfinished frame to its session as text
// (carry) and takes them back with the next chunk (resume): the frames found must be the
// protocol Framer's, byte for byte, however the stream is cut and whenever it is carried.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Framer } from '../../../../protocol/index.js';
import { CARRY_MAX, SessionFramer } from '../../../../server/src/data/session-framer.js';

/** A deterministic stream of IPv4 and IPv6 frames, 20 to 1,500 bytes, and their lengths. */
function stream(seed: number, count: number): { bytes: Uint8Array; lengths: number[] } {
  let s = seed;
  const rnd = (n: number) => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s % n;
  };
  const parts: Uint8Array[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < count; i++) {
    const v6 = rnd(4) === 0;
    const len = v6 ? 40 + rnd(200) : 20 + rnd(1480);
    const f = new Uint8Array(len).map(() => rnd(256));
    if (v6) {
      f[0] = 0x60;
      f[4] = (len - 40) >> 8;
      f[5] = (len - 40) & 255;
    } else {
      f[0] = 0x45;
      f[2] = len >> 8;
      f[3] = len & 255;
    }
    parts.push(f);
    lengths.push(len);
  }
  const bytes = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, lengths };
}

/** Chunk ends: small pieces (1-9 bytes) often, so that carried frames of every size occur. */
function cuts(seed: number, total: number): number[] {
  let s = seed;
  const out: number[] = [];
  for (let at = 0; at < total; ) {
    s = (s * 1103515245 + 12345) >>> 0;
    at = Math.min(total, at + (s % 3 === 0 ? 1 + (s % 9) : 1 + (s % 700)));
    out.push(at);
  }
  return out;
}

test('frames found through carry() and resume() are those of the plain Framer, for any chunking', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const { bytes, lengths } = stream(seed, 60);
    const plain = new Framer();
    const server = new SessionFramer();
    let carried: string | null = null;
    let carries = 0;
    const a: string[] = [];
    const b: string[] = [];
    let from = 0;
    for (const to of cuts(seed * 7, bytes.length)) {
      const chunk = bytes.slice(from, to); // a copy each: nothing may point into an earlier chunk
      from = to;
      plain.push(chunk);
      for (let f; (f = plain.next()) !== null; ) a.push(Buffer.from(f).toString('hex'));
      if (carried !== null) server.resume(carried);
      server.push(chunk);
      for (let f; (f = server.next()) !== null; ) b.push(Buffer.from(f).toString('hex'));
      assert.is(server.pending, plain.pending);
      carried = null;
      if (server.pending !== 0 && server.pending <= CARRY_MAX) {
        carried = server.carry();
        carries++;
        assert.is(carried.length, plain.pending);
        assert.is(server.pending, 0, 'the framer forgets what it carried');
      }
    }
    assert.is(plain.error, null);
    assert.is(server.error, null);
    assert.is(b.length, lengths.length);
    assert.equal(b, a);
    assert.ok(carries > 0, `seed ${seed}: no frame was carried`);
  }
});

test('bytes above 0x7f survive the text (latin1, one character a byte), the length not yet known included', () => {
  const f = new Uint8Array(300).map((_, i) => 0x80 + (i % 128));
  f[0] = 0x45;
  f[2] = 300 >> 8;
  f[3] = 300 & 255;
  for (const head of [1, 2, 3, 4, 5, 20, CARRY_MAX]) {
    const s = new SessionFramer();
    s.push(f.subarray(0, head));
    assert.is(s.advance(), 0);
    const text = s.carry();
    assert.is(text.length, head);
    const again = new SessionFramer();
    again.resume(text);
    again.push(f.subarray(head));
    // In two parts (the server's framer forwards a frame that spanned chunks so): next() joins them.
    assert.equal(Array.from(again.next()!), Array.from(f));
  }
});

test('a header that declares too long a frame still fails once resumed', () => {
  const s = new SessionFramer(1500);
  s.push(Uint8Array.of(0x45, 0));
  assert.is(s.advance(), 0);
  const again = new SessionFramer(1500);
  again.resume(s.carry());
  again.push(Uint8Array.of(0xff, 0xff));
  assert.is(again.advance(), 0);
  assert.ok(again.error !== null);
});

test.run();
