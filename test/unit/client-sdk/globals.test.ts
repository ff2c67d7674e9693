// Every script bundle (dist/sdk/*.iife.js and *.es5.js, dist/examples/*.iife.js and *.es5.js) defines its
// global however an engine evaluates it: as a classic script, as strict eval (xsnap; the
// bundles begin "use strict", so even a plain eval is strict) and as a module (Moddable's
// manifests). In the last two a top-level var stays local, so the global must be set on the
// global object explicitly (build.mjs). The SDK's global must hold each export of the ES
// module, each its own value: an engine where let behaves like var (Espruino) would bind
// every getter of esbuild's export helper to the last export.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import vm from 'node:vm';
import { ROOT } from '../../support/paths.js';

type Global = Record<string, unknown>;

/** What each bundle's global must hold; bundles not listed must hold something. */
const EXPECTED: Record<string, [string, string[]]> = {
  'dist/examples/device.iife.js': ['device', ['start']],
  'dist/examples/device.es5.js': ['device', ['start']],
  'dist/examples/quickjs-guest.iife.js': ['guest', ['platform', 'event', 'pending']],
  'dist/examples/xsnap-guest.iife.js': ['xsnapGuest', ['connect', 'clock', 'log', 'handleCommand', 'pending']],
};

// Scripts that run a web page when loaded (they need its DOM and URL): not libraries that
// define a global. test/integration/browser/ runs them in Chromium.
const PAGE_SCRIPTS = new Set(['browser-page.iife.js']);

const sdkFiles = ['dist/sdk/simplevpn-sdk.iife.js', 'dist/sdk/simplevpn-sdk.es5.js'];
const bundles = [
  ...readdirSync(ROOT + 'dist/sdk')
    .filter((f) => f.endsWith('.iife.js') || f.endsWith('.es5.js'))
    .map((f) => 'dist/sdk/' + f),
  ...readdirSync(ROOT + 'dist/examples')
    .filter((f) => (f.endsWith('.iife.js') || f.endsWith('.es5.js')) && !PAGE_SCRIPTS.has(f))
    .map((f) => 'dist/examples/' + f),
];

/** The global a bundle defines: listed, the SDK's, or esbuild's `var NAME=` at its start. */
function globalName(file: string, code: string): string {
  if (EXPECTED[file]) return EXPECTED[file][0];
  if (file.startsWith('dist/sdk/simplevpn-sdk.')) return 'simplevpn';
  const m = /^(?:"use strict";\s*)?var (\w+)\s*=/.exec(code);
  assert.ok(m, `${file}: which global does it define?`);
  return m![1];
}

const esm = (await import(ROOT + 'dist/sdk/simplevpn-sdk.mjs')) as Global;

/** Checks what `g` (the bundle's global) holds. */
function check(file: string, g: unknown, how: string): void {
  assert.type(g, 'object', `${file} as ${how}: its global`);
  const o = g as Global;
  if (sdkFiles.includes(file)) {
    assert.equal(Object.keys(o).sort(), Object.keys(esm).sort(), `${file} as ${how}: the ES module's exports`);
    for (const k of Object.keys(esm)) assert.is(typeof o[k], typeof esm[k], `${file} as ${how}: ${k} is a ${typeof esm[k]}`);
    const values = Object.values(o);
    assert.is(new Set(values).size, values.length, `${file} as ${how}: each export is its own value`);
    const f = o as { parseIPv4(s: string): number; formatIPv4(n: number): string };
    assert.is(f.parseIPv4('10.1.2.3'), 0x0a010203, `${file} as ${how}: parseIPv4 is parseIPv4`);
    assert.is(f.formatIPv4(0x0a010203), '10.1.2.3', `${file} as ${how}: formatIPv4 is formatIPv4`);
  } else {
    const want = EXPECTED[file]?.[1] ?? [];
    for (const k of want) assert.ok(o[k] !== undefined, `${file} as ${how}: ${k}`);
    assert.ok(Object.keys(o).length > 0, `${file} as ${how}: an empty global`);
    const values = Object.values(o);
    assert.is(new Set(values).size, values.length, `${file} as ${how}: each export is its own value`);
  }
}

test('the bundles are all accounted for', () => {
  for (const f of [...sdkFiles, ...Object.keys(EXPECTED)]) assert.ok(bundles.includes(f), `${f} was built`);
});

test('strict eval keeps a top-level var local (what makes the explicit global necessary)', () => {
  const ctx = vm.createContext({ src: "'use strict'; var probe = 1;" });
  vm.runInContext('(0, eval)(src)', ctx);
  assert.is(vm.runInContext('typeof probe', ctx), 'undefined');
});

for (const file of bundles) {
  const code = readFileSync(ROOT + file, 'utf8');
  const name = globalName(file, code);

  test(`${file} defines ${name} as a classic script`, () => {
    const ctx = vm.createContext({});
    vm.runInContext(code, ctx, { filename: file });
    check(file, ctx[name], 'a classic script');
  });

  test(`${file} defines ${name} as strict eval`, () => {
    const ctx = vm.createContext({ src: "'use strict';\n" + code });
    vm.runInContext('(0, eval)(src)', ctx);
    check(file, ctx[name], 'strict eval');
  });

  test(`${file} defines ${name} as a module`, async () => {
    const g = globalThis as Global;
    assert.is(g[name], undefined, 'not defined before');
    try {
      await import('data:text/javascript;base64,' + Buffer.from(code).toString('base64'));
      check(file, g[name], 'a module');
    } finally {
      delete g[name];
    }
  });
}

test.run();
