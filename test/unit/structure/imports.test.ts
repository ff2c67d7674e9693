// The import rules of docs/architecture.md, checked on the sources: no file imports one that
// imports it back, no folder does, and each folder imports only what it may.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { ROOT } from '../../support/paths.js';

const SOURCES = ['protocol', 'common', 'client-sdk', 'server', 'linux', 'examples'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'build') out.push(...tsFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** file -> the project files it imports (static, re-exports and dynamic import()). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const spec = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm;
  for (const file of SOURCES.flatMap(tsFiles)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(spec)) deps.push(normalize(join(dirname(file), m[1].replace(/\.js$/, '.ts'))));
    graph.set(file, deps);
  }
  return graph;
}

/** Every cycle's members, by Tarjan's strongly connected components. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

const graph = importGraph();

test('every relative import names a source file that exists', () => {
  const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${f} -> ${d}`));
  assert.equal(missing, []);
});

test('no import cycle between files', () => {
  assert.equal(cycles(graph), []);
});

test('no import cycle between folders', () => {
  const folders = new Map<string, string[]>();
  for (const [f, deps] of graph) {
    const from = dirname(f);
    const list = folders.get(from) ?? [];
    for (const d of deps) if (dirname(d) !== from && !list.includes(dirname(d))) list.push(dirname(d));
    folders.set(from, list);
  }
  assert.equal(cycles(folders), []);
});

const under = (f: string, dir: string) => !relative(dir, f).startsWith('..');
function imports(from: (f: string) => boolean, to: (d: string) => boolean): string[] {
  return [...graph].flatMap(([f, deps]) => (from(f) ? deps.filter(to).map((d) => `${f} -> ${d}`) : []));
}

test('protocol/ imports nothing outside itself; the SDK core nothing but protocol/', () => {
  assert.equal(imports((f) => under(f, 'protocol'), (d) => !under(d, 'protocol')), []);
  assert.equal(imports((f) => under(f, 'client-sdk/src'), (d) => !under(d, 'client-sdk/src') && !under(d, 'protocol')), []);
});

test('protocol/ is imported only through its index', () => {
  assert.equal(imports((f) => !under(f, 'protocol'), (d) => under(d, 'protocol') && d !== 'protocol/index.ts'), []);
});

test('linux/ never imports the server; the server reaches linux/ only where it wires the tun in', () => {
  assert.equal(imports((f) => under(f, 'linux'), (d) => under(d, 'server')), []);
  const wiring = new Set(['server/src/cli.ts', 'server/src/index.ts']);
  assert.equal(imports((f) => under(f, 'server') && !wiring.has(f), (d) => under(d, 'linux')), []);
});

test('the data side never imports the control side', () => {
  assert.equal(imports((f) => under(f, 'server/src/data'), (d) => under(d, 'server/src/control')), []);
});

test.run();
