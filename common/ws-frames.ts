// WebSocket frames (RFC 6455 §5) read straight off a socket's chunks, on the data path of
// both ends: the server reading a client (masked frames), the Node client reading the server
// (unmasked). The `ws` package hands on whole messages: a message spanning two reads (a
// 64 KiB message always does, and over TLS any of more than 16 KiB) is first copied into a
// buffer of its own, fresh memory for every byte of the stream (11-13 % of the server and 9 %
// of the receiving client over ws in the bench's profiles). The stream inside means nothing
// by message, so this reader unmasks a data frame's payload in place, in the chunk it arrived
// in, and hands it on as it comes, a view per frame and chunk, to the stream's framer (which
// holds what a tunnel packet split across views needs, under its own budget). It holds at
// most a frame header or one control frame (131 bytes).
//
// It keeps the rules `ws` applies, and its close statuses: 1002 for a framing error (reserved
// bits, an unknown opcode, a continuation with nothing to continue, a new message inside a
// fragmented one, a frame masked or not as it should not be, a fragmented or oversized
// control frame), 1003 for a text message (the stream travels in binary ones), 1009 for a
// message over `maxMessage`, 1008 for more than `maxFragments` fragments. Control frames
// (ping, pong, close) it hands on whole, as received, for `ws` to answer pings (and drop a
// peer with too many unanswered) and run the closing handshake; after a close frame it reads
// nothing more.

import type { Socket } from 'node:net';
import { unmask } from './ws-mask.js';

/** Where the frames go. */
export interface FrameSink {
  /** The next bytes of the stream (binary messages' payload, unmasked): a view of the chunk. */
  data(bytes: Buffer): void;
  /** A whole, well-formed control frame, as received (its payload still masked): a view, valid during the call. */
  control(frame: Buffer): void;
  /** A framing error: the connection closes with `status`. */
  fail(status: number, message: string, code: string): void;
}

export interface FrameRules {
  /** Frames must be masked (a server reading a client), or must not be (a client reading a server). */
  masked: boolean;
  /** Largest message, bytes (the sum of its fragments). */
  maxMessage: number;
  /** Fragments of one message, at most. */
  maxFragments: number;
}

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
/** A control frame's most bytes: 2, the mask, 125 of payload. */
const MAX_CONTROL = 2 + 4 + 125;

/** A header's length from its second byte. */
const headLength = (b1: number): number => 2 + ((b1 & 0x7f) === 126 ? 2 : (b1 & 0x7f) === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);

/** The header's length of a frame of `length` bytes: 2, the length's extension, the masking key. */
export function headSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes the header of a binary frame of `length` bytes, FIN set, at b[0] (headSize() bytes;
 * the masking key, when `masked`, is the caller's to write in the last 4). Returns its length.
 */
export function writeHead(b: Buffer, length: number, masked: boolean): number {
  const m = masked ? 0x80 : 0;
  b[0] = 0x80 | OP_BINARY;
  if (length < 126) b[1] = m | length;
  else if (length < 65536) {
    b[1] = m | 126;
    b.writeUInt16BE(length, 2);
  } else {
    b[1] = m | 127;
    b.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    b.writeUInt32BE(length >>> 0, 6);
  }
  return headSize(length, masked);
}

export class FrameReader {
  /**
   * A header split across chunks (at most 14 bytes), or a control frame's bytes while they
   * come (at most 131).
   */
  private readonly held = Buffer.allocUnsafe(MAX_CONTROL);
  private heldLength = 0;
  /** Bytes of what is being held, once known: a header's, or a whole control frame's. */
  private want = 0;
  /** What is held is a control frame (its header read and checked), not a header. */
  private gathering = false;
  /** Payload bytes of the current data frame still to come. */
  private left = 0;
  /** Its masking key, and as it applies to the next payload byte (rotated by what came before). */
  private readonly key = Buffer.alloc(4);
  private readonly turned = Buffer.alloc(4);
  private phase = 0;
  private masking = false;
  /** Inside a message whose last fragment has not come. */
  private fragmented = false;
  private messageLength = 0;
  private fragments = 0;
  /** A close frame or an error ended the reading, or the owner stopped it. */
  private stopped = false;

  constructor(
    private readonly sink: FrameSink,
    private readonly rules: FrameRules,
  ) {}

  /** Reads nothing more. */
  stop(): void {
    this.stopped = true;
  }

  get done(): boolean {
    return this.stopped;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n && !this.stopped) {
      if (this.left > 0) {
        const k = Math.min(this.left, n - i);
        const v = chunk.subarray(i, i + k);
        i += k;
        this.left -= k;
        this.payload(v);
      } else if (this.heldLength > 0 || n - i < 2 || n - i < headLength(chunk[i + 1])) {
        i = this.hold(chunk, i);
      } else {
        // A header whole in the chunk (the usual case): read where it is.
        i = this.header(chunk, i, n);
      }
    }
  }

  /**
   * Takes the bytes of a header, or of a control frame, that chunks split, into `held`;
   * returns where reading goes on in the chunk.
   */
  private hold(chunk: Buffer, i: number): number {
    const b = this.held;
    if (this.want === 0) {
      // Its first two bytes say how long the header is.
      while (this.heldLength < 2 && i < chunk.length) b[this.heldLength++] = chunk[i++];
      if (this.heldLength < 2) return i;
      this.want = headLength(b[1]);
    }
    const k = Math.min(this.want - this.heldLength, chunk.length - i);
    chunk.copy(b, this.heldLength, i, i + k);
    this.heldLength += k;
    i += k;
    if (this.heldLength < this.want) return i;
    const length = this.heldLength;
    const whole = this.gathering;
    this.heldLength = this.want = 0;
    this.gathering = false;
    if (whole) this.controlFrame(b.subarray(0, length));
    else this.header(b, 0, length);
    return i;
  }

  /**
   * A frame's header at b[i], whole in b[i, end): checked, then its payload is awaited (a
   * data frame) or gathered (a control frame). Returns where its payload starts in b.
   */
  private header(b: Buffer, i: number, end: number): number {
    const b0 = b[i];
    const b1 = b[i + 1];
    const h = headLength(b1);
    const op = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    let len = b1 & 0x7f;
    if ((b0 & 0x30) !== 0) return this.fail(1002, 'RSV2 and RSV3 must be clear', 'WS_ERR_UNEXPECTED_RSV_2_3');
    if ((b0 & 0x40) !== 0) return this.fail(1002, 'RSV1 must be clear', 'WS_ERR_UNEXPECTED_RSV_1');
    if (op >= OP_CLOSE) {
      if (op > 0xa) return this.fail(1002, `invalid opcode ${op}`, 'WS_ERR_INVALID_OPCODE');
      if (!fin) return this.fail(1002, 'FIN must be set', 'WS_ERR_EXPECTED_FIN');
      if (len > 125 || (op === OP_CLOSE && len === 1)) return this.fail(1002, `invalid payload length ${len}`, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH');
    } else if (op === OP_CONT) {
      if (!this.fragmented) return this.fail(1002, 'invalid opcode 0', 'WS_ERR_INVALID_OPCODE');
    } else if (op === OP_BINARY || op === OP_TEXT) {
      if (this.fragmented) return this.fail(1002, `invalid opcode ${op}`, 'WS_ERR_INVALID_OPCODE');
      if (op === OP_TEXT) return this.fail(1003, 'a text message: the stream travels in binary messages', 'WS_TEXT_MESSAGE');
    } else {
      return this.fail(1002, `invalid opcode ${op}`, 'WS_ERR_INVALID_OPCODE');
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.rules.masked) return this.fail(1002, masked ? 'MASK must be clear' : 'MASK must be set', masked ? 'WS_ERR_UNEXPECTED_MASK' : 'WS_ERR_EXPECTED_MASK');
    if (op >= OP_CLOSE) {
      // Gathered whole (at most 131 bytes) and handed on as it came.
      if (end - i >= h + len) {
        this.controlFrame(b.subarray(i, i + h + len));
        return i + h + len;
      }
      if (b !== this.held) b.copy(this.held, 0, i, end);
      this.heldLength = end - i;
      this.want = h + len;
      this.gathering = true;
      return end;
    }
    if (len === 126) len = b.readUInt16BE(i + 2);
    else if (len === 127) len = b.readUInt32BE(i + 2) !== 0 ? Infinity : b.readUInt32BE(i + 6); // past 2^32: over any maximum
    this.messageLength += len;
    if (this.messageLength > this.rules.maxMessage) return this.fail(1009, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    if (++this.fragments > this.rules.maxFragments) return this.fail(1008, 'Too many message fragments', 'WS_ERR_TOO_MANY_BUFFERED_PARTS');
    this.fragmented = !fin;
    if (fin) this.messageLength = this.fragments = 0;
    this.masking = masked;
    if (masked) {
      const m = i + h - 4;
      const key = this.key;
      key[0] = b[m];
      key[1] = b[m + 1];
      key[2] = b[m + 2];
      key[3] = b[m + 3];
      this.phase = 0;
    }
    this.left = len;
    return i + h;
  }

  /** Part of a data frame's payload, in order. */
  private payload(v: Buffer): void {
    if (this.masking) {
      const p = this.phase;
      let key = this.key;
      if (p !== 0) {
        key = this.turned;
        for (let j = 0; j < 4; j++) key[j] = this.key[(p + j) & 3];
      }
      unmask(v, key);
      this.phase = (p + v.length) & 3;
    }
    this.sink.data(v);
  }

  private controlFrame(frame: Buffer): void {
    if ((frame[0] & 0x0f) === OP_CLOSE) this.stopped = true;
    this.sink.control(frame);
  }

  /** Stops and reports; returns an offset past any chunk, which ends the reading of this one. */
  private fail(status: number, message: string, code: string): number {
    this.stopped = true;
    this.sink.fail(status, message, code);
    return Number.MAX_SAFE_INTEGER;
  }
}

/** One of `ws`'s own 'data' listeners on the socket under a WebSocket. */
export type SocketListener = (this: Socket, chunk: Buffer) => void;

/**
 * Takes the reading of an open `ws` WebSocket's socket over, at either end: the frames are
 * read here (`rules`), the stream's bytes go to `data`, a framing error to `fail` (whose
 * caller closes with its status, as `ws` does), and each control frame, whole, to `ws`'s own
 * listeners `wsRead` (taken off the socket), so that `ws` still answers pings and runs the
 * closing handshake. The owner stops the reader when the connection ends.
 */
export function takeOverReading(socket: Socket, wsRead: SocketListener[], rules: FrameRules, data: (bytes: Buffer) => void, fail: FrameSink['fail']): FrameReader {
  for (const f of wsRead) socket.off('data', f);
  const reader: FrameReader = new FrameReader(
    {
      data,
      control: (frame) => {
        if (socket.destroyed) return reader.stop();
        // A copy: ws may keep a ping's payload (its pong) beyond this call.
        const own = Buffer.from(frame);
        for (const f of wsRead) f.call(socket, own);
      },
      fail,
    },
    rules,
  );
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  return reader;
}
