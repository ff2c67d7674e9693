// The framer of the server's sessions: the protocol's Framer, and a way to hand the bytes of
// an unfinished frame to its session while they are few. A connection that sent the first
// bytes of a frame and stopped (a slow client, or one holding connections open on purpose)
// then keeps a short string instead of a framer and a buffer of its own: the Framer, the
// Uint8Array, its ArrayBuffer and the buffer's native backing store, about 450 bytes per
// connection, against 24-80 bytes of string.

import { Framer, frameLength } from '../../../protocol/index.js';

/** Unfinished frames of at most this many bytes are carried by their session as text. */
export const CARRY_MAX = 64;

const NONE = new Uint8Array(0);
/** The first bytes of a carried frame, for frameLength(): a header tells the length within 6. */
const head = new Uint8Array(6);

export class SessionFramer extends Framer {
  /**
   * Frames that span chunks come in two parts (Framer's `parts`): the server forwards them
   * without joining them. Every stream it frames is a socket's (net, TLS) or the WebSocket
   * reader's views of one (common/ws-frames.ts unmasks in place, in the chunk): fresh
   * buffers per read that nothing writes again.
   */
  constructor(maxFrame?: number) {
    super(maxFrame, true);
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
