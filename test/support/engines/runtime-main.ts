// The scenario as a program for the engines that run JavaScript files themselves: Bun, Deno
// and Node. It loads the SDK's ESM bundle (dist/sdk/simplevpn-sdk.mjs) and a transport, runs
// scenario.ts, prints each event as a JSON line and exits by itself once the client is closed
// (a socket or timer left open would keep it running: the test counts that as a failure).
//
//   bun  dist/js/test/support/engines/runtime-main.js PORT PEER native|node
//   deno run --allow-net=127.0.0.1 --allow-read=dist --v8-flags=--expose-gc dist/js/... PORT PEER native|node
//   node --expose-gc dist/js/... PORT PEER node
//
// `native` is the engine's own TCP through examples/ports/bun.ts or deno.ts; `node` is the
// project's Node adapter, tcpConnect, unchanged. The heap figures are each engine's own, after
// a forced collection: what loading the SDK and the transport took (heap_load), and what the
// client took from then until it was ready with one connection (heap_connection).
import type { Clock, Connect } from '../../../client-sdk/src/index.js';
import { run } from './scenario.js';

const g = globalThis as any;
const engine: 'bun' | 'deno' | 'node' = g.Bun ? 'bun' : g.Deno ? 'deno' : 'node';
const args: string[] = engine === 'deno' ? g.Deno.args : process.argv.slice(2);
const [port, peer, transport] = [Number(args[0]), args[1], args[2] ?? 'native'];

const print = (event: string, fields: Record<string, unknown>) => console.log(JSON.stringify({ event, ...fields }));

/** The engine's heap in use after a full collection, in bytes, and its own name for it. */
function heap(): Record<string, number> {
  if (engine === 'bun') {
    g.Bun.gc(true);
    // import.meta.require: Bun's synchronous require inside a module (left alone by esbuild).
    const s = ((import.meta as unknown as { require(id: string): unknown }).require('bun:jsc') as { heapStats(): { heapSize: number; objectCount: number } }).heapStats();
    return { heap: s.heapSize, objects: s.objectCount };
  }
  g.gc?.();
  return { heap: engine === 'deno' ? g.Deno.memoryUsage().heapUsed : process.memoryUsage().heapUsed };
}

const before = heap();
const sdk = (await import(new URL('../../../../sdk/simplevpn-sdk.mjs', import.meta.url).href)) as typeof import('../../../client-sdk/src/index.js');
let connect: Connect;
// The TCP adapter's own module: the simplevpn/node entry also brings the WebSocket adapter
// and with it `ws`, which reads environment variables (Deno: --allow-env).
if (transport === 'node') connect = (await import('../../../client-sdk/node/tcp.js')).tcpConnect({ host: '127.0.0.1', port });
else if (engine === 'bun') connect = (await import('../../../examples/ports/bun.js')).bunConnect(g.Bun, '127.0.0.1', port);
else if (engine === 'deno') connect = (await import('../../../examples/ports/deno.js')).denoConnect(g.Deno, '127.0.0.1', port);
else throw new Error('node has no native transport other than tcpConnect: use node');
const loaded = heap();
const clock: Clock = { now: () => performance.now(), setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as number) };

print('engine', { engine, version: engine === 'bun' ? g.Bun.version : engine === 'deno' ? g.Deno.version.deno : process.version, transport });
run({
  sdk,
  connect,
  clock,
  peer,
  name: `${engine}-${transport}`,
  report: print,
  memory() {
    const now = heap();
    const out: Record<string, unknown> = { heap_load: loaded.heap - before.heap, heap_connection: now.heap - loaded.heap };
    if (now.objects !== undefined) {
      out.objects_load = loaded.objects - before.objects;
      out.objects_connection = now.objects - loaded.objects;
    }
    return out;
  },
});
