// The SDK on Deno (node_modules/.bin/deno): its ESM bundle with Deno's own TCP through
// examples/ports/deno.ts, and with the project's Node adapter (tcpConnect, over Deno's
// node:net) unchanged. The same scenario and checks as every engine (test/support/engines/).
import { test } from 'uvu';
import { ROOT } from '../../support/paths.js';
import { programScenario } from '../../support/engines/lab.js';

const DENO = ROOT + 'node_modules/.bin/deno';
// Loopback and dist/ only (the SDK bundle and adapters are imported once the heap has been
// read); --expose-gc for a heap figure after a full collection.
const ARGS = ['run', '--allow-net=127.0.0.1', `--allow-read=${ROOT}dist`, '--no-prompt', '--v8-flags=--expose-gc'];

test("Deno, its own TCP (denoConnect): address, echo through the server, keepalive, reconnect to the same address", async () => {
  await programScenario('deno', DENO, ARGS, 'native');
});

test("Deno, the project's Node tcpConnect unchanged: the same", async () => {
  await programScenario('deno', DENO, ARGS, 'node');
});

test.run();
