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
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { ROOT } from '../../support/paths.js';
import { es5Context, es5Violations, leftIn } from '../../support/es5.js';
import { EngineLab, checkScenario, figures, reactor, scenarioScript, until, type Event } from '../../support/engines/lab.js';
import { ESPRUINO_E, countedTimers, es5Script, espruinoNet } from '../../support/engines/espruino-stand-in.js';

const SDK_ES5 = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.es5.js', 'utf8');

test('the ES5 bundle, the Espruino adapter and the scenario: address, echo through the server, keepalive, reconnect to the same address', async () => {
  const scripts = { 'simplevpn-sdk.es5.js': SDK_ES5, 'espruino.ts': await es5Script('examples/ports/espruino.ts', 'espruino'), 'scenario.ts': await scenarioScript() };
  for (const [name, code] of Object.entries(scripts)) assert.equal(es5Violations(code), [], `${name} is ES5`);

  const lab = await EngineLab.start();
  const sockets: net.Socket[] = [];
  const timers = countedTimers();
  const events: Event[] = [];
  const react = reactor(lab, events);
  try {
    const ctx = es5Context({
      net: espruinoNet(sockets),
      getTime: () => performance.now() / 1000,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      // Fields cross back as JSON: objects of another realm compare unequal in the checks.
      report: (event: string, fields: object) => react({ event, ...JSON.parse(JSON.stringify(fields)) }),
    });
    assert.equal(leftIn(ctx), [], 'no ES2015 global left in the context');
    vm.runInContext(ESPRUINO_E, ctx);
    for (const [name, code] of Object.entries(scripts)) vm.runInContext(code, ctx, { filename: name });
    vm.runInContext(
      `var dev = scenario.run({ sdk: simplevpn, connect: espruino.espruinoConnect(net, E, '127.0.0.1', ${lab.server.port}),` +
        ` clock: espruino.espruinoClock({ getTime: getTime, setTimeout: setTimeout, clearTimeout: clearTimeout }),` +
        ` peer: '${lab.peerAddress}', name: 'es5', report: report });`,
      ctx,
    );
    await until('the scenario to end', () => events.some((e) => e.event === 'closed' || e.event === 'failed'), 30_000);
    checkScenario(events, lab);
    await until('every socket closed and timer done', () => sockets.every((s) => s.destroyed) && timers.live.size === 0, 2000);
    figures('es5-context', events);
  } finally {
    for (const t of timers.live) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await lab.close();
  }
});

test.run();
