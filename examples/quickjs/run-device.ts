// The device in QuickJS, as on a microcontroller: the host gives the engine a TCP socket
// bridge and timers (host.ts), the engine runs dist/examples/device.iife.js.
//
//   node dist/js/examples/quickjs/run-device.js --server HOST --collector ADDR:PORT [options]
//
// Same flags and JSON log lines as the Node runner (examples/device/node.ts), plus the
// engine's memory: 'memory' events at phases empty, loaded, ready (first time), every
// --memory-every seconds, and stopped.

import { logLine, parseDeviceArgs, usageError } from '../device/cli.js';
import { QuickJSDevice } from './host.js';

const PROGRAM = 'device-quickjs';
const { opts, values } = parseDeviceArgs(
  PROGRAM,
  'Runs the example device bundle (dist/examples/device.iife.js) inside QuickJS, with only a TCP\nsocket bridge and timers from the host.',
  process.argv.slice(2),
  { 'memory-limit': { type: 'string' }, 'memory-every': { type: 'string' }, 'memory-dump': { type: 'boolean' } },
  `      --memory-limit BYTES   the QuickJS runtime's heap limit (1048576)
      --memory-every SEC     log the engine's memory use this often (off)
      --memory-dump          print QuickJS's memory table on stderr when stopping
`,
);
const limit = values['memory-limit'] === undefined ? undefined : Number(values['memory-limit']);
if (limit !== undefined && !(Number.isInteger(limit) && limit >= 65536)) usageError(PROGRAM, `--memory-limit must be a number of bytes of at least 65536, got "${values['memory-limit']}"`);
const every = values['memory-every'] === undefined ? 0 : Number(values['memory-every']);
if (!(every >= 0 && Number.isFinite(every))) usageError(PROGRAM, `--memory-every must be seconds, got "${values['memory-every']}"`);

let dev: QuickJSDevice | null = null;
let readyOnce = false;
let memTimer: NodeJS.Timeout | undefined;

function shutdown(code: number, signal?: string): void {
  clearInterval(memTimer);
  if (signal) logLine('stopping', { signal });
  if (dev) {
    if (values['memory-dump']) {
      try {
        process.stderr.write(dev.dumpMemory() + '\n');
      } catch {}
    }
    const left = dev.stop();
    dev = null;
    // What the guest still held after dev.stop(): both 0 unless the adapter leaks.
    logLine('runtime_disposed', left);
  }
  process.exitCode = code;
  setTimeout(() => process.exit(code), 1000).unref();
}

try {
  dev = await QuickJSDevice.start({
    ...opts,
    memoryLimit: limit,
    log: (event, fields, level) => {
      logLine(event, fields, level);
      if (event === 'ready' && !readyOnce) {
        readyOnce = true;
        // After this call returns to the host: the guest is still inside its callback now.
        setImmediate(() => dev?.memoryEvent('ready'));
      }
    },
    onFatal: (err) => {
      logLine('fatal', { error: err.message }, 'error');
      setImmediate(() => shutdown(1));
    },
  });
} catch (err: any) {
  logLine('fatal', { error: err.message }, 'error');
  process.exit(1);
}
if (every > 0) memTimer = setInterval(() => dev?.memoryEvent('running'), every * 1000);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    shutdown(0, sig);
  });
}
