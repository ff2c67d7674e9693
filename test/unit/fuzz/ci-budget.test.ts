// Every fuzz target (fuzz/targets/) for its fixed CI budget: a count of runs with seed 1, so
// that the inputs tried, and so the verdict, do not depend on how loaded the machine is (only
// how long it takes does). Coverage-guided (fuzz/engine/): the run must reach the code it is
// about, and crash nowhere. One process for all targets, as `npm run fuzz -- --ci` runs it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { FuzzReport } from '../../../fuzz/engine/fuzzer.js';
import { TARGETS } from '../../../fuzz/targets/index.js';
import { ROOT } from '../../support/paths.js';

const run = spawnSync(process.execPath, [join(ROOT, 'dist/js/fuzz/run.js'), '--ci', '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
const lastLine = run.stdout.trim().split('\n').pop() ?? '';
let reports: FuzzReport[] = [];
try {
  reports = JSON.parse(lastLine);
} catch {
  // reported by the first test below
}

test('the CI fuzz run finishes and reports every target', () => {
  assert.ok(reports.length > 0, `no report from fuzz/run.js --ci (exit ${run.status}, signal ${run.signal}):\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-4000)}`);
  assert.equal(reports.map((r) => r.target), TARGETS.map((t) => t.name));
});

for (const t of TARGETS) {
  test(`fuzz target ${t.name}: ${t.ciRuns} runs, coverage-guided, no crash`, () => {
    const r = reports.find((x) => x.target === t.name);
    assert.ok(r, `no report for ${t.name}`);
    const crashes = r.crashes.map((c) => `input ${c.input}\n${c.error}`).join('\n\n');
    assert.is(r.crashes.length, 0, `${t.name} crashed; replay with node dist/js/fuzz/run.js --target ${t.name} --seed 1 --runs ${t.ciRuns} to save the input under fuzz/regressions/:\n${crashes}`);
    assert.ok(r.runs >= t.ciRuns, `${r.runs} runs, fewer than the budget of ${t.ciRuns}`);
    // The feedback works: the code the target is about is instrumented, and reached. (Whether
    // this run found new inputs depends on how much the committed corpus has already found.)
    assert.ok(r.edges.total > 0 && r.edges.reached > r.edges.total / 4, `${r.edges.reached} of ${r.edges.total} edges of ${t.covers.join(', ')} reached`);
    assert.ok(r.features >= r.edges.reached, `${r.features} features for ${r.edges.reached} edges`);
  });
}

test('the run exits 0 (1 would mean a crash)', () => {
  assert.is(run.status, 0, run.stderr.slice(-2000));
});

test.run();
