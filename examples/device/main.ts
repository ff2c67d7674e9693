// The embedded entry point. build.mjs bundles this file and everything it imports (the SDK
// core, the IP stack, the device) into dist/examples/device.iife.js: one minified ES2017
// script that defines a global `device` and touches nothing else. No Node, no DOM, no
// TextEncoder, no timers of its own: the engine supplies a Platform.
//
//   device.start(platform, config)   -> Device (stop(), seq, client, ip)
//
// where platform = { connect, clock, log, temperature? } (see device.ts). On a firmware this
// is the whole JavaScript side; the adapter that builds `platform` is the part to port.
export { startDevice as start } from './device.js';
export type { Device, DeviceConfig, Platform } from './device.js';
