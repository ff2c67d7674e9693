#!/usr/bin/env node
// npm's install script: builds the native TUN binding (linux/native/build/Release/
// simplevpn_tun.node) with node-gyp. The binding is optional at run time, so a failed build
// warns, says why and what still works, and exits 0: an install must never fail for it.
//
//   node linux/native/install.mjs          build unless the .node is newer than its sources
//   SIMPLEVPN_REBUILD=1 node linux/native/install.mjs     build regardless
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build/Release/simplevpn_tun.node');
const sources = ['tun.c', 'splice.c', 'hub.c', 'hub_tun.c', 'frames.c', 'gro.c', 'out_queue.c', 'tun_dev.h', 'frames.h', 'gro.h', 'hub.h', 'out_queue.h', 'binding.gyp'].map((f) => join(here, f));
const env = process.env;

const info = (msg) => console.log(`simplevpn: ${msg}`);
const and = (items) => (items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items.at(-1)}` : items[0]);
const ALL_TOOLS = [
  { name: 'python3', pkg: 'python3' },
  { name: 'make', pkg: 'make' },
  { name: 'a C compiler (cc)', pkg: 'gcc' },
];

// `tools`: what to install, each { name, pkg } with pkg its Debian package (null if unknown);
// by default every tool the build needs, for causes that are not one missing program.
function skip(cause, tools = ALL_TOOLS) {
  const pkgs = [...new Set(tools.map((t) => t.pkg).filter(Boolean))];
  console.error(
    [
      `simplevpn: WARNING: the native TUN binding (linux/native) was not built: ${cause}.`,
      'simplevpn: Everything else works: the server still switches traffic between clients. Only the',
      "simplevpn: server's own TUN interface and the Linux client need the binding.",
      process.platform === 'linux'
        ? `simplevpn: To build it, install ${and(tools.map((t) => t.name))}${pkgs.length ? ` (on Debian or Ubuntu: apt-get install ${pkgs.join(' ')})` : ''},\n` +
          'simplevpn: then run `npm rebuild simplevpn` (or `node linux/native/install.mjs` in a checkout).'
        : 'simplevpn: TUN devices are only supported on Linux.',
    ].join('\n'),
  );
  process.exit(0);
}

// The Debian package that brings a program, by the name a build runs it under.
function debianPackage(cmd) {
  const name = basename(cmd);
  const known = { python3: 'python3', python: 'python3', make: 'make', cc: 'gcc', gcc: 'gcc', 'c++': 'g++', 'g++': 'g++', clang: 'clang', 'clang++': 'clang' };
  if (known[name]) return known[name];
  return /^(gcc|g\+\+|clang)-\d+$/.test(name) ? name : null;
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
// of node-gyp output. The variables are the ones node-gyp and make themselves honour; unset,
// the Makefile runs make's defaults: cc to compile and, as binding.gyp asks, cc to link too
// (node-gyp's own default linker is g++, which a C addon does not need).
const python = [env.NODE_GYP_FORCE_PYTHON, env.npm_config_python, env.PYTHON].find(Boolean);
const program = (value) => value.trim().split(/\s+/)[0];
const cc = program(env.CC_target || env.CC || 'cc');
const linker = program(env.LINK_target || env.LINK || cc);
const tools = [
  python ? { cmd: python, role: 'Python, as configured' } : { cmd: 'python3', alt: 'python' },
  { cmd: env.MAKE || 'make', role: env.MAKE && 'from $MAKE' },
  { cmd: cc, role: env.CC_target || env.CC ? 'the C compiler, from $CC' : 'the C compiler', name: !(env.CC_target || env.CC) && 'a C compiler (cc)' },
];
if (linker !== cc) tools.push({ cmd: linker, role: 'the linker, from $LINK' });
const missing = tools.filter((t) => !onPath(t.cmd) && !(t.alt && onPath(t.alt)));
if (missing.length) {
  skip(
    `${and(missing.map((t) => (t.role ? `${t.cmd} (${t.role})` : t.cmd)))} not found on PATH`,
    missing.map((t) => ({ name: t.name || t.cmd, pkg: debianPackage(t.cmd) })),
  );
}

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

// make reports a program it cannot start as `make: g++: No such file or directory`, a shell
// as `/bin/sh: 1: g++: not found`.
const notRun = log.match(/^(?:make(?:\[\d+\])?|\S*sh(?:: \d+)?): ([^\s:]+): (?:No such file or directory|not found|command not found)$/im)?.[1];

function cause() {
  if (result.error) return result.error.code === 'ETIMEDOUT' ? 'node-gyp timed out after 5 minutes' : `node-gyp could not run (${result.error.message})`;
  if (notRun) return `the build runs ${notRun}, which is not installed`;
  const errors = log.split('\n').filter((l) => l.startsWith('gyp ERR!')).join('\n');
  if (/find Python/i.test(errors)) return 'node-gyp found no usable Python (python3 >= 3.8)';
  if (/(node_api\.h|common\.gypi).*(No such file|not found)/.test(log) || /tarball|download|getaddrinfo|ENOTFOUND|ECONNREFUSED|\b40[34]\b/.test(errors))
    return "Node's headers are missing (set nodedir to a directory with include/node, or allow node-gyp to download them)";
  if (/not found: (make|cc|gcc)/i.test(errors)) return 'make or the C compiler could not be run';
  if (/`make` failed/.test(errors)) return 'compiling linux/native/tun.c failed (see the compiler output above)';
  return `node-gyp failed (exit ${result.status ?? result.signal})`;
}
console.error(log.trim().split('\n').slice(-25).join('\n'));
skip(cause(), notRun ? [{ name: notRun, pkg: debianPackage(notRun) }] : undefined);
