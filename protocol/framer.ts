// Finds packet boundaries in the byte stream. The stream has no length prefix: each frame is
// a raw IP packet whose own header says how long it is. Seed control messages are bare
// 20-byte IPv4 headers with total length 0, so a v4 frame is never shorter than its header.

import { SUPER_HEADER } from './control.js';

export const E_VERSION = 'IP version is neither 4 nor 6';
export const E_IHL = 'IPv4 header length below 20 bytes';
export const E_TOO_LONG = 'frame longer than the maximum';
const ERRORS = [E_VERSION, E_IHL, E_TOO_LONG];

/**
 * With parts on, the first part of a frame handed on in two holds at least this many of its
 * bytes (or the whole frame): every header a reader of a forwarded frame looks at without
 * joining it, the largest being a KIND_SUPER frame's (its own, then its super-packet's IPv4
 * and TCP headers with options: 26 + 60 + 60), which the server's tun fixes up in place.
 */
export const HEAD_PART = SUPER_HEADER + 60 + 60;

/**
 * A frame handed on in two parts: buf[start, start + split), then tail[tailStart,
 * tailStart + length - split). The first part holds HEAD_PART bytes at least. Both are views
 * that stay valid after the call (of chunks the stream's reader never writes again, or of a
 * buffer of the frame's own); joined() copies the frame into one buffer, for a reader that
 * needs it whole.
 */
export interface FrameParts {
  readonly buf: Uint8Array;
  readonly start: number;
  readonly split: number;
  readonly tail: Uint8Array;
  readonly tailStart: number;
  readonly length: number;
  joined(): Uint8Array;
}

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
 *
 * With `parts` (the server, which forwards frames: FrameParts), a frame that the chunk at
 * hand completes is not copied whole. The bytes held from earlier chunks are its first part,
 * the rest stays where it is in this chunk, and `split` says so (0: whole in buf). Only the
 * caller's chunks must not be written again after push(), which holds for the fresh buffer
 * Node allocates per read of a socket (net, TLS) but not for a reader that reuses one. The
 * first part is:
 *  - a view of the previous chunk, when the frame began there and at least HEAD_PART of its
 *    bytes and half of that chunk are the frame's: the chunk it keeps alive is then at most
 *    twice what arrived, the same bound as the copy (a peer that sends a 64 KiB chunk ending
 *    in a few bytes of a frame gets those copied, not the chunk pinned);
 *  - else a copy of what arrived, as without parts (a frame begun with fewer bytes, or one
 *    spanning three chunks or more), with up to HEAD_PART bytes taken over from this chunk
 *    when fewer arrived before, so that the header is never split between the parts: that
 *    copy is at most HEAD_PART bytes, and a frame no longer than that comes whole.
 */
const EMPTY = new Uint8Array(0);

export class Framer {
  /** Why the stream is unusable, or null. */
  error: string | null = null;
  /** The buffer holding the frame last returned, and its offset there. */
  buf: Uint8Array = EMPTY;
  start = 0;
  /** With parts: the frame last returned is buf[start, start + split) then tail's bytes; 0 when whole. */
  split = 0;
  tail: Uint8Array = EMPTY;
  tailStart = 0;
  /** The length of the frame last returned in parts. */
  length = 0;
  private chunk: Uint8Array = EMPTY;
  private pos = 0;
  // A frame begun in an earlier chunk: its first `held` bytes, in `part`, and its length
  // once the header tells it (`need`, else 0). `part` is 16 bytes while the length is not
  // known, then at most `need`, reaching exactly `need` when the frame is complete.
  // Protected: the server's framer (server/src/data/session-framer.ts) moves them out and back.
  protected part: Uint8Array = EMPTY;
  protected held = 0;
  protected need = 0;

  constructor(
    readonly maxFrame = 65535,
    /** Frames that span chunks may be handed on in two parts (FrameParts). */
    readonly parts = false,
  ) {}

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
    if (n === 0) return null;
    return this.split !== 0 ? this.joined() : this.buf.subarray(this.start, this.start + n);
  }

  /** The frame last returned in parts, copied into a buffer of its own. */
  joined(): Uint8Array {
    const k = this.split;
    const out = new Uint8Array(this.length);
    out.set(this.buf.subarray(this.start, this.start + k));
    out.set(this.tail.subarray(this.tailStart, this.tailStart + this.length - k), k);
    return out;
  }

  /** Moves to the next complete frame and returns its length, or 0 when there is none. */
  advance(): number {
    if (this.error !== null) return 0;
    if (this.split !== 0) {
      this.split = 0;
      this.tail = EMPTY;
    }
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
      if (this.parts && held + take === need) return this.inParts(c, pos, take);
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
    const rest = end - pos;
    this.need = n;
    this.held = rest;
    this.pos = end;
    if (this.parts && n > 0 && rest >= HEAD_PART && rest * 2 >= end) {
      this.part = c.subarray(pos, end); // the first part, where it is (see the class comment)
    } else {
      this.part = EMPTY;
      // With parts, room for what arrived alone: the next chunk's bytes rarely join them.
      this.grow(rest, this.parts ? rest : rest * 2).set(c.subarray(pos, end));
    }
    return this.done();
  }

  /**
   * The frame held from earlier chunks ends with c[pos, pos + take): returned in two parts,
   * the bytes held then the rest where it is, the held ones made HEAD_PART at least.
   */
  private inParts(c: Uint8Array, pos: number, take: number): number {
    let part = this.part;
    const held = this.held;
    const need = this.need;
    // A short first part: the header's bytes from this chunk join it (a few, see HEAD_PART).
    const k = held < HEAD_PART ? Math.min(take, HEAD_PART - held) : 0;
    if (k > 0) {
      if (held + k > part.length) part = this.grow(held + k);
      part.set(c.subarray(pos, pos + k), held);
    }
    this.part = EMPTY;
    this.held = this.need = 0;
    this.pos = pos + take;
    this.buf = part;
    this.start = 0;
    if (held + k === need) return need; // the frame fit in the first part: whole
    this.split = held + k;
    this.tail = c;
    this.tailStart = pos + k;
    this.length = need;
    return need;
  }

  /**
   * Room for `have` bytes of the unfinished frame: `room`, twice that unless told (16 at
   * least), at most the frame (16 bytes while its length is not known: the header tells it
   * within 6).
   */
  protected grow(have: number, room = have * 2): Uint8Array {
    const p = new Uint8Array(Math.min(this.need || 16, Math.max(16, room)));
    // The whole of the old buffer (it is smaller): a view of it would cost an allocation.
    p.set(this.part);
    return (this.part = p);
  }

  // The chunk is used up: let go of it, so that an idle connection pins no receive buffer.
  private done(): 0 {
    this.chunk = this.buf = this.tail = EMPTY;
    return 0;
  }

  private fail(code: number): 0 {
    this.error = ERRORS[-code - 1];
    return 0;
  }
}
