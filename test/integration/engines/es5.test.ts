// The ES5 bundle (dist/sdk/simplevpn-sdk.es5.js) where an Espruino-class engine would run it:
// a vm context with the ES2015+ built-ins deleted (Symbol, Map, Set, Promise, Reflect, BigInt,
// DataView, globalThis, WeakMap, Proxy... test/support/es5.ts), loaded as a classic script with
// examples/ports/espruino.ts and the scenario, both ES5 too. The network is a stand-in for
// Espruino's `net` over real node:net sockets (binary strings in, a write() that always returns
// false, 'drain' once its buffer is empty), with E.toString / E.toUint8Array and getTime. The
// scenario every engine runs (test/support/engines/): an address, packets echoed by another
// client through a real server, keepalives, a reconnect to the same address.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { ROOT } from '../../support/paths.js';
import { es5Context, es5Violations, leftIn } from '../../support/es5.js';
import { EngineLab, checkScenario, es5Script, figures, reactor, scenarioScript, until, type Event } from '../../support/engines/lab.js';

const SDK_ES5 = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.es5.js', 'utf8');

/** Espruino's net, as far as the adapter uses it, over node:net. Data crosses as strings. */
function espruinoNet(sockets: net.Socket[]) {
  return {
    connect(o: { host: string; port: number }, onConnect: () => void) {
      const s = net.connect({ host: o.host, port: o.port });
      sockets.push(s);
      const on: Record<string, Array<(...a: unknown[]) => void>> = {};
      const emit = (ev: string, ...a: unknown[]) => (on[ev] ?? []).forEach((f) => f(...a));
      s.setNoDelay(true);
      s.once('connect', () => onConnect());
      s.on('data', (d: Buffer) => emit('data', d.toString('latin1')));
      s.on('error', (e: NodeJS.ErrnoException) => emit('error', { code: e.errno ?? -1, message: e.message }));
      s.on('close', (hadError: boolean) => emit('close', hadError));
      return {
        write(data: string) {
          s.write(Buffer.from(data, 'latin1'), () => s.writableLength === 0 && emit('drain'));
          return false;
        },
        end: () => s.destroy(),
        on(ev: string, f: (...a: unknown[]) => void) {
          (on[ev] ??= []).push(f);
        },
      };
    },
  };
}

// E, as ES5 inside the context, so that its Uint8Arrays are the context's own.
const E = `var E = {
  toString: function (b) { var s = ''; for (var i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096)); return s; },
  toUint8Array: function (s) { var b = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) b[i] = s.charCodeAt(i); return b; }
};`;

test('the ES5 bundle, the Espruino adapter and the scenario: address, echo through the server, keepalive, reconnect to the same address', async () => {
  const scripts = { 'simplevpn-sdk.es5.js': SDK_ES5, 'espruino.ts': await es5Script('examples/ports/espruino.ts', 'espruino'), 'scenario.ts': await scenarioScript() };
  for (const [name, code] of Object.entries(scripts)) assert.equal(es5Violations(code), [], `${name} is ES5`);

  const lab = await EngineLab.start();
  const sockets: net.Socket[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const events: Event[] = [];
  const react = reactor(lab, events);
  try {
    const ctx = es5Context({
      net: espruinoNet(sockets),
      getTime: () => performance.now() / 1000,
      setTimeout: (f: () => void, ms: number) => {
        const t = setTimeout(() => {
          timers.delete(t);
          f();
        }, ms);
        timers.add(t);
        return t;
      },
      clearTimeout: (t: NodeJS.Timeout) => {
        clearTimeout(t);
        timers.delete(t);
      },
      // Fields cross back as JSON: objects of another realm compare unequal in the checks.
      report: (event: string, fields: object) => react({ event, ...JSON.parse(JSON.stringify(fields)) }),
    });
    assert.equal(leftIn(ctx), [], 'no ES2015 global left in the context');
    vm.runInContext(E, ctx);
    for (const [name, code] of Object.entries(scripts)) vm.runInContext(code, ctx, { filename: name });
    vm.runInContext(
      `var dev = scenario.run({ sdk: simplevpn, connect: espruino.espruinoConnect(net, E, '127.0.0.1', ${lab.server.port}),` +
        ` clock: espruino.espruinoClock({ getTime: getTime, setTimeout: setTimeout, clearTimeout: clearTimeout }),` +
        ` peer: '${lab.peerAddress}', name: 'es5', report: report });`,
      ctx,
    );
    await until('the scenario to end', () => events.some((e) => e.event === 'closed' || e.event === 'failed'), 30_000);
    checkScenario(events, lab);
    await until('every socket closed and timer done', () => sockets.every((s) => s.destroyed) && timers.size === 0, 2000);
    figures('es5-context', events);
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await lab.close();
  }
});

test.run();
