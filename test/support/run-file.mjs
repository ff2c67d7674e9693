#!/usr/bin/env node
// Runs one uvu test file and writes what it counted as JSON to a result file:
//
//   node test/support/run-file.mjs <test-file.js> <result.json>
//
// The counts come from the suites' own return values, not from uvu's printed summary, so
// test/run.mjs cannot misread them; a file that crashes, exits early or writes no result
// is a failure there.
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

const [file, resultPath] = process.argv.slice(2);
if (!file || !resultPath) {
  process.stderr.write('usage: node test/support/run-file.mjs <test-file.js> <result.json>\n');
  process.exit(2);
}

// uvu queues suites instead of running them when UVU_DEFER is set, as its own CLI does.
globalThis.UVU_DEFER = 1;
globalThis.UVU_INDEX = 0;
globalThis.UVU_QUEUE = [[basename(file)]];
const uvu = await import('uvu');
await import(pathToFileURL(file).href);

const counts = { suites: 0, total: 0, passed: 0, skipped: 0 };
const group = globalThis.UVU_QUEUE[0];
for (let i = 1; i < group.length; i++) {
  const run = group[i];
  // Each suite's runner resolves to [errors, passed, skipped, total].
  group[i] = async () => {
    const r = await run();
    counts.suites++;
    counts.passed += r[1];
    counts.skipped += r[2];
    counts.total += r[3];
    return r;
  };
}
await uvu.exec();
writeFileSync(resultPath, JSON.stringify({ ...counts, failed: counts.total - counts.passed }));
