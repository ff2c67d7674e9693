// Coverage feedback: the edge counters that instrumented modules (instrument-hook.ts)
// increment, and what a run reached, as libFuzzer counts it: an edge in a bucket of its hit
// count (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+). A run is interesting when it reaches a
// (edge, bucket) pair, a "feature", that no run before it reached.

/** Room for every edge of the project's code, many times over (about 10,000 today). */
const CAPACITY = 1 << 20;

const counters = new Uint8Array(CAPACITY);
let used = 0;
const modules: Array<{ url: string; from: number; edges: number }> = [];

/** The integer literals of the instrumented code (instrument-hook.ts), for the mutator. */
const literalSet = new Set<number>();
const literalList: number[] = [];

/** Called by every instrumented module as it is evaluated: its range of the counters. */
function allocate(edges: number, url: string, literals: number[] = []): Uint8Array {
  for (const v of literals) {
    if (literalSet.has(v)) continue;
    literalSet.add(v);
    literalList.push(v);
  }
  if (used + edges > CAPACITY) throw new Error(`fuzz/engine/coverage.ts: more than ${CAPACITY} edges; raise CAPACITY`);
  const range = counters.subarray(used, used + edges);
  modules.push({ url, from: used, edges });
  used += edges;
  return range;
}
(globalThis as any).__simplevpnFuzzCounters = allocate;

/** The integer literals of the instrumented modules loaded so far (empty without instrumentation). */
export function codeLiterals(): readonly number[] {
  return literalList;
}

/** Edges of the modules loaded so far. */
export function edgeCount(): number {
  return used;
}

/** The instrumented modules and their edge counts (for the report). */
export function instrumentedModules(): ReadonlyArray<{ url: string; edges: number }> {
  return modules;
}

// Hit count (the counters wrap from 255 to 1) to bucket 0-7.
const BUCKET = new Uint8Array(256);
for (let n = 1; n < 256; n++) BUCKET[n] = n === 1 ? 0 : n === 2 ? 1 : n === 3 ? 2 : n < 8 ? 3 : n < 16 ? 4 : n < 32 ? 5 : n < 128 ? 6 : 7;

/** The features seen so far: one bit per bucket of each edge. */
export class FeatureMap {
  private seen = new Uint8Array(CAPACITY);
  features = 0;
  edges = 0;

  /** Clears the counters before a run. */
  reset(): void {
    counters.fill(0, 0, used);
  }

  /**
   * Folds the counters of the run just made into the map: the number of features it reached
   * first (0: nothing new). `commit` false only measures, for a run to be kept or not later.
   */
  collect(commit = true): number {
    let fresh = 0;
    const seen = this.seen;
    for (let i = 0; i < used; i++) {
      const c = counters[i];
      if (c === 0) continue;
      const bit = 1 << BUCKET[c];
      if ((seen[i] & bit) === 0) {
        fresh++;
        if (commit) {
          if (seen[i] === 0) this.edges++;
          seen[i] |= bit;
          this.features++;
        }
      }
    }
    return fresh;
  }

  /** Edges of the modules whose URL ends with one of `files`, and those reached (for the report). */
  edgesIn(files: readonly string[]): { reached: number; total: number } {
    let reached = 0;
    let total = 0;
    for (const m of modules) {
      if (!files.some((f) => m.url.endsWith(f))) continue;
      total += m.edges;
      for (let i = m.from; i < m.from + m.edges; i++) if (this.seen[i] !== 0) reached++;
    }
    return { reached, total };
  }
}
