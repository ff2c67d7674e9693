// The benchmark run: the sections asked for, one after another, then the results files.
// Started by bench/run.mjs (which builds and installs the tools first):
//
//   node dist/js/bench/main.js [--quick] [--rounds N] [--seconds S] [--no-profile] [--render] [tun] [tun-internet] [switch] [scale] [sdk] [hardening] [cluster] [tun6]
//
// Each section (bench/sections/) measures and returns its part of latest.json; the targets
// are judged and the reports drawn from that file's contents alone (bench/report/).

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/support/lab.js';
import { codeState, machine, toolVersions } from './probes/machine.js';
import { chart } from './report/chart.js';
import { markdown } from './report/markdown.js';
import type { BenchResults } from './report/schema.js';
import { judge } from './report/targets.js';
import { runCluster } from './sections/cluster.js';
import { runHardening } from './sections/hardening.js';
import { runScale } from './sections/scale.js';
import { runSdk } from './sections/sdk.js';
import { type RunContext, SECTIONS, type Section, type SectionName } from './sections/section.js';
import { runSwitch } from './sections/switch.js';
import { runTun } from './sections/tun.js';
import { runTunInternet } from './sections/tun-internet.js';
import { runTun6Section } from './sections/tun6.js';
import { errorText } from './util.js';

/** Each section's run function, stored under its name in latest.json. */
const RUN: { [K in SectionName]: Section<NonNullable<BenchResults[K]>> } = { tun: runTun, 'tun-internet': runTunInternet, switch: runSwitch, scale: runScale, sdk: runSdk, hardening: runHardening, cluster: runCluster, tun6: runTun6Section };

const HELP = `Usage: npm run bench -- [--quick] [--rounds N] [--seconds S] [--no-profile] [--render] [tun] [tun-internet] [switch] [scale] [sdk] [hardening] [cluster] [tun6]

Runs the benchmarks (all eight sections unless some are named) and writes
bench/results/latest.md, latest.json and latest.svg. Needs root for the network
namespaces of the TUN sections (the others fall back to this machine's loopback).
tun: client to client through the VPN server; tun-internet: from a client through the
server to a host beyond it (routed and masqueraded by the server's kernel).

  --quick        short transfers, one round, fewer clients: a smoke run (about 2 minutes)
  --rounds N     interleaved rounds per measurement, best kept (full: 2, quick: 1)
  --seconds S    seconds per iperf3 transfer (full: 10, quick: 3)
  --no-profile   skip the profiled runs (node --cpu-prof, perf)
  --render       measure nothing: rewrite latest.md and latest.svg from latest.json
`;

function parse(argv: string[]) {
  const o = { quick: false, profile: true, render: false, rounds: 0, seconds: 0, sections: [] as SectionName[] };
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
    } else if ((SECTIONS as readonly string[]).includes(a)) o.sections.push(a as SectionName);
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

const log = (m: string) => process.stdout.write(m + '\n');

// bench/run.mjs runs this from a private copy of the build (ROOT is that copy) and says
// where the checkout is: the results go there.
const REPO = process.env.SIMPLEVPN_BENCH_REPO || ROOT;

function writeReports(outDir: string, r: BenchResults): void {
  writeFileSync(join(outDir, 'latest.md'), markdown(r));
  writeFileSync(join(outDir, 'latest.svg'), chart(r) + '\n');
}

/** Runs one section into `results`; a section that throws leaves a note instead. */
async function runSection<K extends SectionName>(name: K, ctx: RunContext, results: Omit<BenchResults, 'targets'>): Promise<void> {
  const s0 = Date.now();
  try {
    results[name] = await RUN[name](ctx);
  } catch (e) {
    results.notes.push(`section ${name} failed: ${errorText(e)}`);
    log(`  section ${name} FAILED: ${errorText(e)}`);
  }
  log(`  (${name}: ${Math.round((Date.now() - s0) / 1000)} s)`);
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
  const tools = toolVersions();
  const results: Omit<BenchResults, 'targets'> = {
    version: 1,
    date: new Date().toISOString(),
    code: codeState(REPO),
    mode: o.quick ? 'quick' : 'full',
    sections: o.sections,
    durationS: 0,
    machine: machine(),
    tools,
    notes: [],
  };
  log(`simplevpn bench: ${o.quick ? 'quick' : 'full'} run of ${o.sections.join(', ')}; ${results.machine.cpus} cores, load average ${results.machine.loadavgAtStart}`);

  const ctx: RunContext = { quick: o.quick, rounds: o.rounds, seconds: o.seconds, profileDir: o.profile ? profileDir : undefined, outDir, tools, log };
  for (const section of o.sections) {
    await runSection(section, ctx, results);
    // The internet-bound path is measured at the raised MTU the TUN section found best.
    if (section === 'tun') ctx.tunBestMtu = results.tun?.bestMtu ?? null;
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
