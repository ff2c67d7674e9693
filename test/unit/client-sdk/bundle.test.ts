// The SDK core must bundle for an engine with no Node: no built-in may be imported anywhere
// in it, and the minified script must stay within the size budget for small devices.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { build } from 'esbuild';
import type { BuildOptions, Plugin } from 'esbuild';
import { builtinModules } from 'node:module';
import { ROOT } from '../../support/paths.js';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const root = ROOT;
const entry = root + 'client-sdk/src/index.ts';
const BUDGET = 4096; // bytes, minified IIFE after gzip -9

const builtins = new Set(builtinModules);

/** Records every import of a Node built-in (node:x, x or x/sub) and keeps it external. */
function builtinSpy(seen: string[]): Plugin {
  return {
    name: 'builtin-spy',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        const p = args.path;
        if (p.startsWith('node:') || builtins.has(p) || builtins.has(p.split('/')[0])) {
          seen.push(`${p} (from ${args.importer || 'entry'})`);
          return { path: p, external: true };
        }
        return undefined;
      });
    },
  };
}

async function bundle(format: 'iife' | 'esm', extra: BuildOptions = {}) {
  const seen: string[] = [];
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'neutral',
    target: 'es2017',
    format,
    globalName: format === 'iife' ? 'simplevpn' : undefined,
    logLevel: 'silent',
    plugins: [builtinSpy(seen)],
    ...extra,
  });
  assert.is(r.errors.length, 0);
  assert.is(r.outputFiles!.length, 1);
  return { code: r.outputFiles![0].contents, text: r.outputFiles![0].text, seen };
}

test('the import spy catches node: imports, bare built-ins and built-in subpaths', async () => {
  const seen: string[] = [];
  await build({
    stdin: { contents: "import 'node:fs'; import 'events'; import 'fs/promises'; import './x.js';", resolveDir: root, loader: 'ts' },
    bundle: true,
    write: false,
    platform: 'neutral',
    logLevel: 'silent',
    plugins: [
      builtinSpy(seen),
      { name: 'stub', setup: (b) => b.onResolve({ filter: /^\.\/x\.js$/ }, () => ({ path: 'x', namespace: 'stub' })) },
      { name: 'stub-load', setup: (b) => b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: '' })) },
    ],
  });
  assert.equal(
    seen.map((s) => s.split(' ')[0]),
    ['node:fs', 'events', 'fs/promises'],
  );
});

test('the SDK core bundled as an IIFE imports no Node built-in', async () => {
  const { seen } = await bundle('iife');
  assert.equal(seen, []);
});

test('the SDK core bundled as ESM imports no Node built-in and exports the public API', async () => {
  const { text, seen } = await bundle('esm');
  assert.equal(seen, []);
  const exported = /export\s*\{([^}]*)\}/.exec(text);
  assert.ok(exported, 'an export clause');
  const names = exported![1].split(',').map((s) => s.trim().split(/\s+as\s+/).pop());
  for (const n of ['Client', 'Framer', 'KEEPALIVE', 'isKeepalive', 'parseIPv4', 'formatIPv4']) assert.ok(names.includes(n), `exports ${n}`);
});

test(`the minified IIFE is under ${BUDGET} bytes gzipped`, async () => {
  // What ships: build.mjs's IIFE, minified by esbuild and then terser.
  const { seen } = await bundle('iife', { minify: true });
  assert.equal(seen, []);
  const code = readFileSync(root + 'dist/sdk/simplevpn-sdk.iife.js');
  const gz = gzipSync(code, { level: 9 }).length;
  console.log(`  simplevpn-sdk.iife.js: ${code.length} bytes minified, ${gz} bytes gzipped (budget ${BUDGET})`);
  assert.ok(gz < BUDGET, `${gz} bytes gzipped is over the ${BUDGET}-byte budget`);
});

test.run();
