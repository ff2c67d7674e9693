// The SDK on Bun (node_modules/.bin/bun): its ESM bundle with Bun's own TCP through
// examples/ports/bun.ts, and with the project's Node adapter (tcpConnect) unchanged. Against a
// real server on loopback: an address, packets echoed by another client through the server,
// keepalives, a reconnect to the same address after the server breaks the connection, and a
// clean exit (test/support/engines/).
import { test } from 'uvu';
import { ROOT } from '../../support/paths.js';
import { programScenario } from '../../support/engines/lab.js';

const BUN = ROOT + 'node_modules/.bin/bun';

test("Bun, its own TCP (bunConnect): address, echo through the server, keepalive, reconnect to the same address", async () => {
  await programScenario('bun', BUN, [], 'native');
});

test("Bun, the project's Node tcpConnect unchanged: the same", async () => {
  await programScenario('bun', BUN, [], 'node');
});

test.run();
