// The benchmark run: the sections asked for, one after another, then the results files.
// Started by bench/run.mjs (which builds and installs the tools first):
//
//   node dist/js/bench/main.js [--quick] [--rounds N] [--seconds S] [--no-profile] [tun] [switch] [scale] [sdk]

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './netlab.js';
import { type BenchResults, judge, markdown, svg } from './report.js';
import { scaleSection } from './scale.js';
import { sdkSection } from './sdk.js';
import { switchSection } from './switch.js';
import { tunSection } from './tun.js';
import { errorText, have } from './util.js';

const SECTIONS = ['tun', 'switch', 'scale', 'sdk'] as const;
type Section = (typeof SECTIONS)[number];

const HELP = `Usage: npm run bench -- [--quick] [--rounds N] [--seconds S] [--no-profile] [--render] [tun] [switch] [scale] [sdk]

Runs the benchmarks (all four sections unless some are named) and writes
bench/results/latest.md, latest.json and latest.svg. Needs root for the network
namespaces of the TUN section (the others fall back to this machine's loopback).

  --quick        short transfers, one round, fewer clients: a smoke run (about 2 minutes)
  --rounds N     interleaved rounds per measurement, best kept (full: 2, quick: 1)
  --seconds S    seconds per iperf3 transfer (full: 10, quick: 3)
  --no-profile   skip the profiled runs (node --cpu-prof, perf)
  --render       measure nothing: rewrite latest.md and latest.svg from latest.json
`;

function parse(argv: string[]) {
  const o = { quick: false, profile: true, render: false, rounds: 0, seconds: 0, sections: [] as Section[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--no-profile') o.profile = false;
    else if (a === '--render') o.render = true;
    else if (a === '--rounds' || a === '--seconds') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0 || (a === '--rounds' && (!Number.isInteger(v) || v > 5)) || (a === '--seconds' && v > 60)) {
        process.stderr.write(`bench: ${a} needs a number (rounds 1-5, seconds up to 60)\n`);
        process.exit(2);
      }
      if (a === '--rounds') o.rounds = v;
      else o.seconds = v;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(HELP);
      process.exit(0);
    } else if ((SECTIONS as readonly string[]).includes(a)) o.sections.push(a as Section);
    else {
      process.stderr.write(`bench: unknown argument "${a}"\n${HELP}`);
      process.exit(2);
    }
  }
  o.sections = o.sections.length ? SECTIONS.filter((s) => o.sections.includes(s)) : [...SECTIONS];
  o.rounds ||= o.quick ? 1 : 2;
  o.seconds ||= o.quick ? 3 : 10;
  return o;
}

function version(cmd: string, args: string[], re: RegExp): string | null {
  if (!have(cmd)) return null;
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  const m = re.exec(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  return m ? m[1] : 'unknown version';
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

const log = (m: string) => process.stdout.write(m + '\n');

// bench/run.mjs runs this from a private copy of the build (ROOT is that copy) and says
// where the checkout is, and what code it built.
const REPO = process.env.SIMPLEVPN_BENCH_REPO || ROOT;

function codeState(): BenchResults['code'] {
  try {
    const c = JSON.parse(process.env.SIMPLEVPN_BENCH_CODE ?? '');
    if (typeof c.commit === 'string' && Array.isArray(c.changed)) return c;
  } catch {}
  const git = (args: string[]) => spawnSync('git', args, { cwd: REPO, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const changed = git(['status', '--porcelain', '--', 'server', 'client-sdk', 'linux'])
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3));
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', changed };
}

function writeReports(outDir: string, r: BenchResults): void {
  writeFileSync(join(outDir, 'latest.md'), markdown(r));
  writeFileSync(join(outDir, 'latest.svg'), svg(r) + '\n');
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const t0 = Date.now();
  const outDir = join(REPO, 'bench/results');
  if (o.render) {
    const r = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as BenchResults;
    r.code ??= { commit: 'unknown', changed: [] };
    r.targets = judge(r);
    writeReports(outDir, r);
    log('Rewrote bench/results/latest.md and latest.svg from latest.json.');
    return;
  }
  const profileDir = join(outDir, 'profiles');
  mkdirSync(outDir, { recursive: true });
  if (o.profile) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const tools: Record<string, string | null> = {
    iperf3: version('iperf3', ['--version'], /iperf (\S+)/),
    openvpn: version('openvpn', ['--version'], /OpenVPN (\S+)/),
    'wireguard-go': version('wireguard-go', ['--version'], /wireguard-go (\S+)/),
    wg: version('wg', ['--version'], /wireguard-tools (\S+)/),
    ping: version('ping', ['-V'], /iputils[- ]([\w.]+)/),
    ip: version('ip', ['-V'], /iproute2-([\w.]+)/),
    openssl: version('openssl', ['version'], /OpenSSL (\S+)/),
    perf: version('perf', ['--version'], /perf version (\S+)/),
  };
  const notes: string[] = [];
  const results: Omit<BenchResults, 'targets'> = {
    version: 1,
    date: new Date().toISOString(),
    code: codeState(),
    mode: o.quick ? 'quick' : 'full',
    sections: o.sections,
    durationS: 0,
    machine: {
      cpus: availableParallelism(),
      model: cpuModel(),
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.versions.node,
      loadavgAtStart: loadavg()
        .map((x) => x.toFixed(2))
        .join(' '),
    },
    tools,
    notes,
  };
  log(`simplevpn bench: ${o.quick ? 'quick' : 'full'} run of ${o.sections.join(', ')}; ${results.machine.cpus} cores, load average ${results.machine.loadavgAtStart}`);

  for (const section of o.sections) {
    const s0 = Date.now();
    try {
      if (section === 'tun') {
        log(`\n1. Through TUN (${o.rounds} round${o.rounds > 1 ? 's' : ''} of ${o.seconds} s transfers)`);
        if (process.getuid?.() !== 0) throw new Error('the TUN section needs root (network namespaces, tun devices)');
        if (!tools.iperf3) throw new Error('iperf3 is not installed');
        const missing: Record<string, string> = {};
        if (!tools.openvpn) missing.openvpn = 'openvpn is not installed';
        if (!tools.openssl) missing.openvpn = 'openssl (for its throwaway PKI) is not installed';
        if (!tools['wireguard-go']) missing['wireguard-go'] = 'wireguard-go is not installed';
        else if (!tools.wg) missing['wireguard-go'] = 'wg (wireguard-tools) is not installed';
        results.tun = await tunSection({
          rounds: o.rounds,
          seconds: o.seconds,
          omit: 1,
          pings: o.quick ? 20 : 50,
          mtus: o.quick ? [1500, 16000, 65000] : [1500, 9000, 16000, 32000, 65000],
          profile: o.profile,
          profileDir,
          missing,
          log,
        });
      } else if (section === 'switch') {
        log(`\n2. Switching alone (${o.rounds} round${o.rounds > 1 ? 's' : ''})`);
        results.switch = await switchSection({ rounds: o.rounds, seconds: o.quick ? 2 : 5, warmup: 1, profileDir: o.profile ? profileDir : undefined, log });
      } else if (section === 'scale') {
        const clients = o.quick ? 2000 : 10_000;
        log(`\n3. Scale (${clients} clients)`);
        results.scale = await scaleSection({ clients, perProcess: 10_000, window: 512, hold: o.quick ? 6 : 11, snapshotDir: outDir, profileDir: o.profile ? profileDir : undefined, log });
      } else if (section === 'sdk') {
        log('\n4. The SDK');
        results.sdk = sdkSection({ quick: o.quick, log });
      }
    } catch (e) {
      notes.push(`section ${section} failed: ${errorText(e)}`);
      log(`  section ${section} FAILED: ${errorText(e)}`);
    }
    log(`  (${section}: ${Math.round((Date.now() - s0) / 1000)} s)`);
  }

  results.durationS = Math.round((Date.now() - t0) / 1000);
  const full: BenchResults = { ...results, targets: judge(results) };
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(full, null, 2) + '\n');
  writeReports(outDir, full);
  log('\nTargets:');
  for (const t of full.targets) log(`  ${t.status === 'met' ? 'met   ' : t.status === 'missed' ? 'MISSED' : 'n/a   '} ${t.section}: ${t.target}: ${t.measured}${t.ratio ? ` (${t.ratio})` : ''}`);
  log(`\nWrote bench/results/latest.md, latest.json and latest.svg in ${results.durationS} s.`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  process.exit(1);
});
