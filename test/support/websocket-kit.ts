// WebSocket clients for the tests of the server's WebSocket transport: SDK clients over
// webSocketConnect with the `ws` package's WebSocket (Node 20 has no global one), raw HTTP
// exchanges, and a raw WebSocket client that writes frames byte by byte as a hostile peer
// would (masking, fragments, control frames), reading the server's frames back.

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import type { Connect } from '../../client-sdk/src/types.js';
import { type WebSocketConstructor, webSocketConnect } from '../../client-sdk/src/websocket.js';
import { Framer } from '../../protocol/index.js';
import { waitFor } from './server-net.js';

/** bufferutil (ws's optional native masking) is installed here and its binary loads, rather than the package's own JavaScript fallback. */
export function bufferutilLoads(): boolean {
  try {
    const req = createRequire(import.meta.url);
    return req('bufferutil').mask !== req('bufferutil/fallback.js').mask;
  } catch {
    return false;
  }
}

/** The `ws` package's WebSocket with client options of the test's own (a CA, a source address, headers). */
export function wsClass(options: WebSocket.ClientOptions = {}): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { perMessageDeflate: false, ...options });
    }
  };
}

/** A Connect over webSocketConnect to 127.0.0.1:`port`. */
export function wsTo(port: number, o: { path?: string; secure?: boolean; options?: WebSocket.ClientOptions; sendBuffer?: number } = {}): Connect {
  const url = `${o.secure ? 'wss' : 'ws'}://127.0.0.1:${port}${o.path ?? '/'}`;
  return webSocketConnect(url, { WebSocket: wsClass(o.options), sendBuffer: o.sendBuffer });
}

/** A valid upgrade request for `path`, with extra header lines ("Name: value"). */
export function upgradeRequest(path = '/', extra: string[] = [], host = '127.0.0.1'): string {
  const key = randomBytes(16).toString('base64');
  return [`GET ${path} HTTP/1.1`, `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', ...extra, '', ''].join('\r\n');
}

export interface HttpAnswer {
  /** The status code of the first response line, 0 when none came. */
  status: number;
  /** Everything the server sent. */
  text: string;
  /** The server closed the connection (within the wait). */
  closed: boolean;
  /** ms from the last byte sent to the close (or the end of the wait). */
  elapsed: number;
}

/**
 * Sends `bytes` on a fresh connection to 127.0.0.1:`port` (TLS when `ca` is given) and
 * collects what comes back until the server closes, at most `ms`.
 */
export async function httpExchange(port: number, bytes: string | Uint8Array | Array<string | Uint8Array>, ms = 3000, o: { ca?: Buffer; localAddress?: string; pauseMs?: number } = {}): Promise<HttpAnswer> {
  const sock = o.ca ? tls.connect({ host: '127.0.0.1', port, ca: o.ca, localAddress: o.localAddress } as tls.ConnectionOptions) : net.connect({ host: '127.0.0.1', port, localAddress: o.localAddress });
  const chunks: Buffer[] = [];
  let closed = false;
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('httpExchange: connect timed out')), 5000);
      sock.once(o.ca ? 'secureConnect' : 'connect', () => {
        clearTimeout(t);
        resolve();
      });
      sock.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    for (const part of Array.isArray(bytes) ? bytes : [bytes]) {
      sock.write(part);
      if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
    }
    const t0 = Date.now();
    await waitFor(() => closed, ms, 'the server to close').catch(() => {});
    const text = Buffer.concat(chunks).toString('latin1');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
    return { status: m ? +m[1] : 0, text, closed, elapsed: Date.now() - t0 };
  } finally {
    sock.destroy();
  }
}

// ---- raw frames ------------------------------------------------------------------------------

export const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** One client frame: masked unless told otherwise, FIN unless told otherwise. */
export function frame(opcode: number, payload: Uint8Array | string = new Uint8Array(0), o: { fin?: boolean; mask?: boolean; rsv?: number } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
  const mask = o.mask !== false;
  const n = data.length;
  const len = n < 126 ? 1 : n < 65536 ? 3 : 9;
  const head = Buffer.alloc(1 + len + (mask ? 4 : 0));
  head[0] = ((o.fin === false ? 0 : 0x80) | ((o.rsv ?? 0) << 4) | opcode) & 0xff;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = randomBytes(4);
  key.copy(head, 1 + len);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, body]);
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/**
 * A WebSocket client that speaks frames itself: it upgrades with a request of the test's
 * own, then writes whatever frames a test builds and parses the server's. The stream the
 * server sends in binary messages is framed (Framer) into `frames`.
 */
export class RawWs {
  readonly received: ServerFrame[] = [];
  /** Protocol frames (IP packets, control messages) found in the binary messages. */
  readonly frames: Uint8Array[] = [];
  status = 0;
  response = '';
  closed = false;
  private buf = Buffer.alloc(0);
  private upgraded = false;
  private readonly framer = new Framer();

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => (this.closed = true));
  }

  /** Connects and upgrades at `path`; resolves once the 101 (or any answer) has arrived. */
  static async open(port: number, o: { path?: string; headers?: string[]; localAddress?: string; ca?: Buffer; paused?: boolean } = {}): Promise<RawWs> {
    const sock = o.ca ? tls.connect({ host: '127.0.0.1', port, ca: o.ca }) : net.connect({ host: '127.0.0.1', port, localAddress: o.localAddress });
    const c = new RawWs(sock);
    sock.write(upgradeRequest(o.path ?? '/', o.headers ?? []));
    await waitFor(() => c.status !== 0 || c.closed, 3000, 'the answer to the upgrade');
    if (o.paused) sock.pause();
    return c;
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.response = this.buf.subarray(0, end).toString('latin1');
      this.status = +(/^HTTP\/1\.1 (\d{3})/.exec(this.response)?.[1] ?? 0);
      this.buf = this.buf.subarray(end + 4);
      this.upgraded = true;
    }
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let n = b[1] & 127;
      let at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + n) return;
      const f = { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 15, payload: Buffer.from(b.subarray(at, at + n)) };
      this.received.push(f);
      if (f.opcode === OP.binary || f.opcode === OP.cont) {
        this.framer.push(f.payload);
        for (let p; (p = this.framer.next()) !== null; ) this.frames.push(Uint8Array.from(p));
      }
      this.buf = b.subarray(at + n);
    }
  }

  write(b: Uint8Array): void {
    this.sock.write(b);
  }

  /** Sends `data` as binary messages, split at `cuts` (offsets), one message each. */
  sendStream(data: Uint8Array, cuts: number[] = []): void {
    let prev = 0;
    for (const c of [...cuts, data.length]) {
      this.write(frame(OP.binary, data.subarray(prev, c)));
      prev = c;
    }
  }

  /** The close frame the server sent, if any: its status code. */
  get closeCode(): number | null {
    const f = this.received.find((x) => x.opcode === OP.close);
    return f ? (f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005) : null;
  }

  waitClosed(ms = 3000): Promise<void> {
    return waitFor(() => this.closed, ms, 'the server to close the WebSocket');
  }

  destroy(): void {
    this.sock.destroy();
  }
}
