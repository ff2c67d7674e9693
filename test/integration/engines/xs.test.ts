// The SDK in Moddable's XS, as @agoric/xsnap builds it (xsnap-worker), through the bridge of
// examples/ports/xsnap-bridge.ts (host, Node) and xsnap-guest.ts (guest, XS): real TCP
// sockets and timers from Node, over xsnap's synchronous messages. The SDK's IIFE is loaded
// as strict eval and as a module, the two ways in which its top-level var stays local, and
// must define its global all the same. Then the scenario every engine runs
// (test/support/engines/): an address, packets echoed by another client through a real
// server, keepalives, a reconnect to the same address; and XS's own memory figures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../support/paths.js';
import { EngineLab, checkScenario, figures, reactor, scenarioScript, until, type Event } from '../../support/engines/lab.js';
import { XsnapBridge, type XsnapBridgeOptions } from '../../../examples/ports/xsnap-bridge.js';

const SDK = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.iife.js', 'utf8');
const GUEST = readFileSync(ROOT + 'dist/examples/xsnap-guest.iife.js', 'utf8');
const STRICT = "'use strict';\n";
const HAS_SDK = "if (typeof simplevpn !== 'object' || typeof simplevpn.Client !== 'function' || simplevpn.Client === simplevpn.Framer) throw new Error('no simplevpn global');";

const bridges: XsnapBridge[] = [];
const start = (o: XsnapBridgeOptions = {}) => {
  const b = XsnapBridge.start(o);
  bridges.push(b);
  return b;
};

test.after(async () => {
  for (const b of bridges) await b.close();
});

test('strict eval in XS keeps a top-level var local; the SDK IIFE defines simplevpn all the same', async () => {
  const xs = start();
  await xs.evaluate(STRICT + 'var probe = 1;');
  await xs.evaluate("if (typeof probe !== 'undefined') throw new Error('strict eval leaked its var');");
  await xs.evaluate(STRICT + SDK);
  await xs.evaluate(HAS_SDK);
  await xs.close();
});

test('the SDK IIFE run as an XS module (as a Moddable manifest loads it) defines simplevpn', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'simplevpn-xs-'));
  try {
    writeFileSync(join(dir, 'simplevpn-sdk.js'), SDK);
    const xs = start();
    await xs.importModule(join(dir, 'simplevpn-sdk.js'));
    await xs.evaluate(HAS_SDK);
    await xs.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('XS: address, echo through the server, keepalive, reconnect to the same address, nothing left after close', async () => {
  const lab = await EngineLab.start();
  const events: Event[] = [];
  const fatal: Error[] = [];
  const slots: Record<string, number> = {};
  let xs: XsnapBridge;
  const gcCount = async () => (await xs.evaluate('gc();')).meter.currentHeapCount;
  const react = reactor(lab, events, (e) => {
    if (e.event === 'measure') gcCount().then((n) => (slots.ready = n));
  });
  xs = start({ log: (event, fields) => react({ event, ...fields }), onFatal: (e) => fatal.push(e) });
  try {
    slots.empty = await gcCount();
    await xs.evaluate(STRICT + SDK);
    slots.sdk = await gcCount();
    await xs.load(STRICT + GUEST);
    await xs.evaluate(await scenarioScript());
    slots.loaded = await gcCount();
    await xs.evaluate(
      `globalThis.dev = scenario.run({ sdk: simplevpn, connect: xsnapGuest.connect('127.0.0.1', ${lab.server.port}), clock: xsnapGuest.clock,` +
        ` peer: '${lab.peerAddress}', name: 'xs', report: xsnapGuest.log });`,
    );
    await until('the scenario to end', () => events.some((e) => e.event === 'closed' || e.event === 'failed'), 30_000);
    assert.equal(fatal, []);
    checkScenario(events, lab);
    // The close event of the last socket reaches the guest on the next turn.
    await until('the guest to let go of its socket and timers', () => xs.held().sockets === 0 && xs.held().timers === 0, 2000);
    await xs.evaluate("var p = xsnapGuest.pending(); if (p[0] || p[1]) throw new Error('the guest still holds ' + p);");
    await until('the memory reading', () => slots.ready !== undefined, 2000);
    // Slots are 32 bytes on this 64-bit host, 16 on a 32-bit microcontroller.
    figures('xs', events, {
      slots_sdk: slots.sdk - slots.empty,
      slots_guest_and_scenario: slots.loaded - slots.sdk,
      slots_connection: slots.ready - slots.loaded,
      bytes_sdk_64bit: (slots.sdk - slots.empty) * 32,
      bytes_connection_64bit: (slots.ready - slots.loaded) * 32,
    });
  } finally {
    await xs.close();
    await lab.close();
  }
});

test.run();
