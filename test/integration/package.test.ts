// The package as a new user meets it: `npm pack`, the tarball's file list, an install into an
// empty project with no registry (npm's cache only), then `import` and `require` of every
// entry, the types of every entry under each moduleResolution a consumer may use, and both
// CLIs. dist/ must be built first (test/run.mjs does that before any test file).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// TypeScript 7 (the native port: bin/tsc is a Node shim that runs a Go binary) no longer has
// moduleResolution node10, which TypeScript 5 projects still default to; typescript-5 is the
// devDependency that checks it.
const TSC = join(root, 'node_modules/typescript/bin/tsc');
const TSC5 = join(root, 'node_modules/typescript-5/bin/tsc');
const ENTRIES = ['simplevpn', 'simplevpn/node', 'simplevpn/server', 'simplevpn/websocket', 'simplevpn/hmac'];

const tmp = mkdtempSync(join(tmpdir(), 'simplevpn-package-'));
const consumer = join(tmp, 'consumer');
const installed = join(consumer, 'node_modules/simplevpn');
let tarball = '';
let files: string[] = [];

// npm run from `npm test` would inherit that run's package and prefix settings; keep only
// what says where the cache and the configuration are.
const KEEP = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry', 'npm_config_nodedir']);
const env: NodeJS.ProcessEnv = { NO_COLOR: '1', npm_config_update_notifier: 'false' };
for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || KEEP.has(k.toLowerCase())) env[k] = v;
env.PATH = `${dirname(process.execPath)}:${env.PATH ?? ''}`; // the bins' `env node` is this node

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

// Each command in a process group of its own, killed whole at the time limit: npm and the tsc
// shim start children (node-gyp, make, the compiler) that a kill of the parent alone leaves.
// So are those still running when test/run.mjs ends this file at its own limit.
const groups = new Set<number>();
const killGroup = (pid: number) => {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {}
};
process.once('SIGTERM', () => {
  groups.forEach(killGroup);
  rmSync(tmp, { recursive: true, force: true });
  process.exit(1);
});

function run(cmd: string, args: string[], cwd: string, limitMs: number): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) groups.add(child.pid);
    let stdout = '';
    let stderr = '';
    let settled = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const done = (status: number | null, why = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      groups.delete(child.pid!);
      resolve({ status, stdout, stderr: why ? `${stderr}\n[${[cmd, ...args].join(' ')}: ${why}]` : stderr });
    };
    const timer = setTimeout(() => {
      killGroup(child.pid!);
      done(null, `killed after ${limitMs / 1000} s`);
    }, limitMs);
    child.on('error', (e) => done(null, e.message));
    child.on('close', (code, signal) => done(code, signal ? `ended by ${signal}` : ''));
  });
}

async function ok(cmd: string, args: string[], cwd: string, limitMs: number): Promise<Result> {
  const r = await run(cmd, args, cwd, limitMs);
  if (r.status !== 0) assert.unreachable(`${[cmd, ...args].join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function needInstall() {
  if (!existsSync(installed)) assert.unreachable('the package was not installed (see the failure above)');
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('npm pack: what a user runs and reads, without tests, benchmarks or build output', async () => {
  // dist/ is already built, so the `prepare` script (build.mjs) would only build it again.
  const r = await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root, 120_000);
  const [info] = JSON.parse(r.stdout);
  tarball = join(tmp, info.filename);
  files = info.files.map((f: { path: string }) => f.path);
  const has = (p: string) => files.includes(p);
  const under = (dir: string) => files.filter((f) => f.startsWith(dir));

  for (const dir of ['dist/js/test/', 'dist/js/bench/', 'dist/js/', 'test/', 'bench/', 'linux/native/build/', 'node_modules/']) {
    const found = under(dir);
    assert.ok(found.length === 0, `${dir} must not be in the package; it has ${found.length} files: ${found.slice(0, 3).join(', ')}, ...`);
  }
  for (const f of ['LICENSE', 'README.md', 'PROTOCOL.md', 'SECURITY.md', 'package.json', 'linux/native/install.mjs', 'linux/native/binding.gyp', 'linux/native/tun.c', 'linux/native/splice.c', 'linux/native/hub.c', 'linux/native/hub_tun.c', 'linux/native/hub.h', 'linux/native/frames.c', 'linux/native/frames.h', 'linux/native/gro.c', 'linux/native/gro.h', 'linux/native/out_queue.c', 'linux/native/out_queue.h', 'linux/native/tun_dev.h'])
    assert.ok(has(f), `${f} is missing from the package`);
  assert.ok(under('docs/').length > 0, 'docs/ is missing from the package');
  assert.ok(under('dist/sdk/').length >= 3, 'dist/sdk/ is missing from the package');

  // Every path package.json points at: bins, main, types, typesVersions, exports.
  const targets: string[] = [];
  const collect = (v: unknown): void => {
    if (typeof v === 'string') targets.push(v.replace(/^\.\//, ''));
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect([pkg.bin, pkg.main, pkg.types, pkg.typesVersions, pkg.exports]);
  for (const t of targets) assert.ok(has(t), `package.json names ${t}, which is not in the package`);
  assert.ok(targets.some((t) => t.endsWith('.d.ts')), 'package.json names no types');
  assert.equal(Object.keys(pkg.exports).sort(), ['.', './hmac', './node', './package.json', './server', './websocket'], 'an entry was added: check it below too');
});

test('installs into an empty project from the npm cache alone, the native binding built or skipped', async () => {
  assert.ok(tarball, 'no tarball (see the failure above)');
  // npm 11 resolves a range (mri@^1.2.0) from the full packument, which `npm ci` from a
  // lockfile never fetches, so the cache holds the dependencies' tarballs but not that; npm
  // is handed mri and ws as tarballs, packed from the copies the repository installed.
  const packed: string[] = [];
  for (const dep of ['mri', 'ws']) {
    const r = await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp, join(root, 'node_modules', dep)], root, 60_000);
    packed.push(join(tmp, JSON.parse(r.stdout)[0].filename));
  }
  mkdirSync(consumer);
  // allowScripts: npm 11 asks a project to approve a dependency's install script (a package
  // from a file is named by its file: URL); this one builds the native binding.
  const manifest = { name: 'consumer', version: '1.0.0', private: true, allowScripts: { [`file:${tarball}`]: true } };
  writeFileSync(join(consumer, 'package.json'), JSON.stringify(manifest, null, 2));
  const r = await ok('npm', ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball, ...packed], consumer, 240_000);
  assert.ok(existsSync(join(installed, 'package.json')), r.stdout + r.stderr);
  const addon = join(installed, 'linux/native/build/Release/simplevpn_tun.node');
  assert.ok(existsSync(addon) || /simplevpn: WARNING: the native TUN binding/.test(r.stderr), `neither built nor skipped with a warning:\n${r.stdout}\n${r.stderr}`);
});

test('import and require of every entry give the same exports, and warn about nothing', async () => {
  needInstall();
  const list = JSON.stringify(ENTRIES);
  const esm = await ok(process.execPath, ['--input-type=module', '-e', `const o = {}; for (const e of ${list}) o[e] = Object.keys(await import(e)).sort(); console.log(JSON.stringify(o));`], consumer, 30_000);
  const cjs = await ok(process.execPath, ['-e', `const o = {}; for (const e of ${list}) o[e] = Object.keys(require(e)).sort(); console.log(JSON.stringify(o));`], consumer, 30_000);
  assert.is(esm.stderr, '');
  assert.is(cjs.stderr, '');
  const fromImport = JSON.parse(esm.stdout);
  assert.equal(JSON.parse(cjs.stdout), fromImport);
  for (const [entry, name] of [
    ['simplevpn', 'Client'],
    ['simplevpn/node', 'tcpConnect'],
    ['simplevpn/server', 'createServer'],
    ['simplevpn/websocket', 'webSocketConnect'],
    ['simplevpn/hmac', 'keyCredentials'],
  ])
    assert.ok(fromImport[entry].includes(name), `${entry} does not export ${name}: ${fromImport[entry]}`);

  // Code that runs, through each module system's copy.
  const use = `const { parseIPv4 } = S; const { parseCidr } = V; const { nodeClock } = N;
    if (parseIPv4('10.0.0.1') !== 0x0a000001 || parseCidr('10.8.0.0/24').prefix !== 24 || typeof nodeClock.now() !== 'number') throw new Error('wrong results');`;
  await ok(process.execPath, ['--input-type=module', '-e', `import * as S from 'simplevpn'; import * as V from 'simplevpn/server'; import * as N from 'simplevpn/node'; ${use}`], consumer, 30_000);
  await ok(process.execPath, ['-e', `const S = require('simplevpn'), V = require('simplevpn/server'), N = require('simplevpn/node'); ${use}`], consumer, 30_000);
});

// One consumer file, compiled as ESM, as CommonJS, for a bundler and under node10. Its
// expected error fails the compile if an import's types were missing (any).
const CONSUMER_TS = `import { Client, parseIPv4, type StateInfo } from 'simplevpn';
import { nodeClock, tcpConnect, type TcpOptions } from 'simplevpn/node';
import { createServer, ConfigError, type CreateServerOptions } from 'simplevpn/server';
import { webSocketConnect, type WebSocketOptions } from 'simplevpn/websocket';
import { keyCredentials } from 'simplevpn/hmac';

const tcp: TcpOptions = { host: 'vpn.example.net', port: 2002 };
const options: CreateServerOptions = { port: 0, tun: false };
export const client = new Client({ connect: tcpConnect(tcp), clock: nodeClock, tun: { write: () => {} }, onState: (s: StateInfo) => void s.state });
export const server = createServer(options);
export const address: number = parseIPv4('10.0.0.1');
export const isConfigError = (e: unknown): boolean => e instanceof ConfigError;
const ws: WebSocketOptions = { sendBuffer: 65536 };
export const overWebSocket = new Client({ connect: webSocketConnect('wss://vpn.example.net:2003/', ws), tun: { write: () => {} } });
export const withKey = new Client({ connect: tcpConnect(tcp), tun: { write: () => {} }, credentials: keyCredentials('sensor-1', new Uint8Array(32)) });
// @ts-expect-error: a host is a string
export const wrong: TcpOptions = { host: 1 };
`;

async function typecheck(tsc: string, name: string, compilerOptions: object, sources: string[]): Promise<string[]> {
  for (const s of sources) writeFileSync(join(consumer, s), CONSUMER_TS);
  const config = {
    compilerOptions: {
      target: 'ES2022',
      strict: true,
      noEmit: true,
      skipLibCheck: false, // the package's declarations are what is under test
      types: ['node'],
      typeRoots: [join(root, 'node_modules/@types')],
      ...compilerOptions,
    },
    files: sources,
  };
  const file = join(consumer, `tsconfig.${name}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const r = await run(process.execPath, [tsc, '-p', file, '--listFiles'], consumer, 120_000);
  if (r.status !== 0) assert.unreachable(`tsc (${name}) failed:\n${r.stdout}\n${r.stderr}`);
  const read = r.stdout.split('\n').filter((l) => l.includes('/node_modules/simplevpn/'));
  for (const f of read) assert.ok(f.startsWith(installed + '/dist/'), `${name}: types read from outside the installed package: ${f}`);
  return read.map((f) => f.slice(installed.length + 1));
}

const ESM_TYPES = 'dist/types/server/src/index.d.ts';
const CJS_TYPES = 'dist/types-cjs/server/src/index.d.ts';

test('types under NodeNext: ES module (.mts) and CommonJS (.cts), each its own declarations', async () => {
  needInstall();
  const read = await typecheck(TSC, 'nodenext', { module: 'NodeNext', moduleResolution: 'NodeNext' }, ['esm.mts', 'cjs.cts']);
  assert.ok(read.includes(ESM_TYPES) && read.includes(CJS_TYPES), read.join('\n'));
});

test('types under Bundler resolution', async () => {
  needInstall();
  const read = await typecheck(TSC, 'bundler', { module: 'ESNext', moduleResolution: 'Bundler' }, ['bundler.ts']);
  assert.ok(read.includes(ESM_TYPES) && !read.some((f) => f.startsWith('dist/types-cjs/')), read.join('\n'));
});

test('types under node10 (TypeScript 5, as tsc --init sets it up for CommonJS)', async () => {
  needInstall();
  assert.match(JSON.parse(readFileSync(join(root, 'node_modules/typescript-5/package.json'), 'utf8')).version, /^5\./);
  const read = await typecheck(TSC5, 'node10', { module: 'CommonJS', moduleResolution: 'node10', esModuleInterop: true }, ['node10.ts']);
  assert.ok(read.includes(CJS_TYPES), read.join('\n'));
});

test('both bins: --help and --version, from node_modules/.bin', async () => {
  needInstall();
  for (const bin of ['simplevpn-server', 'simplevpn-client']) {
    const path = join(consumer, 'node_modules/.bin', bin);
    const help = await ok(path, ['--help'], consumer, 30_000);
    assert.match(help.stdout, bin);
    const version = await ok(path, ['--version'], consumer, 30_000);
    assert.is(version.stdout.trim(), pkg.version, `${bin} --version`);
  }
  // The documents the help points to are in the package.
  const help = (await ok(join(consumer, 'node_modules/.bin/simplevpn-server'), ['--help'], consumer, 30_000)).stdout;
  for (const doc of help.match(/\b[A-Z]+\.md\b/g) ?? []) assert.ok(existsSync(join(installed, doc)), `--help names ${doc}, which is not installed`);
});

test.run();
