// SKETCH, UNTESTED ON ESPRUINO: the Socket and Clock seams for Espruino, over its cut-down
// node-style `net` library. It type-checks against the SDK's interfaces (tsc -p
// tsconfig.json) and follows Espruino's documented socket API (data arrives as binary
// strings, write() takes a string and always returns false, 'drain' fires when its send
// buffer is empty); nobody has run it on a board yet. Expected use:
//
//   var dev = device.start({
//     connect: espruinoConnect(require("net"), E, "192.0.2.10", 2002),
//     clock: espruinoClock({ getTime: getTime, setTimeout: setTimeout, clearTimeout: clearTimeout }),
//     log: function (event, fields) { console.log(event, JSON.stringify(fields)); },
//   }, { id: "sensor-1", collector: "10.0.0.5:5005" });
//
// Espruino interprets a subset of modern JavaScript; the ES2017 bundle may need lowering
// further (Babel preset-env, for example) before it loads. Check free memory with
// process.memory() after start.

import type { Clock, Connect } from '../../client-sdk/src/index.js';

/** The part of an Espruino net.Socket this adapter uses. */
export interface EspruinoSocket {
  /** Sends a binary string; always returns false, so it says nothing about buffer space. */
  write(data: string): boolean;
  end(): void;
  on(event: 'data', cb: (data: string) => void): void;
  on(event: 'drain', cb: () => void): void;
  on(event: 'error', cb: (err: { code: number; message: string }) => void): void;
  on(event: 'close', cb: (hadError: boolean) => void): void;
}

export interface EspruinoNet {
  connect(options: { host: string; port: number }, onConnect: () => void): EspruinoSocket;
}

/** Espruino's E: binary strings to and from byte arrays. */
export interface EspruinoE {
  toString(bytes: Uint8Array): string;
  toUint8Array(data: string): Uint8Array;
}

/**
 * A Connect over Espruino's net. Its socket has no bounded send buffer and write() reports
 * nothing, so the adapter keeps its own count of bytes written since the last 'drain' and
 * refuses a packet that would pass `maxQueued`: the SDK then drops and counts it, and
 * memory stays bounded.
 */
export function espruinoConnect(net: EspruinoNet, E: EspruinoE, host: string, port = 2002, maxQueued = 2048): Connect {
  return (h) => {
    let closed = false;
    let queued = 0;
    let refused = false;
    const finish = (why?: string) => {
      if (closed) return;
      closed = true;
      sock.end();
      h.onClose(why);
    };
    let sock: EspruinoSocket;
    try {
      sock = net.connect({ host, port }, () => closed || h.onOpen());
    } catch (e) {
      // Connect must not throw: report it as a close, which the SDK accepts from inside Connect.
      closed = true;
      h.onClose('cannot connect: ' + e);
      return { write: () => false, close() {} };
    }
    sock.on('data', (d) => closed || h.onData(E.toUint8Array(d)));
    sock.on('drain', () => {
      queued = 0;
      if (refused && !closed) {
        refused = false;
        h.onWritable();
      }
    });
    // 'error' is followed by 'close' once connected; finish() reports only the first.
    sock.on('error', (e) => finish('error ' + e.code + ': ' + e.message));
    sock.on('close', () => finish());
    return {
      write(data) {
        if (closed || queued + data.length > maxQueued) {
          refused = !closed;
          return false;
        }
        queued += data.length;
        sock.write(E.toString(data));
        return true;
      },
      close() {
        finish();
      },
    };
  };
}

export interface EspruinoTimers {
  /** Seconds, as a float (Espruino's getTime()). setTime() can step it. */
  getTime(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export function espruinoClock(t: EspruinoTimers): Clock {
  return {
    now: () => t.getTime() * 1000,
    setTimeout: (fn, ms) => t.setTimeout(fn, ms),
    clearTimeout: (id) => t.clearTimeout(id),
  };
}
