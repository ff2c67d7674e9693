// The fuzzing engine (fuzz/engine/) is guided by coverage, not blind: on a function whose
// failure hides behind five nested byte comparisons (fixtures/magic.ts, 1 input in 2^40), the
// same budget and seed find it with the feedback and not without. Also the mutator's
// determinism, which makes a CI run repeatable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { FuzzReport } from '../../../fuzz/engine/fuzzer.js';
import { Mutator, Rng } from '../../../fuzz/engine/mutate.js';
import { ROOT } from '../../support/paths.js';

const RUNS = 40_000;

test('coverage feedback finds what the same budget of blind mutation does not', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/js/test/unit/fuzz/fixtures/run-magic.js'), String(RUNS), '2'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const [guided, blind] = JSON.parse(r.stdout.trim().split('\n').pop()!) as FuzzReport[];
  assert.is(guided.crashes.length, 1, `guided: ${JSON.stringify(guided)}`);
  assert.match(guided.crashes[0].error, /magic reached/);
  // Minimized to the five bytes that matter.
  assert.is(guided.crashes[0].input, '5356fd2a07');
  assert.ok(guided.runs <= RUNS, `${guided.runs} runs: it stops at the first crash`);
  assert.is(blind.crashes.length, 0, 'blind mutation reached it too: the fixture is too easy to show anything');
  assert.is(blind.runs, RUNS + 1);
  assert.ok(guided.edges.reached > blind.edges.reached, `edges: guided ${guided.edges.reached}, blind ${blind.edges.reached}`);
});

test('the mutator makes the same inputs from the same seed, within the length limit', () => {
  const make = (seed: number) => {
    const m = new Mutator(new Rng(seed), 100, [Uint8Array.of(0x45, 0x14)]);
    const out: string[] = [];
    let b: Uint8Array = new Uint8Array(10);
    for (let i = 0; i < 500; i++) {
      b = m.mutate(b, Uint8Array.of(1, 2, 3));
      assert.ok(b.length <= 100);
      out.push(Buffer.from(b).toString('hex'));
    }
    return out;
  };
  assert.equal(make(5), make(5));
  assert.not.equal(make(5), make(6));
});

test.run();
