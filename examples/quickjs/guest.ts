// The platform adapter inside the engine: the device's Socket and Clock built on the few
// natives a firmware exposes. This is the code a port rewrites; everything else in the
// device bundle stays as it is. build.mjs bundles it into dist/examples/quickjs-guest.iife.js
// (global `guest`), evaluated after dist/examples/device.iife.js.
//
// The natives, as the host (run-device.ts, or a microcontroller's C) defines them on the
// global object `host`:
//
//   host.connect(address, port) -> id     open a TCP connection; events follow
//   host.write(id, ArrayBuffer) -> bool    queue bytes (copied); false: no room, nothing taken
//                                          (a 'writable' event follows when there is room)
//   host.close(id)                         close; a 'close' event follows
//   host.setTimer(ms) -> id, host.clearTimer(id), host.now() -> ms
//   host.log(event, json)                  one event for the operator
//
// and the host delivers every event by calling guest.event(kind, id, data):
//
//   'open' id | 'data' id ArrayBuffer | 'writable' id | 'close' id code detail | 'timer' id
//
// where the close code is the SDK's (types.ts CloseCode): 'end' when the stream ended,
// 'error', 'connect_failed'... and the detail text for people, or absent.

import type { Clock, CloseCode, Connect, SocketHandlers } from '../../client-sdk/src/index.js';
import type { Platform } from '../device/device.js';

declare const host: {
  connect(address: string, port: number): number;
  write(id: number, data: ArrayBufferLike): boolean;
  close(id: number): void;
  setTimer(ms: number): number;
  clearTimer(id: number): void;
  now(): number;
  log(event: string, json: string): void;
};

const sockets: { [id: number]: SocketHandlers } = {};
const timers: { [id: number]: () => void } = {};

const clock: Clock = {
  now: () => host.now(),
  setTimeout(fn, ms) {
    const id = host.setTimer(ms);
    timers[id] = fn;
    return id;
  },
  clearTimeout(id) {
    delete timers[id as number];
    host.clearTimer(id as number);
  },
};

/** The Platform for device.start(): TCP to `server`:`port` through the host. */
export function platform(server: string, port: number): Platform {
  const connect: Connect = (h) => {
    const id = host.connect(server, port);
    sockets[id] = h;
    return {
      // The host copies what it is given, so hand it the packet's own buffer when the
      // view covers all of it (the SDK and the IP stack always build whole buffers). It
      // takes all of it or nothing.
      write: (d) => (host.write(id, d.byteOffset === 0 && d.byteLength === d.buffer.byteLength ? d.buffer : d.slice().buffer) ? d.length : 0),
      close: () => host.close(id),
    };
  };
  return { connect, clock, log: (event, fields) => host.log(event, JSON.stringify(fields)) };
}

/** Every host event enters the guest here. */
export function event(kind: string, id: number, data?: ArrayBuffer | string, detail?: string): void {
  if (kind === 'timer') {
    const fn = timers[id];
    delete timers[id];
    if (fn) fn();
    return;
  }
  const h = sockets[id];
  if (!h) return;
  if (kind === 'open') h.onOpen();
  else if (kind === 'data') h.onData(new Uint8Array(data as ArrayBuffer));
  else if (kind === 'writable') h.onWritable();
  else if (kind === 'close') {
    delete sockets[id]; // at most once
    h.onClose((data as CloseCode | undefined) || 'end', detail);
  }
}

/** Sockets and timers the guest still holds (0 and 0 after a clean stop). */
export function pending(): number[] {
  return [Object.keys(sockets).length, Object.keys(timers).length];
}
