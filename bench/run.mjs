#!/usr/bin/env node
// `npm run bench [-- --quick] [-- tun tun-internet switch scale sdk hardening]`: builds, installs the Debian tools
// the sections use when they are missing (as root, with apt-get), then runs
// dist/js/bench/main.js, which writes bench/results/latest.{md,json,svg}. Not part of
// `npm test`. `npm run bench -- --help` lists the options.
//
// The run uses a private copy of what the build made (dist/ and the native TUN binding, in
// a temp dir removed at exit): a build started meanwhile in this checkout (npm test rebuilds
// dist/ in place) can neither break the run nor change the code under measurement halfway.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const help = args.includes('--help') || args.includes('-h');
const ALL = ['tun', 'tun-internet', 'switch', 'scale', 'sdk', 'hardening'];
const named = ALL.filter((s) => args.includes(s));
const sections = named.length ? named : ALL;

// command -> Debian package. The TUN section needs all but nft, the internet-bound one all
// (nft masquerades at the hub); the switching and scale sections only `ip` (for a namespace
// of their own); the SDK and hardening sections nothing.
const TUN_TOOLS = [
  ['iperf3', 'iperf3'],
  ['openvpn', 'openvpn'],
  ['wg', 'wireguard-tools'],
  ['wireguard-go', 'wireguard-go'],
  ['ping', 'iputils-ping'],
  ['ip', 'iproute2'],
  ['openssl', 'openssl'],
];
const TOOLS = {
  tun: TUN_TOOLS,
  'tun-internet': [...TUN_TOOLS, ['nft', 'nftables']],
  switch: [['ip', 'iproute2']],
  scale: [['ip', 'iproute2']],
  sdk: [],
  hardening: [],
};

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function installTools() {
  const wanted = new Map();
  for (const s of sections) for (const [cmd, pkg] of TOOLS[s]) if (!have(cmd)) wanted.set(pkg, cmd);
  if (!wanted.size) return;
  const pkgs = [...wanted.keys()];
  if (process.getuid?.() !== 0) {
    console.log(`bench: missing ${pkgs.join(', ')}; not root, so not installing them (the sections that need them will say so)`);
    return;
  }
  console.log(`bench: installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (a) => spawnSync('apt-get', a, { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 600_000 }).status === 0;
  if (!apt(['update', '-qq'])) console.log('bench: apt-get update failed; trying the install anyway');
  // --no-install-recommends: wireguard-tools would otherwise pull in a kernel image.
  if (apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs])) return;
  // One at a time, so that one package missing from the archive does not stop the others.
  for (const p of pkgs) if (!apt(['install', '-y', '-qq', '--no-install-recommends', p])) console.log(`bench: could not install ${p}`);
}

const git = (a) => spawnSync('git', a, { cwd: root, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
const ADDON = 'linux/native/build/Release/simplevpn_tun.node';
const NEEDED = ['dist/bin/simplevpn-server.js', 'dist/bin/simplevpn-client.js', 'dist/js/bench/main.js', 'dist/js/test/support/lab.js', 'dist/sdk/simplevpn-sdk.mjs'];

/** Builds, and copies the result aside; null when the build failed or was wiped under us. */
function buildSnapshot() {
  // The code measured: the commit and the data-path files changed since, as built now.
  const code = {
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    changed: git(['status', '--porcelain', '--', 'server', 'client-sdk', 'linux'])
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3)),
  };
  const b = spawnSync(process.execPath, [join(root, 'build.mjs'), '--quiet'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) return null;
  const snap = mkdtempSync(join(tmpdir(), 'svpn-bench-build-'));
  process.once('exit', () => rmSync(snap, { recursive: true, force: true }));
  try {
    cpSync(join(root, 'dist'), join(snap, 'dist'), { recursive: true });
    if (existsSync(join(root, ADDON))) {
      mkdirSync(dirname(join(snap, ADDON)), { recursive: true });
      copyFileSync(join(root, ADDON), join(snap, ADDON));
    }
    // The TUN wrapper finds the addon from the nearest package.json named simplevpn.
    writeFileSync(join(snap, 'package.json'), JSON.stringify({ name: 'simplevpn', private: true, type: 'module' }) + '\n');
    symlinkSync(join(root, 'node_modules'), join(snap, 'node_modules'));
  } catch {
    return null;
  }
  return NEEDED.every((f) => existsSync(join(snap, f))) ? { snap, code } : null;
}

let built = buildSnapshot();
if (!built) {
  console.log('bench: the build failed or was removed while it was copied; building once more');
  built = buildSnapshot();
}
if (!built) {
  console.error('bench: the build failed');
  process.exit(1);
}
if (!help && !args.includes('--render')) installTools();

const child = spawn(process.execPath, ['--enable-source-maps', join(built.snap, 'dist/js/bench/main.js'), ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SIMPLEVPN_BENCH_REPO: root, SIMPLEVPN_BENCH_CODE: JSON.stringify(built.code) },
});
// The run cleans up its namespaces on SIGINT/SIGTERM itself; wait for it.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
