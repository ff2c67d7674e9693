// The same scenario on Node, with tcpConnect, for the figures beside the other engines' (the
// SDK's Node tests are elsewhere: test/unit/client-sdk, test/integration/server).
import { test } from 'uvu';
import { programScenario } from '../../support/engines/lab.js';

test('Node, tcpConnect: address, echo through the server, keepalive, reconnect to the same address', async () => {
  await programScenario('node', process.execPath, ['--expose-gc'], 'node');
});

test.run();
