// The device example as an Espruino-class engine would run it: dist/examples/device.es5.js
// (the device lowered to ES5 by build.mjs) and examples/ports/espruino.ts (ES5 as written),
// both checked for ES5 syntax, run as classic scripts in a vm context with the ES2015+
// built-ins deleted (test/support/es5.ts), over the stand-in for Espruino's `net` on real
// sockets (espruino-stand-in.ts). The same flags and JSON log lines as the other device
// runners (examples/device/cli.ts).
//
//   node dist/js/test/support/engines/es5-device-main.js --server HOST --collector ADDR:PORT [options]
//
// On SIGINT or SIGTERM the device is stopped inside the context, 'runtime_disposed' says what
// was still open (sockets and timers: 0 and 0 unless the device or the adapter leaks), and
// the program ends by itself with nothing left.
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { logLine, parseDeviceArgs } from '../../../examples/device/cli.js';
import { ROOT } from '../paths.js';

const { opts } = parseDeviceArgs('device-es5', 'Runs the example device lowered to ES5 (dist/examples/device.es5.js) in a context without\nthe ES2015+ built-ins, over a stand-in for Espruino\'s net.', process.argv.slice(2));

const fatal = (error: string): never => {
  logLine('fatal', { error }, 'error');
  process.exit(1);
};

// Loading takes a moment (esbuild, Babel's parser: imported below, once this is in place): a
// signal before the device has started ends the program at once, as a clean stop.
let started = false;
const early = () => {
  if (started) return;
  logLine('stopping', { before: 'start' });
  process.exit(0);
};
process.on('SIGINT', early);
process.on('SIGTERM', early);
const { es5Context, es5Violations, leftIn } = await import('../es5.js');
const { ESPRUINO_E, countedTimers, es5Script, espruinoNet } = await import('./espruino-stand-in.js');

const scripts = { 'device.es5.js': readFileSync(ROOT + 'dist/examples/device.es5.js', 'utf8'), 'espruino.ts': await es5Script('examples/ports/espruino.ts', 'espruino') };
for (const [name, code] of Object.entries(scripts)) {
  const bad = es5Violations(code);
  if (bad.length) fatal(`${name} is not ES5: ${bad.slice(0, 5).join('; ')}`);
}
const sockets: net.Socket[] = [];
const timers = countedTimers();
const ctx = es5Context({
  net: espruinoNet(sockets),
  getTime: () => performance.now() / 1000,
  setTimeout: timers.setTimeout,
  clearTimeout: timers.clearTimeout,
  // Fields cross as JSON: the context's objects are of another realm.
  log: (event: string, fields: object) => logLine(event, JSON.parse(JSON.stringify(fields))),
});
const left = leftIn(ctx);
if (left.length) fatal(`ES2015 globals left in the context: ${left.join(', ')}`);
vm.runInContext(ESPRUINO_E, ctx);
for (const [name, code] of Object.entries(scripts)) vm.runInContext(code, ctx, { filename: name });
logLine('engine', { engine: 'es5-context', node: process.version });
vm.runInContext(
  `var dev = device.start({ connect: espruino.espruinoConnect(net, E, ${JSON.stringify(opts.server)}, ${opts.port}),` +
    ` clock: espruino.espruinoClock({ getTime: getTime, setTimeout: setTimeout, clearTimeout: clearTimeout }), log: log },` +
    ` ${JSON.stringify(opts.config)});`,
  ctx,
);

started = true;
process.removeListener('SIGINT', early);
process.removeListener('SIGTERM', early);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logLine('stopping', { signal });
  vm.runInContext('dev.stop();', ctx);
  // A socket's close arrives on a later turn.
  for (let i = 0; i < 200 && (timers.live.size || !sockets.every((s) => s.destroyed)); i++) await new Promise((r) => setTimeout(r, 10));
  logLine('runtime_disposed', { sockets: sockets.filter((s) => !s.destroyed).length, timers: timers.live.size });
  // The listeners stay: a second signal (a process group's Ctrl-C twice) then changes nothing,
  // where without them Node's default would end the runner by it. They hold nothing open.
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
