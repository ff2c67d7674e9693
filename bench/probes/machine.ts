// What every run records about where it ran: the machine, the versions of the tools the
// sections use (null when missing: the sections that need them say so) and the code measured.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import type { BenchResults, Machine } from '../report/schema.js';
import { have } from '../util.js';
import { BENCH_CONGESTION_CONTROL } from '../netlab.js';

function version(cmd: string, args: string[], re: RegExp): string | null {
  if (!have(cmd)) return null;
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  const m = re.exec(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  return m ? m[1] : 'unknown version';
}

export function toolVersions(): Record<string, string | null> {
  return {
    iperf3: version('iperf3', ['--version'], /iperf (\S+)/),
    openvpn: version('openvpn', ['--version'], /OpenVPN (\S+)/),
    'wireguard-go': version('wireguard-go', ['--version'], /wireguard-go (\S+)/),
    wg: version('wg', ['--version'], /wireguard-tools (\S+)/),
    ping: version('ping', ['-V'], /iputils[- ]([\w.]+)/),
    ip: version('ip', ['-V'], /iproute2-([\w.]+)/),
    openssl: version('openssl', ['version'], /OpenSSL (\S+)/),
    tinyproxy: version('tinyproxy', ['-v'], /tinyproxy (\S+)/),
    nft: version('nft', ['--version'], /nftables v(\S+)/),
    perf: version('perf', ['--version'], /perf version (\S+)/),
  };
}

function hostCongestionControl(): string {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machine(): Machine {
  return {
    cpus: availableParallelism(),
    model: cpuModel(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.versions.node,
    loadavgAtStart: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    tcp: { host: hostCongestionControl(), namespaces: BENCH_CONGESTION_CONTROL },
  };
}

/**
 * The commit of the checkout at `repo` and the data-path files changed since. bench/run.mjs
 * reads it before it builds (the build measured) and passes it in SIMPLEVPN_BENCH_CODE;
 * asked here only when the run was started some other way.
 */
export function codeState(repo: string): BenchResults['code'] {
  try {
    const c = JSON.parse(process.env.SIMPLEVPN_BENCH_CODE ?? '');
    if (typeof c.commit === 'string' && Array.isArray(c.changed)) return c;
  } catch {}
  const git = (args: string[]) => spawnSync('git', args, { cwd: repo, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const changed = git(['status', '--porcelain', '--', 'server', 'client-sdk', 'linux'])
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3));
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', changed };
}
