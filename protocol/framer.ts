// Finds packet boundaries in the byte stream. The stream has no length prefix: each frame is
// a raw IP packet whose own header says how long it is. Seed control messages are bare
// 20-byte IPv4 headers with total length 0, so a v4 frame is never shorter than its header.

export const E_VERSION = 'IP version is neither 4 nor 6';
export const E_IHL = 'IPv4 header length below 20 bytes';
export const E_TOO_LONG = 'frame longer than the maximum';
const ERRORS = [E_VERSION, E_IHL, E_TOO_LONG];

/**
 * Length of the frame that starts at b[o], given `avail` bytes there: a positive length,
 * 0 when more bytes are needed to tell, or -1, -2, -3 for an impossible header
 * (bad version, IHL < 5, longer than `max`).
 */
export function frameLength(b: Uint8Array, o: number, avail: number, max: number): number {
  if (avail < 1) return 0;
  const version = b[o] >> 4;
  let len: number;
  if (version === 4) {
    const hl = (b[o] & 15) << 2;
    if (hl < 20) return -2;
    if (avail < 4) return 0;
    len = (b[o + 2] << 8) | b[o + 3];
    if (len < hl) len = hl;
  } else if (version === 6) {
    if (avail < 6) return 0;
    len = 40 + ((b[o + 4] << 8) | b[o + 5]);
  } else {
    return -1;
  }
  return len > max ? -3 : len;
}

/**
 * Incremental framer. Usage per received chunk, allocating nothing per frame:
 *
 *   framer.push(chunk);
 *   for (let n; (n = framer.advance()) > 0; ) handle(framer.buf, framer.start, n);
 *   if (framer.error !== null) closeTheSession(framer.error);
 *
 * The frame is buf[start, start + n). For a frame wholly inside the chunk, `buf` is the
 * chunk itself; a frame split across chunks is assembled in a buffer of its own, exactly
 * its length, which the caller may keep. next() is the same as a view, for callers that
 * prefer one. After an error the framer stays failed: the stream has no markers to
 * resynchronise on, so the caller must drop the connection.
 *
 * The bytes of an unfinished frame are held in a buffer that grows with what arrived (at
 * most twice that, and 16 bytes at least), never to the length the header declares before
 * the bytes are there: a peer that sends the first bytes of a long frame and stops costs
 * what it sent, not the frame. A frame split across two chunks is still one allocation
 * when the first chunk held half of it or more, else two.
 */
const EMPTY = new Uint8Array(0);

export class Framer {
  /** Why the stream is unusable, or null. */
  error: string | null = null;
  /** The buffer holding the frame last returned, and its offset there. */
  buf: Uint8Array = EMPTY;
  start = 0;
  private chunk: Uint8Array = EMPTY;
  protected pos = 0;
  // A frame begun in an earlier chunk: its first `held` bytes, in `part`, and its length
  // once the header tells it (`need`, else 0). `part` is 16 bytes while the length is not
  // known, then at most `need`, reaching exactly `need` when the frame is complete.
  // Protected: the server's framer (server/src/data/session-framer.ts) moves them out and back.
  protected part: Uint8Array = EMPTY;
  protected held = 0;
  protected need = 0;

  constructor(readonly maxFrame = 65535) {}

  push(chunk: Uint8Array): void {
    this.chunk = chunk;
    this.pos = 0;
  }

  /** Bytes of an unfinished frame carried over to the next chunk. */
  get pending(): number {
    return this.held;
  }

  /** The next complete frame as a view, or null. */
  next(): Uint8Array | null {
    const n = this.advance();
    return n > 0 ? this.buf.subarray(this.start, this.start + n) : null;
  }

  /** Moves to the next complete frame and returns its length, or 0 when there is none. */
  advance(): number {
    if (this.error !== null) return 0;
    const c = this.chunk;
    const end = c.length;
    let pos = this.pos;
    let held = this.held;
    if (held > 0) {
      let part = this.part;
      let need = this.need;
      // The length is not known yet: a byte at a time, until the header tells it (6 at most).
      while (need === 0 && pos < end) {
        part[held++] = c[pos++];
        need = frameLength(part, 0, held, this.maxFrame);
      }
      this.pos = pos;
      this.held = held;
      if (need < 0) return this.fail(need);
      if (need === 0) return this.done();
      this.need = need;
      const take = Math.min(need - held, end - pos);
      if (held + take === need && this.finish(c, pos, take)) return need;
      if (held + take > part.length) part = this.grow(held + take);
      part.set(c.subarray(pos, pos + take), held);
      this.held = held += take;
      this.pos = pos + take;
      if (held < need) return this.done();
      this.part = EMPTY;
      this.held = this.need = 0;
      this.buf = part;
      this.start = 0;
      return need;
    }
    if (pos >= end) return this.done();
    const n = frameLength(c, pos, end - pos, this.maxFrame);
    if (n < 0) return this.fail(n);
    if (n > 0 && pos + n <= end) {
      this.buf = c;
      this.start = pos;
      this.pos = pos + n;
      return n;
    }
    // Incomplete: keep the bytes for the next chunk.
    this.need = n;
    this.held = end - pos;
    this.pos = end;
    this.keep(c.subarray(pos, end));
    return this.done();
  }

  /** Keeps `rest`, the first bytes of an unfinished frame (a view of the chunk), for the next chunk. */
  protected keep(rest: Uint8Array): void {
    this.part = EMPTY;
    this.grow(rest.length).set(rest);
  }

  /**
   * The frame held from earlier chunks ends with c[pos, pos + take): a subclass that hands
   * it on otherwise than joined does so and returns true (server/src/data/session-framer.ts).
   */
  protected finish(_c: Uint8Array, _pos: number, _take: number): boolean {
    return false;
  }

  /**
   * Room for `have` bytes of the unfinished frame: twice that (16 at least), at most the
   * frame (16 bytes while its length is not known: the header tells it within 6).
   */
  protected grow(have: number): Uint8Array {
    const p = new Uint8Array(Math.min(this.need || 16, Math.max(16, have * 2)));
    // The whole of the old buffer (it is smaller): a view of it would cost an allocation.
    p.set(this.part);
    return (this.part = p);
  }

  // The chunk is used up: let go of it, so that an idle connection pins no receive buffer.
  private done(): 0 {
    this.chunk = this.buf = EMPTY;
    return 0;
  }

  private fail(code: number): 0 {
    this.error = ERRORS[-code - 1];
    return 0;
  }
}
