// The guest side of the xsnap bridge: the SDK's Socket and Clock inside Moddable's XS, run by
// @agoric/xsnap's worker, over the one channel that worker has to its host: synchronous
// messages. The guest asks with issueCommand(ArrayBuffer) -> ArrayBuffer and the host answers
// at once; the host delivers events by calling the guest's global handleCommand(ArrayBuffer).
// Each message is one opcode byte, most then a socket or timer id (4 bytes, big-endian):
//
//   guest -> host (issueCommand)            host -> guest (handleCommand)
//   'c' "address:port"  -> id               'o' id              connected
//   'w' id bytes        -> bytes taken (4)  'd' id bytes        data
//   'x' id              close               'w' id              writable again
//   't' id ms(4)        set a timer         'e' id code "\n" detail   closed (a CloseCode)
//   'u' id              clear it            't' id              the timer fired
//   'l' json            a log line
//
// The host (xsnap-bridge.ts) never calls the guest from inside one of its answers, so every
// handler runs from the event loop, as the SDK requires. Time is XS's performance.now(); on a
// Moddable device it would be Time.ticks and Timer.set (see moddable-xs.ts). build.mjs bundles
// this file into dist/examples/xsnap-guest.iife.js (global `xsnapGuest`); the host evaluates it
// after the SDK bundle and sets `handleCommand = xsnapGuest.handleCommand`.

import type { Clock, CloseCode, Connect, SocketHandlers } from '../../client-sdk/src/index.js';

declare const issueCommand: (message: ArrayBuffer) => ArrayBuffer;
declare const performance: { now(): number };

const sockets: { [id: number]: SocketHandlers } = {};
const timers: { [id: number]: () => void } = {};
let nextTimer = 1;

const C = (s: string) => s.charCodeAt(0);

/** One message: opcode, optional id, optional bytes; the answer as bytes. */
function ask(op: string, id: number, data?: Uint8Array, head = 5): Uint8Array {
  const m = new Uint8Array(head + (data ? data.length : 0));
  m[0] = C(op);
  if (head === 5) u32(m, 1, id);
  if (data) m.set(data, head);
  return new Uint8Array(issueCommand(m.buffer));
}

function u32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >> 16) & 255;
  b[o + 2] = (v >> 8) & 255;
  b[o + 3] = v & 255;
}

const readU32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** Text as bytes, anything beyond ASCII escaped as JSON would (the host reads JSON and names). */
function ascii(s: string): Uint8Array {
  s = s.replace(/[\u0080-\uffff]/g, (c) => '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4));
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

const text = (b: Uint8Array) => String.fromCharCode.apply(null, Array.prototype.slice.call(b) as number[]);

/** A Connect that dials `address`:`port` through the host. */
export function connect(address: string, port: number): Connect {
  return (h) => {
    const id = readU32(ask('c', 0, ascii(address + ':' + port), 1), 0);
    sockets[id] = h;
    return {
      write: (d) => readU32(ask('w', id, d), 0),
      close() {
        // The host answers the close with an 'e' event, after this call.
        if (sockets[id]) ask('x', id);
      },
    };
  };
}

export const clock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const id = nextTimer++;
    timers[id] = fn;
    const m = new Uint8Array(4);
    u32(m, 0, Math.max(0, Math.ceil(ms)));
    ask('t', id, m);
    return id;
  },
  clearTimeout(id) {
    if (!timers[id as number]) return;
    delete timers[id as number];
    ask('u', id as number);
  },
};

/** One log line for the host: an event name and its fields, as JSON. */
export function log(event: string, fields: { [k: string]: unknown }): void {
  ask('l', 0, ascii(JSON.stringify({ event, fields })), 1);
}

/** Every host event enters the guest here (the worker calls the global handleCommand). */
export function handleCommand(message: ArrayBuffer): undefined {
  const m = new Uint8Array(message);
  const op = String.fromCharCode(m[0]);
  const id = readU32(m, 1);
  if (op === 't') {
    const fn = timers[id];
    delete timers[id];
    if (fn) fn();
    return;
  }
  const h = sockets[id];
  if (!h) return;
  if (op === 'o') h.onOpen();
  else if (op === 'd') h.onData(m.subarray(5));
  else if (op === 'w') h.onWritable();
  else if (op === 'e') {
    delete sockets[id]; // at most once
    const s = text(m.subarray(5));
    const nl = s.indexOf('\n');
    h.onClose(s.slice(0, nl) as CloseCode, s.slice(nl + 1) || undefined);
  }
}

/** Sockets and timers the guest still holds (0 and 0 after a clean stop). */
export function pending(): number[] {
  return [Object.keys(sockets).length, Object.keys(timers).length];
}
