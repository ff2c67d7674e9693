// Test doubles for the SDK's seams: a manual clock and a scripted socket, plus builders for
// the frames a server sends. Nothing here touches real time or the network.

import type { Clock, CloseCode, Connect, Socket, SocketHandlers } from '../../client-sdk/src/types.js';
import { KIND_REPLY, configTlvs, controlMessage, extMessage, type Config, DST, parseIPv4, writeU32 } from '../../protocol/index.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** Manual time. Timers fire only from advance()/runNext(), in due order, ties by creation. */
export class FakeClock implements Clock {
  t = 0;
  private seq = 0;
  private timers = new Map<number, Timer>();
  /** Every callback ever scheduled, cleared or not, to prove stale ones are harmless. */
  readonly scheduled: Array<() => void> = [];

  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), fn });
    this.scheduled.push(fn);
    return id;
  };

  clearTimeout = (h: unknown): void => {
    this.timers.delete(h as number);
  };

  /** Number of timers not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** When the next timer is due, or null. */
  nextAt(): number | null {
    const t = this.earliest();
    return t ? t.at : null;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (bounded). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 100_000) throw new Error('FakeClock: timers keep rescheduling at the same instant');
      const next = this.earliest();
      if (!next || next.at > end) break;
      this.t = next.at;
      this.timers.delete(next.id);
      next.fn();
    }
    this.t = end;
  }

  /** Advances to absolute time `t`. */
  advanceTo(t: number): void {
    if (t < this.t) throw new Error('FakeClock: time cannot go back');
    this.advance(t - this.t);
  }

  private earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const tm of this.timers.values()) if (!best || tm.at < best.at || (tm.at === best.at && tm.id < best.id)) best = tm;
    return best;
  }
}

/** One scripted connection. The test plays the server through open/deliver/end/fail. */
export class FakeSocket implements Socket {
  /** Copies of what every write took, in order (a part of the data when `room` ran out). */
  readonly writes: Uint8Array[] = [];
  /** Writes attempted after the socket was closed (the SDK should make none). */
  lateWrites = 0;
  /** When true, write() takes nothing, as a full transport does. */
  full = false;
  /** Bytes write() may still take: it takes at most this many, then nothing until drain(). */
  room = Infinity;
  closed = false;
  closeCalls = 0;
  /** The code and detail given with onClose, or undefined when the client closed it. */
  closeCode: CloseCode | undefined;
  closeDetail: string | undefined;

  constructor(readonly h: SocketHandlers) {}

  write(data: Uint8Array): number {
    if (this.closed) {
      this.lateWrites++;
      return 0;
    }
    if (this.full) return 0;
    const n = Math.min(data.length, this.room);
    this.room -= n;
    if (n > 0) this.writes.push(data.slice(0, n));
    return n;
  }

  close(): void {
    this.closeCalls++;
    if (this.closed) return;
    this.closed = true;
    this.h.onClose('end');
  }

  // Server side.
  open(): void {
    this.h.onOpen();
  }

  deliver(...chunks: Uint8Array[]): void {
    for (const c of chunks) this.h.onData(c);
  }

  /** The transport has room for `room` more bytes (unbounded by default) and says so. */
  drain(room = Infinity): void {
    this.room = room;
    this.full = false;
    this.h.onWritable();
  }

  /** The server ends the stream. */
  end(detail?: string): void {
    this.fail('end', detail);
  }

  /** The connection ends with `code`, as a transport reports it. */
  fail(code: CloseCode, detail?: string, names?: string[]): void {
    if (this.closed) return;
    this.closed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    this.h.onClose(code, detail, names);
  }

  /** Every byte the socket took, in order: the stream the server receives. */
  get stream(): Uint8Array {
    return concat(...this.writes);
  }

  get last(): Uint8Array | undefined {
    return this.writes[this.writes.length - 1];
  }
}

/** Hands out FakeSockets; `onConnect` runs inside connect(), before it returns. */
export class FakeNet {
  readonly sockets: FakeSocket[] = [];
  onConnect: ((s: FakeSocket, index: number) => void) | null = null;

  connect: Connect = (h) => {
    const s = new FakeSocket(h);
    this.sockets.push(s);
    if (this.onConnect) this.onConnect(s, this.sockets.length - 1);
    return s;
  };

  get last(): FakeSocket {
    const s = this.sockets[this.sockets.length - 1];
    if (!s) throw new Error('FakeNet: no connection was made');
    return s;
  }
}

export const ip = (s: string): number => {
  const n = parseIPv4(s);
  if (n < 0) throw new Error('bad address in test: ' + s);
  return n;
};

export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

export const bytes = (spaced: string): Uint8Array => Uint8Array.from(spaced.trim().split(/\s+/), (h) => parseInt(h, 16));

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An extension reply assigning `addr` with the given configuration. */
export function extReply(addr: string, cfg: Partial<Config> = {}): Uint8Array {
  return extMessage(0, ip(addr), KIND_REPLY, configTlvs({ routes: [], ...cfg }));
}

/** A seed reply: the 20-byte control header, total length 0, destination = the address. */
export function seedReply(addr: string): Uint8Array {
  return controlMessage(0, ip(addr));
}

/** What the seed server sends back: every byte of the request, destination rewritten. */
export function echoReply(request: Uint8Array, addr: string): Uint8Array {
  const r = request.slice();
  writeU32(r, DST, ip(addr));
  return r;
}

/** A well-formed IPv4 UDP-ish data packet (IHL 5, total length set) with a patterned payload. */
export function dataPacket(src: string, dst: string, payload = 8, fill = 0xa5): Uint8Array {
  const p = new Uint8Array(20 + payload);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 255;
  p[8] = 64;
  p[9] = 17;
  writeU32(p, 12, ip(src));
  writeU32(p, 16, ip(dst));
  for (let i = 20; i < p.length; i++) p[i] = (fill + i) & 255;
  return p;
}
