// The framer of the server's sessions: the protocol's Framer, and a way to hand the bytes of
// an unfinished frame to its session while they are few. A connection that sent the first
// bytes of a frame and stopped (a slow client, or one holding connections open on purpose)
// then keeps a short string instead of a framer and a buffer of its own: the Framer, the
// Uint8Array, its ArrayBuffer and the buffer's native backing store, about 450 bytes per
// connection, against 24-80 bytes of string.

//
// And a frame that spans chunks is handed on in two parts (FrameParts) rather than copied
// whole into a buffer of its own: the switch writes the parts to a client's socket, or to the
// server's tun, as they are (the copy of every 64 KiB frame, nearly all of which span two
// 64 KiB reads, was 12-18 % of the server's time at MTU 65000). The bytes held from earlier
// chunks are the first part; the rest stays where it is in the chunk that completes the frame.
// That needs chunks nothing writes again after they are pushed: each stream the server frames
// is a socket's 'data' (net and TLS: Node allocates a fresh buffer per read, of the bytes
// read) or the WebSocket reader's views of those chunks (common/ws-frames.ts unmasks a
// payload in place, in its chunk, and keeps no payload byte in a buffer of its own). The
// first part is:
//  - a view of the previous chunk, when the frame began there with HEAD_PART bytes or more
//    and those are half the memory behind that chunk or more: what the view keeps alive is
//    then at most twice what arrived, the bound of the copy (SECURITY.md, "Memory of partial
//    frames"; a peer that sends a 64 KiB chunk ending in the first bytes of a frame gets those
//    copied, not the chunk kept);
//  - else a copy of what arrived, exactly that (a frame begun with few bytes, or one that
//    spans three chunks or more: its bytes of all but the last), and when fewer than
//    HEAD_PART bytes had arrived, up to HEAD_PART bytes of the completing chunk join it (a
//    copy of at most HEAD_PART bytes, for the rare cut inside the headers). So the headers
//    that the server reads (addresses, KIND_SUPER's, the super-packet's IPv4 and TCP headers
//    that the tun's path fixes up) are always whole in the first part, and a frame of at most
//    HEAD_PART bytes always comes whole. Whatever reads more of a frame joins it first.

import { Framer, SUPER_HEADER, frameLength } from '../../../protocol/index.js';
import type { FrameParts } from './port.js';

/** Unfinished frames of at most this many bytes are carried by their session as text. */
export const CARRY_MAX = 64;

/**
 * The first part of a frame handed on in two holds at least this many of its bytes: a
 * KIND_SUPER frame's header, then its super-packet's IPv4 and TCP headers with the most
 * options (26 + 60 + 60), the most of a frame anything reads without joining it.
 */
export const HEAD_PART = SUPER_HEADER + 60 + 60;

const NONE = new Uint8Array(0);
/** The first bytes of a carried frame, for frameLength(): a header tells the length within 6. */
const head = new Uint8Array(6);

export class SessionFramer extends Framer implements FrameParts {
  /** The frame last returned is buf[start, start + split) then tail[tailStart, ...) (FrameParts); 0 when whole in buf. */
  split = 0;
  tail: Uint8Array = NONE;
  tailStart = 0;
  /** The length of the frame last returned in parts. */
  length = 0;

  override advance(): number {
    if (this.split !== 0) {
      this.split = 0;
      this.tail = NONE; // the chunk is let go of with the frame
    }
    return super.advance();
  }

  /** The next complete frame, joined when it came in parts, or null. */
  override next(): Uint8Array | null {
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

  /** The first bytes of an unfinished frame: where they are, or a copy of them alone (see the top). */
  protected override keep(rest: Uint8Array): void {
    const n = rest.length;
    if (this.need > 0 && n >= HEAD_PART && n * 2 >= rest.buffer.byteLength) {
      this.part = rest;
      return;
    }
    // Room for what arrived alone, 16 bytes at least (a header tells the length within 6):
    // the next chunk's bytes are rarely copied after them.
    const p = new Uint8Array(Math.max(16, n));
    p.set(rest);
    this.part = p;
  }

  /** The held frame ends with c[pos, pos + take): handed on in two parts (see the top). */
  protected override finish(c: Uint8Array, pos: number, take: number): boolean {
    let part = this.part;
    const held = this.held;
    const need = this.need;
    const k = held < HEAD_PART ? Math.min(take, HEAD_PART - held) : 0;
    if (k > 0) {
      if (held + k > part.length) part = this.grow(held + k);
      part.set(c.subarray(pos, pos + k), held);
    }
    this.part = NONE;
    this.held = this.need = 0;
    this.pos = pos + take;
    this.buf = part;
    this.start = 0;
    if (held + k < need) {
      this.split = held + k;
      this.tail = c;
      this.tailStart = pos + k;
      this.length = need;
    }
    return true;
  }

  /**
   * The bytes of the unfinished frame (pending of them, at most CARRY_MAX) as latin1 text,
   * one character a byte; the framer forgets them and is as new, for another session.
   */
  carry(): string {
    const s = String.fromCharCode.apply(null, this.part.subarray(0, this.held) as unknown as number[]);
    this.part = NONE;
    this.held = this.need = 0;
    return s;
  }

  /** The bytes of the unfinished frame (a copy); the framer forgets them and is as new. */
  takeHeld(): Uint8Array {
    const b = this.part.slice(0, this.held);
    this.part = NONE;
    this.held = this.need = 0;
    return b;
  }

  /** Takes back the unfinished frame carry() gave, before the next push(). */
  resume(s: string): void {
    const n = s.length;
    const h = Math.min(n, head.length);
    for (let i = 0; i < h; i++) head[i] = s.charCodeAt(i);
    // These bytes passed the framer once: the length is known (positive) or not yet (0).
    this.need = frameLength(head, 0, h, this.maxFrame);
    const p = this.grow(n);
    for (let i = 0; i < n; i++) p[i] = s.charCodeAt(i);
    this.held = n;
  }
}
