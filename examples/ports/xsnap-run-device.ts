// The device example's bundle (dist/examples/device.iife.js) inside Moddable's XS, as
// @agoric/xsnap builds it, with real TCP sockets and timers from Node through the bridge
// (xsnap-bridge.ts, xsnap-guest.ts): the same flags and JSON log lines as the Node and
// QuickJS runners (examples/device/cli.ts), plus XS's own heap figure.
//
//   node dist/js/examples/ports/xsnap-run-device.js --server HOST --collector ADDR:PORT [options]
//
// The bundle is evaluated as strict eval, where its top-level var stays local: the global
// `device` is the one its footer sets. 'memory' lines carry XS's currentHeapCount after a
// collection (slots: 32 bytes each on a 64-bit host, 16 on a 32-bit microcontroller) at
// phases empty, loaded (the device bundle and the guest) and ready (the first time). On SIGINT or
// SIGTERM the device is stopped inside XS, the bridge is closed, and 'runtime_disposed' says
// what was still held at the stop: by the guest ('nothing' unless it leaks) and by the host.

import { existsSync, readFileSync } from 'node:fs';
import { logLine, parseDeviceArgs } from '../device/cli.js';
import { XsnapBridge, xsnapWorker } from './xsnap-bridge.js';

const { opts } = parseDeviceArgs('device-xs', 'Runs the example device bundle (dist/examples/device.iife.js) inside Moddable\'s XS\n(@agoric/xsnap\'s worker), with TCP sockets and timers bridged from Node.', process.argv.slice(2));

if (!existsSync(xsnapWorker())) {
  logLine('fatal', { error: `no xsnap-worker at ${xsnapWorker()}: @agoric/xsnap builds it when installed; run \`npm run build:from-env\` in its folder (node_modules/@agoric/xsnap)` }, 'error');
  process.exit(1);
}

const BUNDLE = new URL('../../../examples/device.iife.js', import.meta.url); // dist/js/examples/ports -> dist/examples
let readyOnce = false;
let stopping = false;
const xs = XsnapBridge.start({
  log(event, fields) {
    logLine(event, fields);
    if (event === 'ready' && !readyOnce) {
      readyOnce = true;
      // After this answer: the guest is still inside its callback now, and the bridge queues.
      setImmediate(() => void memory('ready'));
    }
  },
  onFatal(e) {
    logLine('fatal', { error: e.message }, 'error');
    void shutdown(1);
  },
});

async function memory(phase: string): Promise<void> {
  if (stopping) return;
  // A reading the worker's end overtook is not worth a failure of its own: onFatal reports that.
  const r = await xs.evaluate('gc();').catch(() => null);
  if (r) logLine('memory', { phase, slots: r.meter.currentHeapCount, bytes_64bit: r.meter.currentHeapCount * 32 });
}

async function shutdown(code: number, signal?: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (signal) logLine('stopping', { signal });
  try {
    if (code === 0) {
      await xs.evaluate('globalThis.dev && dev.stop();');
      // The close of the last socket reaches the guest on a later turn.
      for (let i = 0; i < 200 && (xs.held().sockets || xs.held().timers); i++) await new Promise((r) => setTimeout(r, 10));
      const guest = await xs.evaluate("var p = xsnapGuest.pending(); if (p[0] || p[1]) throw new Error('the guest still holds ' + p[0] + ' sockets and ' + p[1] + ' timers');").then(
        () => 'nothing',
        (e: Error) => e.message,
      );
      logLine('runtime_disposed', { guest, sockets: xs.held().sockets, timers: xs.held().timers });
    }
  } catch (e: any) {
    logLine('fatal', { error: e.message }, 'error');
    code = 1;
  }
  await xs.close();
  process.exitCode = code;
}

try {
  await memory('empty');
  await xs.evaluate("'use strict';\n" + readFileSync(BUNDLE, 'utf8'));
  await xs.load();
  await memory('loaded');
  const platform = `{ connect: xsnapGuest.connect(${JSON.stringify(opts.server)}, ${opts.port}), clock: xsnapGuest.clock, log: xsnapGuest.log }`;
  await xs.evaluate(`globalThis.dev = device.start(${platform}, ${JSON.stringify(opts.config)});`);
} catch (e: any) {
  logLine('fatal', { error: e.message }, 'error');
  await xs.close();
  process.exit(1);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void shutdown(0, sig));
