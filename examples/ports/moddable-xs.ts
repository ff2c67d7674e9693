// SKETCH, UNTESTED ON XS: the Socket and Clock seams for Moddable XS, over the ECMA-419 TCP
// socket (embedded:io/socket/tcp) and Moddable's timer and time modules. It type-checks
// against the SDK's interfaces (tsc -p tsconfig.json) and follows ECMA-419 2nd edition as
// documented; nobody has run it on a device yet. Expected use, in the firmware's main.js:
//
//   import TCP from "embedded:io/socket/tcp";
//   import Timer from "timer";
//   import Time from "time";
//   const dev = device.start(                          // the device bundle's global
//     { connect: ecma419Connect(TCP, "192.0.2.10", 2002), clock: xsClock(Timer, () => Time.ticks),
//       log: (event, fields) => trace(event, " ", JSON.stringify(fields), "\n") },
//     { id: "sensor-1", collector: "10.0.0.5:5005" });
//
// The address must be an IP address: ECMA-419 TCP does not resolve names (resolve first
// with embedded:network/dns/resolver/udp if needed).

import type { Clock, CloseCode, Connect } from '../../client-sdk/src/index.js';

/** The part of an ECMA-419 TCP socket instance this adapter uses. */
export interface TCP419Socket {
  /**
   * Reads exactly `buffer.byteLength` bytes into `buffer` and returns that count (format
   * "buffer"); undefined when nothing is buffered. Asking for more than is available throws.
   */
  read(buffer: Uint8Array): number | undefined;
  /** Queues all of `buffer` and returns the writable count left; throws when it does not all fit. */
  write(buffer: Uint8Array): number;
  close(): void;
}

export interface TCP419Options {
  address: string;
  port: number;
  format?: 'buffer';
  /** `count` bytes can be read now. */
  onReadable?(this: TCP419Socket, count: number): void;
  /** `count` bytes can be written now. The first call means the connection is established. */
  onWritable?(this: TCP419Socket, count: number): void;
  /** The connection failed or ended; the instance must be closed. */
  onError?(this: TCP419Socket): void;
}

export type TCP419 = new (options: TCP419Options) => TCP419Socket;

/**
 * A Connect over ECMA-419 TCP. write() takes what fits in the socket's free space (its
 * writable count) and the SDK writes the rest of the packet on the next onWritable, so a
 * packet larger than the stack's send buffer (lwIP's TCP_SND_BUF) still goes, in parts.
 * ECMA-419 reports a peer's close and an error alike, through onError: the adapter reports
 * both as the end of the stream once connected, since that is how a 2013 server refuses.
 */
export function ecma419Connect(TCP: TCP419, address: string, port = 2002): Connect {
  // One receive buffer for every connection: the SDK copies what it keeps before onData
  // returns, so the buffer can be reused at once.
  const rx = new Uint8Array(1024);
  return (h) => {
    let writable = 0;
    let open = false;
    let closed = false;
    let refused = false;
    const finish = (code: CloseCode, detail?: string) => {
      if (closed) return;
      closed = true;
      try {
        sock.close();
      } catch {}
      h.onClose(code, detail);
    };
    // Connect must not throw: a constructor that does (a bad address, no free socket) is
    // reported through onClose, which the SDK accepts from inside Connect.
    let sock: TCP419Socket;
    try {
      // The callbacks run later, from the event loop, never inside the constructor.
      sock = new TCP({
        address,
        port,
        format: 'buffer',
        onWritable(count) {
          writable = count;
          if (!open) {
            open = true;
            h.onOpen();
          } else if (refused) {
            refused = false;
            h.onWritable();
          }
        },
        onReadable(count) {
          while (count > 0 && !closed) {
            const n = this.read(rx.subarray(0, Math.min(count, rx.length)));
            if (!n) break;
            count -= n;
            h.onData(rx.subarray(0, n));
          }
        },
        onError() {
          finish(open ? 'end' : 'connect_failed', 'socket error or closed by peer');
        },
      });
    } catch (e) {
      closed = true;
      h.onClose('connect_failed', 'cannot open a socket: ' + e);
      return { write: () => 0, close() {} };
    }
    return {
      write(data) {
        const n = closed || !open ? 0 : Math.min(writable, data.byteLength);
        if (n < data.byteLength) refused = !closed;
        if (n === 0) return 0;
        // Moddable's lwIP implementation returns nothing (instead of the count) once the
        // connection has failed; onError follows.
        writable = sock.write(n < data.byteLength ? data.subarray(0, n) : data) || 0;
        return n;
      },
      close() {
        finish('end');
      },
    };
  };
}

/** Moddable's timer module: Timer.set(callback, ms) and Timer.clear(id). */
export interface XSTimer {
  set(callback: () => void, ms: number): unknown;
  clear(id: unknown): void;
}

/** Time from `ticks` (Moddable's Time.ticks: a monotonic millisecond counter) and Timer. */
export function xsClock(Timer: XSTimer, ticks: () => number): Clock {
  return {
    now: ticks,
    setTimeout: (fn, ms) => Timer.set(fn, ms),
    clearTimeout: (id) => Timer.clear(id),
  };
}
