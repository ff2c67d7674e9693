// The device example's bundle (dist/examples/device.iife.js) on Bun or Deno, with the engine's
// own TCP (bun.ts, deno.ts) and its own timers and performance.now: the same flags and JSON
// log lines as the Node and QuickJS runners (examples/device/cli.ts).
//
//   bun  dist/js/examples/ports/run-device.js --server HOST --collector ADDR:PORT [options]
//   deno run --allow-net --allow-read=dist dist/js/examples/ports/run-device.js --server ...
//
// The bundle is evaluated as a script (indirect eval): it begins "use strict", so its
// top-level var stays local and the global `device` is the one its footer sets. Both runtimes
// have node:util and a Node-like `process`, which the shared flag parser uses. On SIGINT or
// SIGTERM the device is stopped and, with nothing left open, the program ends by itself
// (exit 0); a socket or timer left behind would keep it running, which the tests catch.

import { readFileSync } from 'node:fs';
import type { Connect } from '../../client-sdk/src/index.js';
import { logLine, parseDeviceArgs, usageError } from '../device/cli.js';
import type { Device, DeviceConfig, Platform } from '../device/device.js';
import { bunConnect } from './bun.js';
import { denoConnect } from './deno.js';

const g = globalThis as any;
const engine = g.Bun ? 'bun' : g.Deno ? 'deno' : null;
const PROGRAM = `device-${engine ?? 'runtime'}`;
const { opts } = parseDeviceArgs(PROGRAM, 'Runs the example device bundle (dist/examples/device.iife.js) on Bun or Deno, with\nthe engine\'s own TCP and timers.', process.argv.slice(2));
if (!engine) usageError(PROGRAM, 'run this with bun or deno (Node has examples/device/node.ts)');

const BUNDLE = new URL('../../../examples/device.iife.js', import.meta.url); // dist/js/examples/ports -> dist/examples
(0, eval)(readFileSync(BUNDLE, 'utf8'));
const bundle = g.device as { start(p: Platform, c: DeviceConfig): Device } | undefined;
if (!bundle || typeof bundle.start !== 'function') {
  logLine('fatal', { error: `${BUNDLE.pathname} did not define the global device` }, 'error');
  process.exit(1);
}

const connect: Connect = engine === 'bun' ? bunConnect(g.Bun, opts.server, opts.port) : denoConnect(g.Deno, opts.server, opts.port);
logLine('engine', { engine, version: engine === 'bun' ? g.Bun.version : g.Deno.version.deno });
const dev = bundle.start(
  {
    connect,
    clock: { now: () => performance.now(), setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t as number) },
    log: (event, fields) => logLine(event, fields),
  },
  opts.config,
);

// A second signal (a process group's Ctrl-C can arrive twice, a test may send its own after
// it) changes nothing: the listeners stay, so it never falls through to the runtime's default
// of dying by the signal while the device closes. They do not keep the program alive.
let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logLine('stopping', { signal });
  dev.stop();
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
