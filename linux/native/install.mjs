#!/usr/bin/env node
// npm's install script: builds the native TUN binding (linux/native/build/Release/
// simplevpn_tun.node) with node-gyp. The binding is optional at run time, so a failed build
// warns, says why and what still works, and exits 0: an install must never fail for it.
//
//   node linux/native/install.mjs          build unless the .node is newer than its sources
//   SIMPLEVPN_REBUILD=1 node linux/native/install.mjs     build regardless
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build/Release/simplevpn_tun.node');
const sources = ['tun.c', 'binding.gyp'].map((f) => join(here, f));
const env = process.env;

const info = (msg) => console.log(`simplevpn: ${msg}`);
function skip(cause) {
  console.error(
    [
      `simplevpn: WARNING: the native TUN binding (linux/native) was not built: ${cause}.`,
      'simplevpn: Everything else works: the server still switches traffic between clients. Only the',
      "simplevpn: server's own TUN interface and the Linux client need the binding.",
      process.platform === 'linux'
        ? 'simplevpn: To build it, install python3, make and a C compiler (e.g. apt-get install python3 make gcc),\n' +
          'simplevpn: then run `npm rebuild simplevpn` (or `node linux/native/install.mjs` in a checkout).'
        : 'simplevpn: TUN devices are only supported on Linux.',
    ].join('\n'),
  );
  process.exit(0);
}

function onPath(cmd) {
  if (cmd.includes('/')) return isExecutable(cmd) ? cmd : null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function upToDate() {
  try {
    const built = statSync(output).mtimeMs;
    return sources.every((s) => statSync(s).mtimeMs < built);
  } catch {
    return false;
  }
}

if (process.platform !== 'linux') skip(`this is not Linux (platform: ${process.platform})`);
if (env.SIMPLEVPN_REBUILD !== '1' && upToDate()) {
  info('native TUN binding is up to date (SIMPLEVPN_REBUILD=1 forces a rebuild)');
  process.exit(0);
}

// Checked up front so that the warning names the missing tool instead of pointing at pages
// of node-gyp output. The variables are the ones node-gyp and make themselves honour.
const python = [env.NODE_GYP_FORCE_PYTHON, env.npm_config_python, env.PYTHON].find(Boolean);
const missing = [];
if (!(python ? onPath(python) : onPath('python3') || onPath('python'))) missing.push(python ? `python (${python}, as configured)` : 'python3');
if (!onPath(env.MAKE || 'make')) missing.push('make');
if (!(env.CC ? onPath(env.CC.split(' ')[0]) : onPath('cc') || onPath('gcc') || onPath('clang'))) missing.push('a C compiler (cc, gcc or clang)');
if (missing.length) skip(`${missing.join(', ')} not found on PATH`);

// node-gyp: the copy npm names for lifecycle scripts, then one on PATH, then the copy bundled
// with npm (found from the running npm, the npm on PATH, or next to this node).
function nodeGypCandidates() {
  const out = [];
  const bundled = (npmCli) => join(dirname(npmCli), '../node_modules/node-gyp/bin/node-gyp.js');
  if (env.npm_config_node_gyp) out.push(env.npm_config_node_gyp);
  const onPathGyp = onPath('node-gyp');
  if (onPathGyp) out.push(onPathGyp);
  if (env.npm_execpath) out.push(bundled(env.npm_execpath));
  const npm = onPath('npm');
  if (npm) {
    try {
      out.push(bundled(realpathSync(npm)));
    } catch {}
  }
  out.push(resolve(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  return [...new Set(out)].filter((f) => existsSync(f));
}

function isNodeScript(file) {
  if (file.endsWith('.js') || file.endsWith('.mjs') || file.endsWith('.cjs')) return true;
  try {
    return /^#!.*\bnode\b/.test(readFileSync(file, 'utf8').slice(0, 100));
  } catch {
    return false;
  }
}

const args = ['rebuild'];
// Outside npm nothing tells node-gyp where the headers are and it would try to download
// them; use the ones installed with this node when they are there.
const prefix = resolve(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h')) && existsSync(join(prefix, 'include/node/common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}

const candidates = nodeGypCandidates();
if (!candidates.length) skip('node-gyp was not found (neither $npm_config_node_gyp, node-gyp on PATH, nor the copy bundled with npm)');

let result;
for (const gyp of candidates) {
  const [cmd, argv] = isNodeScript(gyp) ? [process.execPath, [gyp, ...args]] : [gyp, args];
  info(`building the native TUN binding: ${[cmd, ...argv].join(' ')}`);
  result = spawnSync(cmd, argv, { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, maxBuffer: 64 << 20 });
  if (!(result.error && result.error.code === 'ENOENT')) break;
}

const log = `${result.stdout ?? ''}${result.stderr ?? ''}`;
if (result.status === 0 && existsSync(output)) {
  info(`built ${output}`);
  process.exit(0);
}

function cause() {
  if (result.error) return result.error.code === 'ETIMEDOUT' ? 'node-gyp timed out after 5 minutes' : `node-gyp could not run (${result.error.message})`;
  const errors = log.split('\n').filter((l) => l.startsWith('gyp ERR!')).join('\n');
  if (/find Python/i.test(errors)) return 'node-gyp found no usable Python (python3 >= 3.8)';
  if (/(node_api\.h|common\.gypi).*(No such file|not found)/.test(log) || /tarball|download|getaddrinfo|ENOTFOUND|ECONNREFUSED|\b40[34]\b/.test(errors))
    return "Node's headers are missing (set nodedir to a directory with include/node, or allow node-gyp to download them)";
  if (/not found: (make|cc|gcc)/i.test(errors)) return 'make or the C compiler could not be run';
  if (/`make` failed/.test(errors)) return 'compiling linux/native/tun.c failed (see the compiler output above)';
  return `node-gyp failed (exit ${result.status ?? result.signal})`;
}
console.error(log.trim().split('\n').slice(-25).join('\n'));
skip(cause());
