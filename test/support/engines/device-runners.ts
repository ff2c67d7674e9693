// How each engine runs the device example (dist/examples/device.iife.js, or its ES5 lowering)
// as a program: every runner takes the device flags of examples/device/cli.ts and prints the
// device's JSON log lines (ready, down, telemetry, stopped with its counters), and exits 0 by
// itself on SIGTERM once the device has closed everything.
import { join } from 'node:path';
import type { Host, Proc } from '../lab.js';
import { ROOT } from '../paths.js';

const EX = join(ROOT, 'dist/js/examples');

export type DeviceEngine = 'node' | 'quickjs' | 'xs' | 'bun' | 'deno' | 'es5';

export const DEVICE_ENGINES: Array<{ engine: DeviceEngine; what: string }> = [
  { engine: 'node', what: 'Node (examples/device/node.ts, tcpConnect)' },
  { engine: 'quickjs', what: 'QuickJS (examples/quickjs/run-device.ts, its socket bridge)' },
  { engine: 'xs', what: "XS, @agoric/xsnap's worker (examples/ports/xsnap-run-device.ts, the xsnap bridge)" },
  { engine: 'bun', what: "Bun (examples/ports/run-device.ts, Bun's own TCP)" },
  { engine: 'deno', what: "Deno (examples/ports/run-device.ts, Deno's own TCP)" },
  { engine: 'es5', what: 'the ES5 context (test/support/engines/es5-device-main.ts, the ES5 device bundle, the Espruino adapter)' },
];

/** Starts the device on `engine` in `host`, with the device flags `args` (--server included). */
export function startDevice(host: Host, engine: DeviceEngine, server: string, args: string[]): Proc {
  const name = `${engine}-device`;
  switch (engine) {
    case 'node':
      return host.node(name, join(EX, 'device/node.js'), args);
    case 'quickjs':
      return host.node(name, join(EX, 'quickjs/run-device.js'), args);
    case 'xs':
      return host.node(name, join(EX, 'ports/xsnap-run-device.js'), args);
    case 'es5':
      return host.node(name, join(ROOT, 'dist/js/test/support/engines/es5-device-main.js'), args);
    case 'bun':
      return host.spawn(name, [join(ROOT, 'node_modules/.bin/bun'), join(EX, 'ports/run-device.js'), ...args]);
    case 'deno':
      // The server's address and the bundle only.
      return host.spawn(name, [join(ROOT, 'node_modules/.bin/deno'), 'run', `--allow-net=${server}`, `--allow-read=${ROOT}dist`, '--no-prompt', join(EX, 'ports/run-device.js'), ...args]);
  }
}
