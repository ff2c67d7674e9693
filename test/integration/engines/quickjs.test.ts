// The scenario every engine runs (test/support/engines/), in QuickJS, for its figures beside
// the other engines' (QuickJS's own tests of the SDK and the device are
// test/unit/client-sdk/quickjs.test.ts and test/integration/examples/quickjs.test.ts). It
// runs in the runtime of examples/quickjs/host.ts, through that example's socket bridge and
// timers (quickjs-guest.iife.js): the SDK's IIFE and the scenario are evaluated beside the
// device the host starts there, and QuickJS's own memory estimate is read around them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ROOT } from '../../support/paths.js';
import { EngineLab, checkScenario, figures, reactor, scenarioScript, until, type Event } from '../../support/engines/lab.js';
import { QuickJSDevice } from '../../../examples/quickjs/host.js';

const SDK = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.iife.js', 'utf8');
const PREFIX = 'scenario:'; // the device logs through the same native

test('QuickJS: address, echo through the server, keepalive, reconnect to the same address', async () => {
  const lab = await EngineLab.start();
  const events: Event[] = [];
  const fatal: Error[] = [];
  const used: Record<string, number> = {};
  let dev: QuickJSDevice | null = null;
  const react = reactor(lab, events, (e) => {
    if (e.event === 'measure') used.ready = dev!.memory().memory_used_size;
  });
  try {
    dev = await QuickJSDevice.start({
      server: '127.0.0.1',
      port: lab.server.port,
      // The host's device: idle beside the scenario (one reading an hour).
      config: { id: 'qjs-host', collector: '10.0.255.250:9', interval: 3600 },
      log: (event, fields) => event.startsWith(PREFIX) && react({ event: event.slice(PREFIX.length), ...fields }),
      onFatal: (e) => fatal.push(e),
    });
    used.before = dev.memory().memory_used_size;
    dev.eval(SDK);
    used.sdk = dev.memory().memory_used_size;
    dev.eval(await scenarioScript());
    used.loaded = dev.memory().memory_used_size;
    dev.eval(
      `var p = guest.platform('127.0.0.1', ${lab.server.port});` +
        ` globalThis.scenarioRun = scenario.run({ sdk: simplevpn, connect: p.connect, clock: p.clock, peer: '${lab.peerAddress}', name: 'quickjs',` +
        ` report: function (e, f) { host.log('${PREFIX}' + e, JSON.stringify(f)); } }); 0`,
    );
    await until('the scenario to end', () => events.some((e) => e.event === 'closed' || e.event === 'failed'), 30_000);
    assert.equal(fatal, []);
    checkScenario(events, lab);
    figures('quickjs', events, {
      bytes_sdk: used.sdk - used.before,
      bytes_scenario: used.loaded - used.sdk,
      bytes_connection: used.ready - used.loaded,
    });
  } finally {
    dev?.stop();
    await lab.close();
  }
});

test.run();
