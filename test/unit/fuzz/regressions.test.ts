// Replays, without instrumentation, every input kept for a fuzz target: its seeds, its corpus
// (fuzz/corpus/<target>/, the inputs that reached new code) and its regressions
// (fuzz/regressions/<target>/, the inputs that once crashed it or broke an invariant). Each must
// run through with every invariant holding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readInputs } from '../../../fuzz/engine/fuzzer.js';
import { TARGETS } from '../../../fuzz/targets/index.js';
import { ROOT } from '../../support/paths.js';

const CORPUS = join(ROOT, 'fuzz/corpus');
const REGRESSIONS = join(ROOT, 'fuzz/regressions');

async function replay(name: string, run: (b: Uint8Array) => void | Promise<void>, inputs: Array<{ name: string; data: Uint8Array }>): Promise<void> {
  for (const i of inputs) {
    try {
      await run(i.data);
    } catch (e) {
      assert.unreachable(`${name} ${i.name} (${Buffer.from(i.data.subarray(0, 64)).toString('hex')}...): ${(e as Error).stack ?? e}`);
    }
  }
}

for (const t of TARGETS) {
  test(`fuzz target ${t.name}: its seeds, corpus and regressions replay clean`, async () => {
    const seeds = t.seeds().map((data, k) => ({ name: `seed ${k}`, data }));
    assert.ok(seeds.length > 0, 'a target needs seeds');
    await replay(t.name, (b) => t.run(b), seeds);
    await replay(t.name, (b) => t.run(b.subarray(0, t.maxLength)), readInputs(join(CORPUS, t.name)));
    await replay(t.name, (b) => t.run(b.subarray(0, t.maxLength)), readInputs(join(REGRESSIONS, t.name)));
  });
}

test('every folder under fuzz/corpus and fuzz/regressions belongs to a target', () => {
  for (const dir of [CORPUS, REGRESSIONS]) {
    if (!existsSync(dir)) continue;
    for (const d of readdirSync(dir)) assert.ok(TARGETS.some((t) => t.name === d), `${dir}/${d}: no fuzz target of that name in fuzz/targets/index.ts`);
  }
});

test.run();
