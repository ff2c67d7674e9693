// `npm run fuzz`: every fuzz target (fuzz/targets/index.ts) in turn, coverage-guided, for a
// time budget each, saving new interesting inputs to fuzz/corpus/<target>/ and crashing ones to
// fuzz/regressions/<target>/, with a report per target. Exits 1 when any target crashed.
//
//   node dist/js/fuzz/run.js [--time S] [--runs N] [--target NAME[,NAME]] [--seed N] [--no-save] [--json] [--ci]
//
//   --time S     seconds per target (default 60)
//   --runs N     stop each target after N generated inputs instead (or too, with --time)
//   --target     only these targets
//   --seed N     the mutator's seed (default: from the clock; printed, to repeat a run)
//   --no-save    write nothing to the repository
//   --json       the reports as one JSON line at the end, for tests and scripts
//   --ci         what `npm test` runs: each target's own fixed number of runs (FuzzTarget.ciRuns),
//                seed 1, nothing saved
import { fileURLToPath } from 'node:url';
import { instrument } from './engine/instrument.js';
import type { FuzzReport } from './engine/fuzzer.js';

const USAGE = 'usage: npm run fuzz -- [--time SECONDS] [--runs N] [--target NAME[,NAME]] [--seed N] [--no-save] [--json] [--ci]';

function parse(argv: string[]) {
  const o = { timeS: undefined as number | undefined, runs: undefined as number | undefined, targets: null as string[] | null, seed: Date.now() % 2 ** 31, save: true, json: false, ci: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const number = () => {
      const v = Number(value());
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--time') o.timeS = number();
    else if (a === '--runs') o.runs = Math.floor(number());
    else if (a === '--seed') o.seed = Math.floor(number());
    else if (a === '--target') o.targets = value().split(',');
    else if (a === '--no-save') o.save = false;
    else if (a === '--json') o.json = true;
    else if (a === '--ci') {
      o.ci = true;
      o.seed = 1;
      o.save = false;
    }
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (o.timeS === undefined && o.runs === undefined && !o.ci) o.timeS = 60;
  return o;
}

function print(r: FuzzReport): void {
  const pct = (a: { reached: number; total: number }) => `${a.reached}/${a.total} (${a.total ? Math.round((100 * a.reached) / a.total) : 0}%)`;
  console.log(
    `${r.target}: ${r.runs} runs in ${(r.ms / 1000).toFixed(1)} s (${r.execPerSec}/s); edges of its files ${pct(r.edges)}, ` +
      `of all instrumented code ${pct(r.allEdges)}; ${r.features} features; started from ${r.seeds} inputs (seeds, corpus, regressions), corpus now ${r.corpus} (${r.added} new${r.dropped ? `, ${r.dropped} redundant files deleted` : ''}); crashes ${r.crashes.length}`,
  );
  if (r.files.length > 1) console.log('  ' + r.files.map((f) => `${f.file} ${pct(f)}`).join(', '));
  for (const c of r.crashes) console.log(`  CRASH ${c.file ?? '(not saved)'}\n    input (${c.length} bytes, minimized from ${c.found}) ${c.input}\n    ${c.error.replace(/\n/g, '\n    ')}`);
}

async function main(): Promise<void> {
  let o: ReturnType<typeof parse>;
  try {
    o = parse(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  // Instrumentation first: the targets and the code under them load after it.
  instrument();
  const { fuzz } = await import('./engine/fuzzer.js');
  const { TARGETS } = await import('./targets/index.js');
  const unknown = (o.targets ?? []).filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length) {
    console.error(`no fuzz target ${unknown.join(', ')}; there are ${TARGETS.map((t) => t.name).join(', ')}`);
    process.exit(2);
  }
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const reports: FuzzReport[] = [];
  const budget = o.ci ? "each target's CI budget of runs" : [o.timeS !== undefined ? o.timeS + ' s' : '', o.runs !== undefined ? o.runs + ' runs' : ''].filter(Boolean).join(' or ') + ' per target';
  if (!o.json) console.log(`seed ${o.seed}; ${budget}${o.save ? '; new inputs saved under fuzz/corpus, crashes under fuzz/regressions' : ''}`);
  for (const t of TARGETS) {
    if (o.targets && !o.targets.includes(t.name)) continue;
    if (!o.json) console.log(`${t.name}: ${t.about}`);
    const r = await fuzz(t, {
      runs: o.ci ? t.ciRuns : o.runs,
      timeMs: o.timeS === undefined ? undefined : o.timeS * 1000,
      seed: o.seed,
      corpusRoot: root + 'fuzz/corpus',
      regressionsRoot: root + 'fuzz/regressions',
      save: o.save,
      maxCrashes: 10,
      progress: o.json ? undefined : (line) => console.log('  ' + line),
    });
    reports.push(r);
    if (!o.json) print(r);
  }
  if (o.json) console.log(JSON.stringify(reports));
  process.exitCode = reports.some((r) => r.crashes.length > 0) ? 1 : 0;
}

await main();
