#!/usr/bin/env node
// Builds everything the programs and tests run from, into dist/:
//   dist/js/     every TypeScript file transpiled one to one (tests, server, adapters)
//   dist/sdk/    the SDK core for firmware tooling: ESM, CommonJS, a minified IIFE and an ES5 script
//   dist/lib/    the package's Node entries (simplevpn/node, simplevpn/server), ESM and CommonJS
//   dist/types/  .d.ts for the SDK, its Node adapters and the server API; dist/types-cjs/ the
//                same declarations for `require` (see step 6)
//   dist/bin/    the CLIs, bundled
//   dist/examples/  the embedded device example and the engine-side halves of the QuickJS and
//                xsnap bridges, bundled for an embedded engine
// and prints the size of every bundle, raw and gzipped.
import { build, transform } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, readFileSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = new URL('.', import.meta.url).pathname;
const quiet = process.argv.includes('--quiet');
const log = (...a) => quiet || console.log(...a);
const SOURCE_DIRS = ['protocol', 'common', 'client-sdk', 'server', 'linux', 'examples', 'test', 'bench', 'fuzz'];

function tsFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'build') out.push(...tsFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function size(file) {
  const buf = readFileSync(join(root, file));
  return { file, raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
}

// dist/ is overwritten in place, not wiped first, so a build never pulls files from under a
// program or test that is running from it. test/run.mjs runs only the tests whose source
// exists, so output left from a deleted file is never run.

// 1. One-to-one transpile for tests and the Node-side modules.
await build({
  entryPoints: SOURCE_DIRS.flatMap(tsFiles),
  outdir: join(root, 'dist/js'),
  outbase: root,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning',
});

// 2. The SDK core. Neutral platform: a Node built-in anywhere in it fails the build.
const embedded = { bundle: true, platform: 'neutral', target: 'es2017', minify: true, logLevel: 'warning' };
// esbuild's IIFE is `var NAME = (() => {...})()`, and a top-level var is a global only in a
// classic script: evaluated as a module (Moddable's manifests) or as strict eval (xsnap) it
// stays local. So each IIFE also puts its global on the global object itself, found without
// globalThis (ES2020) where an engine has none.
const GLOBAL_OBJECT = "typeof globalThis<'u'?globalThis:typeof self<'u'?self:this";
const iife = (globalName) => ({ format: 'iife', globalName, footer: { js: `(${GLOBAL_OBJECT}).${globalName}=${globalName};` } });
const sdkEntry = [join(root, 'client-sdk/src/index.ts')];
const sdkEsm = await build({ ...embedded, entryPoints: sdkEntry, format: 'esm', metafile: true, outfile: join(root, 'dist/sdk/simplevpn-sdk.mjs') });
await build({ ...embedded, entryPoints: sdkEntry, format: 'cjs', outfile: join(root, 'dist/sdk/simplevpn-sdk.cjs') });
await build({ ...embedded, entryPoints: sdkEntry, ...iife('simplevpn'), outfile: join(root, 'dist/sdk/simplevpn-sdk.iife.js') });
await shrink('dist/sdk/simplevpn-sdk.iife.js', 2017);
await buildEs5('./client-sdk/src/index.ts', 'simplevpn', Object.values(sdkEsm.metafile.outputs)[0].exports, 'dist/sdk/simplevpn-sdk.es5.js');
// The SDK's WebSocket transport (client-sdk/src/websocket.ts, the package's simplevpn/websocket)
// in bundles of its own, beside the core: the core's IIFE is held to 4 KiB gzipped for
// devices, which reach the server over TCP and need none of it. The IIFE defines the global
// simplevpnWebSocket.
const wsEntry = [join(root, 'client-sdk/src/websocket.ts')];
await build({ ...embedded, entryPoints: wsEntry, format: 'esm', outfile: join(root, 'dist/sdk/simplevpn-websocket.mjs') });
await build({ ...embedded, entryPoints: wsEntry, format: 'cjs', outfile: join(root, 'dist/sdk/simplevpn-websocket.cjs') });
await build({ ...embedded, entryPoints: wsEntry, ...iife('simplevpnWebSocket'), outfile: join(root, 'dist/sdk/simplevpn-websocket.iife.js') });
await shrink('dist/sdk/simplevpn-websocket.iife.js', 2017);
// Challenge-response for devices (client-sdk/src/hmac.ts, simplevpn/hmac): pure-JS SHA-256 and
// HMAC and a prover from a device key, apart from the core too. The IIFE defines simplevpnHmac.
const hmacEntry = [join(root, 'client-sdk/src/hmac.ts')];
await build({ ...embedded, entryPoints: hmacEntry, format: 'esm', outfile: join(root, 'dist/sdk/simplevpn-hmac.mjs') });
await build({ ...embedded, entryPoints: hmacEntry, format: 'cjs', outfile: join(root, 'dist/sdk/simplevpn-hmac.cjs') });
await build({ ...embedded, entryPoints: hmacEntry, ...iife('simplevpnHmac'), outfile: join(root, 'dist/sdk/simplevpn-hmac.iife.js') });
await shrink('dist/sdk/simplevpn-hmac.iife.js', 2017);

/**
 * The scripts that go onto devices get a second minifier pass: terser's compressor (three
 * passes) and mangler find about 6 % more than esbuild's single pass, which is what the core's
 * budget of 4 KiB gzipped needs to leave room for features. Only safe transforms: `ecma` is
 * the bundle's own target, so nothing newer than the engine parses is introduced.
 */
async function shrink(file, ecma) {
  const { minify } = await import('terser');
  const path = join(root, file);
  const out = await minify(readFileSync(path, 'utf8'), { ecma, compress: { passes: 3 }, mangle: true, format: { comments: false } });
  writeFileSync(path, out.code);
}

/**
 * The SDK core in ES5, for engines that interpret a subset of ES2015 (Espruino-class: let and
 * const behave like var; no default parameters, destructuring, for-of or method shorthand).
 * esbuild bundles an entry that copies the exports into a plain object (its own export
 * helpers define getters in a for-of loop over `let`, which such an engine binds to the last
 * export), Babel lowers every ES2015+ construct without pulling in a polyfill (the SDK needs
 * no Map, Set, Promise, Symbol, Reflect, BigInt or DataView), and esbuild minifies the result
 * for ES5. The global is set on the global object found at the top level, `this` last.
 * `names` are the exports of `from` that the global carries.
 */
async function buildEs5(from, globalName, names, outfile) {
  const entry = `import { ${names.join(', ')} } from '${from}';\n__global.${globalName} = { ${names.map((n) => `${n}: ${n}`).join(', ')} };\n`;
  const bundled = await build({ ...embedded, minify: false, target: 'esnext', format: 'esm', write: false, stdin: { contents: entry, resolveDir: root, loader: 'ts', sourcefile: 'es5-entry.ts' } });
  const { transformAsync } = await import('@babel/core');
  const lowered = await transformAsync(bundled.outputFiles[0].text, {
    babelrc: false,
    configFile: false,
    sourceType: 'script',
    comments: false,
    // What the SDK's code allows: arrays are the only iterables, no class is called without new,
    // no getter has side effects. Each saves a helper.
    assumptions: { iterableIsArray: true, setPublicClassFields: true, noClassCalls: true, setClassMethods: true, ignoreFunctionLength: true, pureGetters: true, setSpreadProperties: true, skipForOfIteratorClosing: true },
    presets: [['@babel/preset-env', { targets: { ie: '11' }, forceAllTransforms: true, modules: false, loose: true, useBuiltIns: false, exclude: ['transform-typeof-symbol'] }]],
  });
  const wrapped = `(function (__global) {\n${lowered.code}\n})(${GLOBAL_OBJECT});\n`;
  const min = await transform(wrapped, { minify: true, target: 'es5', logLevel: 'warning' });
  writeFileSync(join(root, outfile), min.code);
  await shrink(outfile, 5);
}

// 3. The CLIs, self-contained apart from the native addon they load at run time, and the
// embedded examples, one file each for an embedded engine.
// The server runs with a 1 MiB young generation: a burst of connections otherwise grows it
// to 16 MiB per semi-space and the RSS stays up long after, about 3 KiB per client at
// 10,000 clients (docs/performance.md); the data path allocates per chunk, not per packet,
// so the smaller young generation costs it nothing measurable. Programs that start the CLI
// with `node` read these flags from its first line (test/support/lab.ts nodeFlags()).
const SERVER_NODE_FLAGS = '--max-semi-space-size=1';
const clis = [
  ['server/src/cli.ts', 'dist/bin/simplevpn-server.js', `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS}`],
  ['linux/client/main.ts', 'dist/bin/simplevpn-client.js', '#!/usr/bin/env node'],
];
// etcd3 stays a package of its own: it reads its .proto files from beside itself at run time,
// and the server loads it (and gRPC with it) only when started with --etcd.
const cliOptions = { bundle: true, platform: 'node', target: 'node20', format: 'esm', logLevel: 'warning', external: ['etcd3'] };
const examples = [
  ['examples/device/main.ts', 'dist/examples/device.iife.js', 'device'],
  ['examples/quickjs/guest.ts', 'dist/examples/quickjs-guest.iife.js', 'guest'],
  ['examples/ports/xsnap-guest.ts', 'dist/examples/xsnap-guest.iife.js', 'xsnapGuest'],
  // The browser example's page script (examples/browser/): the SDK comes from its own bundles.
  ['examples/browser/page.ts', 'dist/examples/browser-page.iife.js', 'browserPage'],
];
// The CLIs are ES modules, and CommonJS bundled into them (ws) calls require() for Node's
// built-ins, which an ES module has not: the banner gives them one. ws finds its masking
// (common/ws-mask.ts) where it looks for the optional addon bufferutil: that module loads the
// real addon from node_modules at run time (its native binary cannot be bundled) and masks
// in JavaScript four bytes at a time when the addon is not there.
const cjsRequire = "import { createRequire as __simplevpnCreateRequire } from 'node:module';\nconst require = __simplevpnCreateRequire(import.meta.url);";
const wsMask = { bufferutil: join(root, 'common/ws-mask.ts') };
for (const [src, out, shebang] of clis) {
  await build({ ...cliOptions, alias: wsMask, banner: { js: `${shebang}\n${cjsRequire}` }, entryPoints: [join(root, src)], outfile: join(root, out) });
  chmodSync(join(root, out), 0o755);
}
for (const [src, out, globalName] of examples) {
  await build({ ...embedded, ...iife(globalName), entryPoints: [join(root, src)], outfile: join(root, out) });
}
// The device example lowered as the SDK's ES5 bundle is, for Espruino-class engines (run in
// an ES5 context by test/integration/engines/device.test.ts).
await buildEs5('./examples/device/main.ts', 'device', ['start'], 'dist/examples/device.es5.js');

// 4. The Node entries of the package, one file each per module system, so that `import` and
// `require` both work on every Node the package supports (require() of ES modules is not in
// all of Node 20). dist/js/ is not published: it holds the tests too, with inline maps.
// The TUN wrapper finds its addon from import.meta.url, which CommonJS does not have: there
// the bundle's own file URL stands in for it.
const nodeEntries = [
  ['client-sdk/node/index.ts', 'dist/lib/node'],
  ['server/src/index.ts', 'dist/lib/server'],
];
const libOptions = { bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning' };
for (const [src, out] of nodeEntries) {
  await build({ ...libOptions, format: 'esm', entryPoints: [join(root, src)], outfile: join(root, `${out}.mjs`) });
  await build({
    ...libOptions,
    format: 'cjs',
    entryPoints: [join(root, src)],
    outfile: join(root, `${out}.cjs`),
    define: { 'import.meta.url': '__simplevpn_module_url' },
    // The banner goes before esbuild's own "use strict", which would then no longer apply.
    banner: { js: "'use strict';\nconst __simplevpn_module_url = require('node:url').pathToFileURL(__filename).href;" },
  });
}

// 5. Declarations, written afresh: they are published, and a .d.ts left from a moved or
// deleted source would be published with them.
rmSync(join(root, 'dist/types'), { recursive: true, force: true });
rmSync(join(root, 'dist/types-cjs'), { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.types.json')], {
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('build.mjs: declaration build failed');
  process.exit(1);
}

// 6. The declarations again, for the `require` condition. A .d.ts takes its module format from
// the nearest package.json, and the package's own says "type": "module": under NodeNext,
// TypeScript would type a require() of those as loading an ES module. The same files under a
// package.json of "type": "commonjs" describe the CommonJS bundles (their imports are relative,
// so they stay inside it).
cpSync(join(root, 'dist/types'), join(root, 'dist/types-cjs'), { recursive: true });
writeFileSync(join(root, 'dist/types-cjs/package.json'), '{ "type": "commonjs" }\n');
// The bench's C load generator (bench/fixtures/connect-burst.c) beside the compiled fixtures:
// the bench builds it from there with the machine's compiler when it runs.
cpSync(join(root, 'bench/fixtures/connect-burst.c'), join(root, 'dist/js/bench/fixtures/connect-burst.c'));

const bundles = [
  'dist/sdk/simplevpn-sdk.mjs',
  'dist/sdk/simplevpn-sdk.cjs',
  'dist/sdk/simplevpn-sdk.iife.js',
  'dist/sdk/simplevpn-sdk.es5.js',
  'dist/sdk/simplevpn-websocket.mjs',
  'dist/sdk/simplevpn-websocket.cjs',
  'dist/sdk/simplevpn-websocket.iife.js',
  'dist/sdk/simplevpn-hmac.mjs',
  'dist/sdk/simplevpn-hmac.cjs',
  'dist/sdk/simplevpn-hmac.iife.js',
  ...nodeEntries.flatMap((e) => [`${e[1]}.mjs`, `${e[1]}.cjs`]),
  ...examples.map((e) => e[1]),
  'dist/examples/device.es5.js',
  ...clis.map((c) => c[1]),
].filter((f) => {
  try {
    return statSync(join(root, f)).isFile();
  } catch {
    return false;
  }
});
log('bundle'.padEnd(36) + 'raw'.padStart(10) + 'gzip'.padStart(10));
for (const b of bundles.map(size)) log(relative('.', b.file).padEnd(36) + String(b.raw).padStart(10) + String(b.gzip).padStart(10));
