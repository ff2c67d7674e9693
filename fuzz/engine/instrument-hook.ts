// The module loader hook of the fuzzer (registered by instrument.ts, run on Node's loader
// thread): every module of the project's own code (the dist/js folders listed in `data.roots`)
// is rewritten on load with the edge counters of @jazzer.js/instrumentor (its ES-module
// coverage plugin: a counter per function entry, branch, loop, case, catch and short-circuit
// operand). The counters live in one shared array in the fuzzed process (coverage.ts); each
// module asks for its own range of it when it is evaluated, so a module loaded twice (it is
// not) or in another order still gets counters of its own. Everything else (node_modules,
// the fuzzer itself, Node's built-ins) loads unchanged. The module's integer literals go to the
// mutator with its counters.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const babel = require('@babel/core');
const { esmCodeCoverage } = require('@jazzer.js/instrumentor/dist/plugins/esmCodeCoverage.js');

let roots: string[] = [];

export function initialize(data: { roots: string[] }): void {
  roots = data.roots;
}

interface LoadResult {
  format?: string | null;
  source?: string | ArrayBuffer | Uint8Array;
  shortCircuit?: boolean;
}

export async function load(url: string, context: object, nextLoad: (url: string, context: object) => Promise<LoadResult>): Promise<LoadResult> {
  const r = await nextLoad(url, context);
  if (r.format !== 'module' || r.source === undefined || !roots.some((root) => url.startsWith(root))) return r;
  const code = typeof r.source === 'string' ? r.source : Buffer.from(r.source as Uint8Array).toString('utf8');
  const cov = esmCodeCoverage();
  // The module's integer literals (0-65535): the values its comparisons are likely to test
  // the input against (a version, a TLV type, a marker byte, a length). The mutator writes
  // them into inputs, as libFuzzer does with the operands of the comparisons it traces.
  const literals = new Set<number>();
  const collect = () => ({
    visitor: {
      NumericLiteral(path: { node: { value: number } }) {
        const v = path.node.value;
        if (Number.isInteger(v) && v >= 0 && v <= 0xffff) literals.add(v);
      },
    },
  });
  const out = babel.transformSync(code, {
    filename: new URL(url).pathname,
    plugins: [collect, cov.plugin],
    // The inline source map esbuild wrote is carried through, so a crash's stack names the .ts line.
    inputSourceMap: true,
    sourceMaps: 'inline',
    babelrc: false,
    configFile: false,
    sourceType: 'module',
  });
  // The preamble: the module's counters, a range of the fuzzer's array (coverage.ts).
  const preamble = `const __jazzer_cov = globalThis.__simplevpnFuzzCounters(${cov.edgeCount()}, ${JSON.stringify(url)}, ${JSON.stringify([...literals])});`;
  return { format: 'module', source: preamble + out.code, shortCircuit: true };
}
