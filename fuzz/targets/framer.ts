// protocol/framer.ts: a byte stream cut into chunks at arbitrary points must give the frames
// that reading it in one piece gives, and both what the protocol's framing rules (PROTOCOL.md,
// "Framing") give, read by the simple model below; errors the same, at the same place; the
// bytes held for an unfinished frame equal to what arrived of it, in a buffer at most twice
// that (16 bytes at least), never the length the header announced; a frame that was assembled
// across chunks unchanged by what comes after it (the caller may keep it); nothing thrown.
//
// Input: [max-frame choice] [cut count n (low 4 bits)] [n chunk lengths] [stream...]
import { E_IHL, E_TOO_LONG, E_VERSION, Framer, KEEPALIVE, KIND_REQUEST, T_CLIENT, T_MTU, ascii, extMessage, seedRequest, u16 } from '../../protocol/index.js';
import { type FuzzTarget, InputReader, check } from '../engine/target.js';

const MAX_FRAMES = [65535, 1500, 576, 100, 40, 20, 16];

interface Reading {
  frames: Uint8Array[];
  error: string | null;
  /** Bytes of an unfinished frame at the end (when there is no error). */
  pending: number;
}

/** The framing rules, read straight from PROTOCOL.md: the reference the framer is held to. */
function model(s: Uint8Array, max: number): Reading {
  const frames: Uint8Array[] = [];
  let p = 0;
  for (;;) {
    const r = s.length - p;
    if (r === 0) return { frames, error: null, pending: 0 };
    const version = s[p] >> 4;
    let len: number;
    if (version === 4) {
      const hl = (s[p] & 15) * 4;
      if (hl < 20) return { frames, error: E_IHL, pending: 0 };
      if (r < 4) return { frames, error: null, pending: r };
      len = Math.max(hl, s[p + 2] * 256 + s[p + 3]);
    } else if (version === 6) {
      if (r < 6) return { frames, error: null, pending: r };
      len = 40 + s[p + 4] * 256 + s[p + 5];
    } else return { frames, error: E_VERSION, pending: 0 };
    if (len > max) return { frames, error: E_TOO_LONG, pending: 0 };
    if (r < len) return { frames, error: null, pending: r };
    frames.push(s.subarray(p, p + len));
    p += len;
  }
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

function sameReading(a: Reading, b: Reading, what: string): void {
  check(a.frames.length === b.frames.length, `${what}: ${a.frames.length} frames, expected ${b.frames.length}`);
  for (let i = 0; i < a.frames.length; i++) check(same(a.frames[i], b.frames[i]), `${what}: frame ${i} differs`);
  check(a.error === b.error, `${what}: error ${a.error}, expected ${b.error}`);
  if (a.error === null) check(a.pending === b.pending, `${what}: ${a.pending} bytes pending, expected ${b.pending}`);
}

/** The framer's buffer for the unfinished frame (private: read only to check its size). */
const partOf = (f: Framer): Uint8Array => (f as unknown as { part: Uint8Array }).part;

export const framerTarget: FuzzTarget = {
  name: 'framer',
  about: 'protocol/framer.ts: a stream cut at arbitrary points reads as in one piece and as the framing rules say; memory held grows with bytes sent',
  covers: ['protocol/framer.js'],
  ciRuns: 10000,
  maxLength: 4096,
  dictionary: [
    [0x45, 0x00], [0x46], [0x4f], [0x44], [0x60, 0, 0, 0], [0x00, 0x14], [0x00, 0x13], [0xff, 0xff], [0x05, 0xdc], [0x02, 0x40], [0, 0x28],
  ].map((a) => Uint8Array.from(a)),
  seeds() {
    const ext = extMessage(0, 0, KIND_REQUEST, [[T_MTU, u16(1500)], [T_CLIENT, ascii('fuzz')]]);
    const v6 = new Uint8Array(48);
    v6[0] = 0x60;
    v6[5] = 8;
    const data = new Uint8Array(60);
    data.set([0x45, 0, 0, 60]);
    const stream = (max: number, cuts: number[], ...frames: Uint8Array[]) => {
      const body = frames.flatMap((f) => Array.from(f));
      return Uint8Array.from([max, cuts.length, ...cuts, ...body]);
    };
    return [
      stream(0, [], KEEPALIVE, seedRequest(0)),
      stream(0, [3, 1, 17], ext, data, KEEPALIVE),
      stream(1, [7, 0, 50], v6, data, v6),
      stream(3, [2], data, data),
    ];
  },
  run(input) {
    const r = new InputReader(input);
    const max = MAX_FRAMES[r.u8() % MAX_FRAMES.length];
    const cuts = Array.from({ length: r.u8() & 15 }, () => r.u8());
    const stream = r.rest();
    const want = model(stream, max);

    // In one piece, through next().
    const one = new Framer(max);
    one.push(stream);
    const oneFrames: Uint8Array[] = [];
    for (let f; (f = one.next()) !== null; ) oneFrames.push(f);
    sameReading({ frames: oneFrames, error: one.error, pending: one.pending }, want, 'in one piece');

    // In chunks, through advance().
    const f = new Framer(max);
    const frames: Uint8Array[] = [];
    const assembled: Array<[view: Uint8Array, copy: Uint8Array]> = [];
    let at = 0;
    let framed = 0;
    for (let i = 0; i <= cuts.length && (at < stream.length || i === 0); i++) {
      const end = i < cuts.length ? Math.min(stream.length, at + cuts[i]) : stream.length;
      // A copy: a transport reuses its receive buffer, and so does this (below).
      const chunk = Uint8Array.from(stream.subarray(at, end));
      f.push(chunk);
      for (let n; (n = f.advance()) > 0; ) {
        check(n <= max, `frame of ${n} bytes over the maximum ${max}`);
        const view = f.buf.subarray(f.start, f.start + n);
        frames.push(Uint8Array.from(view));
        framed += n;
        if (f.buf !== chunk) {
          check(f.start === 0 && f.buf.length === n, 'an assembled frame is not alone in a buffer of its length');
          assembled.push([view, Uint8Array.from(view)]);
        }
      }
      at = end;
      // The chunk is the transport's again: scribbled over, as the next read would.
      chunk.fill(0xee);
      if (f.error !== null) break;
      check(f.pending === at - framed, `${f.pending} bytes held after ${at} read and ${framed} framed`);
      const part = partOf(f);
      check(part.length <= Math.max(16, 2 * f.pending), `${part.length} bytes set aside for an unfinished frame of ${f.pending}`);
    }
    sameReading({ frames, error: f.error, pending: f.pending }, want, `in ${cuts.length + 1} chunks`);
    for (const [view, copy] of assembled) check(same(view, copy), 'an assembled frame changed after it was returned');

    // A failed framer stays failed.
    if (f.error !== null) {
      f.push(KEEPALIVE);
      check(f.advance() === 0 && f.next() === null, 'the framer read on after an error');
    }
  },
};
