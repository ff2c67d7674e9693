// NOT YET RUN ON ESPRUINO ITSELF: the Socket and Clock seams for Espruino, over its cut-down
// node-style `net` library. It follows Espruino's documented socket API (data arrives as
// binary strings, write() takes a string and always returns false, 'drain' fires when its
// send buffer is empty) and is tested with the ES5 bundle in an ES5 context over a stand-in
// for that API (test/integration/engines/es5.test.ts, and with the device in device.test.ts);
// nobody has run it on a board yet.
// Expected use, after dist/examples/device.es5.js (the device lowered to ES5; or the SDK alone,
// dist/sdk/simplevpn-sdk.es5.js):
//
//   var dev = device.start({
//     connect: espruinoConnect(require("net"), E, "192.0.2.10", 2002),
//     clock: espruinoClock({ getTime: getTime, setTimeout: setTimeout, clearTimeout: clearTimeout }),
//     log: function (event, fields) { console.log(event, JSON.stringify(fields)); },
//   }, { id: "sensor-1", collector: "10.0.0.5:5005" });
//
// Espruino interprets a subset of modern JavaScript (let and const behave like var; no
// default parameters, destructuring, for-of or method shorthand): load the ES5 bundle, not
// the ES2017 one, and keep this file's ES5 style. Check free memory with process.memory()
// after start.

import type { Clock, CloseCode, Connect } from '../../client-sdk/src/index.js';

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
 * takes only what keeps that count within `maxQueued`: the SDK keeps the rest of a packet
 * for the 'drain' (onWritable) and drops whole packets meanwhile, so memory stays bounded.
 */
export function espruinoConnect(net: EspruinoNet, E: EspruinoE, host: string, port?: number, maxQueued?: number): Connect {
  // Written as ES5 (var, function expressions, no default parameter or method shorthand):
  // Espruino runs this as it is once the types are gone; test/integration/engines/es5.test.ts
  // checks that and runs it in an ES5 context over a stand-in for Espruino's net.
  var p = port || 2002;
  var max = maxQueued || 2048;
  return function (h) {
    var closed = false;
    var opened = false;
    var queued = 0;
    var refused = false;
    var sock: EspruinoSocket;
    var finish = function (code: CloseCode, detail?: string) {
      if (closed) return;
      closed = true;
      sock.end();
      h.onClose(code, detail);
    };
    try {
      sock = net.connect({ host: host, port: p }, function () {
        opened = true;
        if (!closed) h.onOpen();
      });
    } catch (e) {
      // Connect must not throw: report it as a close, which the SDK accepts from inside Connect.
      closed = true;
      h.onClose('connect_failed', 'cannot connect: ' + e);
      return {
        write: function () {
          return 0;
        },
        close: function () {},
      };
    }
    sock.on('data', function (d) {
      if (!closed) h.onData(E.toUint8Array(d));
    });
    sock.on('drain', function () {
      queued = 0;
      if (refused && !closed) {
        refused = false;
        h.onWritable();
      }
    });
    // 'error' is followed by 'close' once connected; finish() reports only the first. A
    // close without an error is the end of the stream (how a 2013 server refuses).
    sock.on('error', function (e) {
      finish(opened ? 'error' : 'connect_failed', 'error ' + e.code + ': ' + e.message);
    });
    sock.on('close', function () {
      finish('end');
    });
    return {
      write: function (data) {
        var n = closed ? 0 : Math.min(data.length, max - queued);
        if (n < data.length) refused = !closed;
        if (n <= 0) return 0;
        queued += n;
        sock.write(E.toString(n < data.length ? data.subarray(0, n) : data));
        return n;
      },
      close: function () {
        finish('end');
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
    now: function () {
      return t.getTime() * 1000;
    },
    setTimeout: function (fn, ms) {
      return t.setTimeout(fn, ms);
    },
    clearTimeout: function (id) {
      t.clearTimeout(id);
    },
  };
}
