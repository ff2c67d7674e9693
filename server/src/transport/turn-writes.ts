// What a socket really holds back from the kernel, for the per-client send-queue cap. Over
// plain TCP a write the kernel takes at once leaves writableLength at 0. A TLSSocket (TLS,
// and WebSocket over TLS) encrypts and hands its bytes to the kernel at once too, but calls
// the write done only at the next check phase of the event loop (Node's TLSWrap defers its
// callbacks with SetImmediate), so until then writableLength counts everything written in
// this turn of the loop, already gone or not. One turn can read a whole burst from the
// sender (libuv reads a socket up to 32 times per wake-up), and a cap on writableLength
// alone then drops packets over tls and wss that tcp sends: 75-116 per 5 s at MTU 65000 in
// the bench. So while the kernel takes every encrypted byte it is given (the write queue of
// the TCP handle under the TLSSocket is empty), the cap leaves out the bytes written in the
// current turn, up to TURN_ALLOWANCE caps of them; once the kernel holds bytes back (a reader
// that is behind) the cap counts writableLength whole, as before. A turn can so queue at most
// (1 + TURN_ALLOWANCE) caps. Only encrypted sockets (a TLSSocket, or a WebSocket over one:
// `encrypted`) are counted so: elsewhere writableLength is exact.

/** How many send-queue caps one turn's writes may add before they count. */
export const TURN_ALLOWANCE = 4;

/** Bytes written to each socket in the current turn of the event loop (cleared after it). */
const written = new Map<Sink, number>();
let clearing = false;

const clear = (): void => {
  written.clear();
  clearing = false;
};

/** What the ledger needs of a socket. */
interface Sink {
  readonly writableLength: number;
  /** A TLSSocket's (true), or a WebSocket's over one. */
  readonly encrypted?: boolean;
  /** A WebSocket's (WsSocket): the TLSSocket under it. */
  readonly wire?: unknown;
}

/**
 * Encrypted bytes the kernel has not taken yet: the write queue of the TCP handle under the
 * TLSSocket (Node's `_parent._handle.writeQueueSize`, not a public API: 0 when unknown).
 */
function unsent(socket: Sink): number {
  const t = (socket.wire ?? socket) as { _parent?: { _handle?: { writeQueueSize?: number } } };
  return t._parent?._handle?.writeQueueSize ?? 0;
}

/** `n` bytes were written to `socket` now. */
export function wrote(socket: Sink, n: number): void {
  if (socket.encrypted !== true) return;
  written.set(socket, (written.get(socket) ?? 0) + n);
  if (!clearing) {
    clearing = true;
    setImmediate(clear);
  }
}

/**
 * The bytes `socket` holds that count against a cap of `cap`: writableLength less what was
 * written in this turn (at most TURN_ALLOWANCE caps of it) while the kernel takes all it is
 * given; all of writableLength once the kernel holds encrypted bytes back.
 */
export function held(socket: Sink, cap: number): number {
  const q = socket.writableLength;
  if (q === 0) return 0;
  const turn = written.get(socket);
  // A kernel that no longer takes everything: the reader is behind, and the cap is exact.
  if (turn === undefined || unsent(socket) > 0) return q;
  return Math.max(0, q - Math.min(turn, TURN_ALLOWANCE * cap));
}
