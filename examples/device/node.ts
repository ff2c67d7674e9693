// The device on Node: the same device.ts as the embedded bundle, with the SDK's Node
// adapters as its platform (node:net for the Socket, performance.now and setTimeout for the
// Clock). Handy for trying the device on a laptop, and the reference the QuickJS run is
// compared with.
//
//   node dist/js/examples/device/node.js --server HOST --collector ADDR:PORT [options]

import { nodeClock, tcpConnect } from '../../client-sdk/node/index.js';
import { logLine, parseDeviceArgs } from './cli.js';
import { startDevice } from './device.js';

const { opts } = parseDeviceArgs(
  'device-node',
  'Runs the example device (ICMP echo responder and UDP telemetry sender) on Node.',
  process.argv.slice(2),
);

const device = startDevice(
  {
    connect: tcpConnect({ host: opts.server, port: opts.port }),
    clock: nodeClock,
    log: (event, fields) => logLine(event, fields),
  },
  opts.config,
);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    logLine('stopping', { signal: sig });
    device.stop();
    // Everything is closed; the event loop empties and the process exits with 0.
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
