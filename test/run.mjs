#!/usr/bin/env node
// `npm test`: type check, build, then every test file under test/unit and test/e2e, each in
// a process of its own with a time limit, and one closing line: "N passed, N failed".
//
//   node test/run.mjs [unit|e2e] [name-filter]
//
// The end-to-end files need root, /dev/net/tun and iproute2. Without them they report their
// tests as skipped (uvu's count), never as passed.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const only = args.find((a) => a === 'unit' || a === 'e2e');
const filter = args.find((a) => a !== only);
const LIMITS = { unit: 180_000, e2e: 600_000 };

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
    const child = spawn(process.execPath, ['--enable-source-maps', join(root, 'node_modules/uvu/bin.js'), join(root, 'dist/js/test', file.dir), file.name], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => process.stderr.write(d));
    const timer = setTimeout(() => {
      out += `\n${file.rel}: killed after ${limit / 1000} s\n`;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, limit);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const num = (label) => {
        const m = out.match(new RegExp(label + ':\\s+(\\d+)'));
        return m ? +m[1] : -1;
      };
      const total = num('Total');
      const ok = num('Passed');
      const skip = Math.max(0, num('Skipped'));
      // uvu's Total counts the tests that ran; skipped ones are apart.
      let bad = total >= 0 && ok >= 0 ? total - ok : 0;
      // A crash, a time-out or a non-zero exit with nothing counted still fails the file.
      if ((code !== 0 || signal) && bad === 0) bad = 1;
      passed += Math.max(0, ok);
      skipped += skip;
      failed += bad;
      if (bad) failures.push(file.rel);
      console.log(`${bad ? 'FAIL' : 'ok  '} ${file.rel} (${Date.now() - t0} ms)`);
      resolve();
    });
  });
}

function files(dir) {
  let names = [];
  try {
    names = readdirSync(join(root, 'test', dir)).filter((n) => n.endsWith('.test.ts'));
  } catch {}
  return names
    .filter((n) => !filter || n.includes(filter))
    .sort()
    .map((n) => ({ dir, name: n.replace(/\.ts$/, '.js').replace(/\./g, '\\.'), rel: `test/${dir}/${n}` }));
}

const tsc = join(root, 'node_modules/typescript/bin/tsc');
const typed = step('type check (tsconfig.json)', process.execPath, [tsc, '-p', 'tsconfig.json']) &&
  step('type check of the SDK core without runtime types (client-sdk/tsconfig.json)', process.execPath, [tsc, '-p', 'client-sdk/tsconfig.json']);
const built = step('build (build.mjs)', process.execPath, ['build.mjs', '--quiet']);
if (built) {
  for (const dir of ['unit', 'e2e']) {
    if (only && only !== dir) continue;
    for (const f of files(dir)) await runFile(f, LIMITS[dir]);
  }
}
if (!typed) console.log('type check failed: see the errors above');
if (failures.length) console.log('failed: ' + failures.join(', '));
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exitCode = failed ? 1 : 0;
