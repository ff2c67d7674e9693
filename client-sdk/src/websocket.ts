// The Socket seam over the standard WebSocket API: for browsers, Deno, Bun and Node 22+
// (globalThis.WebSocket), or any constructor with that API passed in (the `ws` package's
// on older Node). The server takes the protocol's stream in WebSocket messages on its
// plain and TLS ports (ws:// and wss://, PROTOCOL.md "The stream over WebSocket"): each
// binary message carries the next bytes of the stream, and message boundaries mean nothing.
// Runtime-neutral like the rest of client-sdk/src: it touches nothing but the WebSocket it
// is given and, while the WebSocket is full, the global setTimeout.

import type { CloseCode, Connect, Socket, SocketHandlers } from './types.js';

/**
 * The part of the standard WebSocket (WHATWG) that this adapter uses. The events are typed
 * loosely so that the DOM's WebSocket and the `ws` package's both fit; the adapter reads
 * `data` of a message, `code` and `reason` of a close and, where there is one, `message`
 * of an error.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WebSocketOptions {
  /** The WebSocket class: globalThis.WebSocket unless given (Node 20: the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Bytes the WebSocket may hold unsent (bufferedAmount) before write() takes no more (256 KiB). */
  sendBuffer?: number;
}

/** The largest message sent: a longer write goes in several (the server takes up to 256 KiB). */
const MAX_MESSAGE = 65536;
const OPEN = 1;

/**
 * A Connect for the SDK that opens a WebSocket to `url` (ws://host:2002/ or
 * wss://host:2003/, with the server's --ws-path) on each attempt.
 */
export function webSocketConnect(url: string, options: WebSocketOptions = {}): Connect {
  const limit = options.sendBuffer ?? 256 * 1024;
  return (h: SocketHandlers): Socket => {
    const g = globalThis as unknown as { WebSocket?: WebSocketConstructor; setTimeout(f: () => void, ms: number): unknown };
    const WS = options.WebSocket ?? g.WebSocket;
    let ws: WebSocketLike | null = null;
    let opened = false;
    let closed = false;
    let waiting = false; // write() took less than all: onWritable() is owed
    let error = '';
    const finish = (code: CloseCode, detail: string) => {
      if (closed) return;
      closed = true;
      if (ws) {
        // An error may still be reported (closing a WebSocket that is connecting fails it):
        // a handler takes it, or the `ws` package would throw it.
        ws.onopen = ws.onmessage = ws.onclose = null;
        ws.onerror = () => {};
        if (ws.readyState <= OPEN) ws.close(1000);
      }
      h.onClose(code, detail);
    };
    // No room in the WebSocket: the standard API has no event for room coming back, so look again.
    const poll = () => {
      if (closed || !waiting) return;
      if (ws!.bufferedAmount <= limit / 2) {
        waiting = false;
        h.onWritable();
      } else g.setTimeout(poll, 10);
    };
    try {
      if (!WS) throw new Error('this runtime has no WebSocket: pass one as options.WebSocket');
      ws = new WS(url);
      ws.binaryType = 'arraybuffer';
    } catch (e) {
      finish('connect_failed', `cannot open a WebSocket to ${url}: ${(e as Error)?.message ?? e}`);
      return { write: () => 0, close() {} };
    }
    const s = ws;
    s.onopen = () => {
      opened = true;
      h.onOpen();
    };
    s.onmessage = (ev: { data: unknown }) => {
      const d = ev.data;
      if (typeof d === 'string' || !d || typeof (d as ArrayBuffer).byteLength !== 'number') return finish('error', 'the server sent a message that is not binary');
      // A Uint8Array as it is (the `ws` package's Buffers in Node, no copy), else a view of the ArrayBuffer.
      h.onData(d instanceof Uint8Array ? d : new Uint8Array(d as ArrayBuffer));
    };
    // Browsers say nothing of why; the `ws` package says it in `message`.
    s.onerror = (ev: { message?: string } | null) => {
      error = ev?.message ?? '';
    };
    s.onclose = (ev: { code: number; reason: string }) => {
      const why = `the WebSocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})` + (error ? ': ' + error : '');
      finish(!opened ? 'connect_failed' : ev.code === 1000 ? 'end' : 'error', opened ? why : `cannot connect to ${url}: ${why}`);
    };
    return {
      write(data) {
        if (closed || !opened || s.readyState !== OPEN) return 0;
        if (s.bufferedAmount >= limit) {
          if (!waiting) {
            waiting = true;
            g.setTimeout(poll, 10);
          }
          return 0;
        }
        const n = data.length;
        for (let o = 0; o < n; o += MAX_MESSAGE) s.send(o === 0 && n <= MAX_MESSAGE ? data : data.subarray(o, Math.min(n, o + MAX_MESSAGE)));
        return n;
      },
      close() {
        finish('end', 'closed');
      },
    };
  };
}
