// The data path of a `ws` WebSocket client, taken over once it is open: the stream's bytes
// are read off the socket as the frames bring them (common/ws-frames.ts), and written as
// masked frames built in buffers used again and again. `ws` keeps the handshake, the control
// frames (it answers pings, runs the closing handshake) and the state.
//
// Why: `ws` joins every message into fresh memory before handing it on (a 64 KiB message
// always spans two reads of the socket), and masks every message it sends into a buffer
// allocated for it (masking cannot be done in place: the caller may read its bytes again).
// Fresh memory is what costs: masking 64 KiB into a new buffer takes 2.6 times as long as
// into one already used (its pages are touched for the first time), and in the bench's
// profiles the sending client spent 14-17 % of its time there, the receiving one 9-10 % in
// the joining. A buffer is used again once the socket has written it (its write callback).

import { randomFillSync } from 'node:crypto';
import type net from 'node:net';
import { type SocketListener, headSize, takeOverReading, writeHead } from '../../common/ws-frames.js';
import { mask } from '../../common/ws-mask.js';

/** What a server's frames must be: unmasked; no limit, since nothing is held. */
const SERVER_FRAMES = { masked: false, maxMessage: Number.MAX_SAFE_INTEGER, maxFragments: Number.MAX_SAFE_INTEGER };
/** A buffer's size: the adapter's largest message (client-sdk/src/websocket.ts) and its header. */
const SLOT = 65536 + 14;
/** Buffers kept for use again, at most. */
const KEEP = 8;
/** Random bytes for the masking keys, 4 a frame (RFC 6455 §5.3: unpredictable), refilled when used up. */
const keys = Buffer.alloc(8192);
let keyAt = keys.length;

/** The members of ws's WebSocket this uses (the socket is its private `_socket`). */
interface WsLike {
  readonly _socket: net.Socket;
  emit(event: 'message', data: Buffer, binary: boolean): boolean;
  emit(event: 'error', err: Error): boolean;
  close(code: number): void;
}

/** The open WebSocket's data path, taken over: send() writes one binary message. */
export class WsStream {
  private readonly free: Buffer[] = [];
  /** Buffers the socket is writing, in the order it writes them. */
  private readonly writing: Buffer[] = [];
  private readonly written = (): void => {
    const b = this.writing.shift()!;
    if (this.free.length < KEEP) this.free.push(b);
  };
  private readonly socket: net.Socket;
  private readonly key = Buffer.alloc(4);

  constructor(ws: WsLike) {
    const socket = (this.socket = ws._socket);
    // ws's own reading of the socket (its only 'data' listener): it gets the control frames alone.
    const reader = takeOverReading(
      socket,
      socket.listeners('data') as SocketListener[],
      SERVER_FRAMES,
      (bytes) => ws.emit('message', bytes, true),
      (status, message, code) => {
        // As ws does for a bad frame: the close frame, then the error.
        ws.close(status);
        ws.emit('error', Object.assign(new Error(`Invalid WebSocket frame: ${message}`), { code }));
      },
    );
    socket.once('close', () => reader.stop());
  }

  send(data: Uint8Array): void {
    const n = data.length;
    const size = headSize(n, true) + n;
    const buf = (size <= SLOT ? this.free.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(size, SLOT));
    const h = writeHead(buf, n, true);
    if (keyAt === keys.length) {
      randomFillSync(keys);
      keyAt = 0;
    }
    const key = this.key;
    for (let j = 0; j < 4; j++) buf[h - 4 + j] = key[j] = keys[keyAt + j];
    keyAt += 4;
    mask(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, n), key, buf, h, n);
    this.writing.push(buf);
    this.socket.write(buf.subarray(0, size), this.written);
  }
}
