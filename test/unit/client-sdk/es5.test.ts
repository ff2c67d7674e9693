// dist/sdk/simplevpn-sdk.es5.js, the SDK core for Espruino-class engines: ES5 syntax only,
// no ES2015 built-in needed to load it and open a session, within its size budget. The
// checker itself is checked against each construct it must catch. The whole session over a
// real server, in the same ES5 context, is test/integration/engines/es5.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';
import { ROOT } from '../../support/paths.js';
import { es5Context, es5Violations, leftIn } from '../../support/es5.js';

const ES5 = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.es5.js', 'utf8');
const ES2017 = readFileSync(ROOT + 'dist/sdk/simplevpn-sdk.iife.js', 'utf8');
const BUDGET = 5120; // bytes, after gzip -9

test('the checker catches every ES2015+ construct, and passes ES5 (getters included)', () => {
  const caught = [
    'let a = 1;',
    'const a = 1;',
    'var f = () => 1;',
    'class A {}',
    'var s = `x`;',
    'for (var x of y);',
    'f(...a);',
    'var [a] = b;',
    'var { a } = b;',
    'function f(a = 1) {}',
    'function f(...a) {}',
    'var o = { a };',
    'var o = { m() {} };',
    'var o = { [k]: 1 };',
    'function* g() {}',
    'async function f() {}',
    'var x = a ?? b;',
    'var x = a?.b;',
    'var x = 2 ** 3;',
    'var r = /x/u;',
    'var n = 0b1;',
    'var n = 1_000;',
    'var b = 1n;',
  ];
  for (const src of caught) assert.ok(es5Violations(src).length > 0, `caught: ${src}`);
  assert.equal(es5Violations('var o = { get a() { return 1; }, set a(v) {}, "b": 2 }; o.default = function () { return this; };'), []);
  assert.ok(es5Violations(ES2017).length > 0, 'the ES2017 bundle is not ES5');
});

test('the ES5 bundle is ES5', () => {
  assert.equal(es5Violations(ES5), []);
});

test(`the ES5 bundle is within ${BUDGET} bytes gzipped`, () => {
  const gz = gzipSync(ES5, { level: 9 }).length;
  console.log(`  simplevpn-sdk.es5.js: ${ES5.length} bytes minified, ${gz} bytes gzipped (budget ${BUDGET})`);
  assert.ok(gz <= BUDGET, `${gz} bytes gzipped is over the ${BUDGET}-byte budget`);
});

test('the ES5 context has none of the ES2015 built-ins, and a script that needs one fails there', () => {
  const ctx = es5Context();
  assert.equal(leftIn(ctx), []);
  assert.throws(() => vm.runInContext('new Map()', ctx), /Map is not defined/);
  assert.throws(() => vm.runInContext('Object.assign({}, {})', ctx), /not a function/);
});

test('in the ES5 context the bundle loads, and a client connects and writes its address request', () => {
  const ctx = es5Context();
  vm.runInContext(ES5, ctx, { filename: 'simplevpn-sdk.es5.js' });
  const r = vm.runInContext(
    `var writes = [], timers = 0, h;
     var client = new simplevpn.Client({
       connect: function (handlers) { h = handlers; return { write: function (d) { writes.push(d.length); return d.length; }, close: function () {} }; },
       clock: { now: function () { return 0; }, setTimeout: function () { return ++timers; }, clearTimeout: function () {} },
       tun: { write: function () {} },
       name: 'es5'
     });
     client.start();
     h.onOpen();
     client.close();
     JSON.stringify({ writes: writes, state: client.info.state, connects: client.stats.connects });`,
    ctx,
  );
  assert.equal(JSON.parse(r), { writes: [24 + 2 + 3], state: 'closed', connects: 1 });
});

test.run();
