// What a socket really holds back from the kernel, for the per-client send-queue cap. Over
// plain TCP a write the kernel takes at once leaves writableLength at 0. A TLSSocket (TLS,
// and WebSocket over TLS) encrypts and hands its bytes to the kernel at once too, but calls
// the write done only at the next check phase of the event loop (Node's TLSWrap defers its
// callbacks with SetImmediate), so until then writableLength counts everything written in
// this turn of the loop, already gone or not. One turn can read a whole burst from the
// sender (libuv reads a socket up to 32 times per wake-up), and a cap on writableLength
// alone then drops packets over tls and wss that tcp sends: 75-116 per 5 s at MTU 65000 in
// the bench. So the cap leaves out the bytes written in the current turn, up to
// TURN_ALLOWANCE times the cap: what is still held after the turn counts in full, and one
// turn can hold at most (1 + TURN_ALLOWANCE) caps. Only encrypted sockets (a TLSSocket, or a
// WebSocket over one: `encrypted`) are counted so: elsewhere writableLength is exact.

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
 * written in this turn (at most TURN_ALLOWANCE caps of it).
 */
export function held(socket: Sink, cap: number): number {
  const q = socket.writableLength;
  if (q === 0) return 0;
  const turn = written.get(socket);
  return turn === undefined ? q : Math.max(0, q - Math.min(turn, TURN_ALLOWANCE * cap));
}
