#!/usr/bin/env node
// `npm test`: type check, build, then every test file under test/unit, test/integration and
// test/e2e, each in a process of its own with a time limit (test/support/run-file.mjs), and
// one closing line: "N passed, N failed".
//
//   node test/run.mjs [unit|integration|e2e] [name-filter]
//
// The end-to-end files need root, /dev/net/tun and iproute2. Without them they report their
// tests as skipped (uvu's count), never as passed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const DIRS = ['unit', 'integration', 'e2e'];
const only = args.find((a) => DIRS.includes(a));
const filter = args.find((a) => a !== only);
const RUN_FILE = join(root, 'test/support/run-file.mjs');
const results = mkdtempSync(join(tmpdir(), 'simplevpn-test-'));
process.on('exit', () => rmSync(results, { recursive: true, force: true }));
const LIMITS = { unit: 180_000, integration: 300_000, e2e: 600_000 };

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

function step(name, cmd, argv) {
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  const ok = r.status === 0;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} (${Date.now() - t0} ms)`);
  if (ok) passed++;
  else {
    failed++;
    failures.push(name);
  }
  return ok;
}

function runFile(file, limit) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const resultPath = join(results, file.rel.replace(/[/.]/g, '_') + '.json');
    // Colour codes would only garble the log CI keeps; FORCE_COLOR beside NO_COLOR makes
    // Node warn on every run.
    const { FORCE_COLOR, ...env } = process.env;
    const child = spawn(process.execPath, ['--enable-source-maps', RUN_FILE, join(root, 'dist/js/test', file.dir, file.js), resultPath], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...env, NO_COLOR: '1' },
    });
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      console.log(`${file.rel}: killed after ${limit / 1000} s`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, limit);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let r = null;
      try {
        r = JSON.parse(readFileSync(resultPath, 'utf8'));
      } catch {}
      // A file counts only through the result it wrote. A crash, a time-out, a non-zero exit,
      // or a file that ran no test and skipped none is a failure, whatever it printed.
      let bad = r ? r.failed : 0;
      let why = '';
      if (!r) why = killed ? 'timed out' : `exited with ${signal ?? code} before writing its counts`;
      else if (code !== 0 || signal) why = `exited with ${signal ?? code}`;
      else if (r.total === 0 && r.skipped === 0) why = 'ran no test';
      if (why && bad === 0) bad = 1;
      passed += r ? r.passed : 0;
      skipped += r ? r.skipped : 0;
      failed += bad;
      if (bad) failures.push(file.rel + (why ? ` (${why})` : ''));
      console.log(`${bad ? 'FAIL' : 'ok  '} ${file.rel} (${Date.now() - t0} ms${why ? ', ' + why : ''})`);
      resolve();
    });
  });
}

/** The test files under test/<dir>, in subfolders that mirror the source, sorted by path. */
function files(dir) {
  const out = [];
  const walk = (sub) => {
    let entries = [];
    try {
      entries = readdirSync(join(root, 'test', dir, sub), { withFileTypes: true });
    } catch {}
    for (const e of entries) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.test.ts')) out.push(rel);
    }
  };
  walk('');
  return out
    .filter((n) => !filter || `${dir}/${n}`.includes(filter))
    .sort()
    .map((n) => ({ dir, js: n.replace(/\.ts$/, '.js'), rel: `test/${dir}/${n}` }));
}

const tsc = join(root, 'node_modules/typescript/bin/tsc');
const typed = step('type check (tsconfig.json)', process.execPath, [tsc, '-p', 'tsconfig.json']) &&
  step('type check of the runtime-neutral code without runtime types (protocol/, client-sdk/src: client-sdk/tsconfig.json)', process.execPath, [tsc, '-p', 'client-sdk/tsconfig.json']);
const built = step('build (build.mjs)', process.execPath, ['build.mjs', '--quiet']);
if (built) {
  for (const dir of DIRS) {
    if (only && only !== dir) continue;
    for (const f of files(dir)) await runFile(f, LIMITS[dir]);
  }
}
if (!typed) console.log('type check failed: see the errors above');
if (failures.length) console.log('failed: ' + failures.join(', '));
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exitCode = failed ? 1 : 0;
