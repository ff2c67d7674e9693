// The fuzzing loop: coverage-guided, as libFuzzer's. The corpus starts from the target's seeds,
// fuzz/corpus/<target>/ and fuzz/regressions/<target>/; each new input is a mutation of one
// corpus input (mutate.ts), run once; an input that reaches a feature no run reached before
// (coverage.ts) joins the corpus, and one that throws or breaks an invariant is a crash. With
// `save`, new corpus inputs are written to fuzz/corpus/<target>/ (and those made redundant
// deleted) and crashes to fuzz/regressions/<target>/, named by their hash, where
// test/unit/fuzz/ replays them.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FeatureMap, codeLiterals, edgeCount } from './coverage.js';
import { Mutator, Rng } from './mutate.js';
import type { FuzzTarget } from './target.js';

export interface FuzzOptions {
  /** Stop after this many runs of generated inputs (the seeds not counted)... */
  runs?: number;
  /** ...or after this long, whichever comes first. */
  timeMs?: number;
  /** The generator's seed: the same seed and run budget make the same inputs. */
  seed: number;
  /** fuzz/corpus and fuzz/regressions: inputs are read from <dir>/<target>/. */
  corpusRoot: string;
  regressionsRoot: string;
  /** Write new corpus inputs and crashes there. */
  save: boolean;
  /** Stop at this many distinct crashes. */
  maxCrashes: number;
  /**
   * false: the coverage is measured but never used, the corpus stays the seeds (blind
   * mutation, to show what the feedback is worth: test/unit/fuzz/engine.test.ts).
   */
  feedback?: boolean;
  /** A line of progress now and then. */
  progress?: (line: string) => void;
}

export interface Crash {
  error: string;
  /** The input, minimized (fuzzer.ts, minimize), hex, cut to 256 bytes; its length, and that of the input as found. */
  input: string;
  length: number;
  found: number;
  /** Where it was saved, or null. */
  file: string | null;
}

export interface FuzzReport {
  target: string;
  /** Runs in all, the seeds included. */
  runs: number;
  ms: number;
  execPerSec: number;
  /** Edges of the files the target is about (FuzzTarget.covers), and those some run reached. */
  edges: { reached: number; total: number };
  /** The same per file. */
  files: Array<{ file: string; reached: number; total: number }>;
  /** Edges any run reached in all the instrumented code, and how many that code has. */
  allEdges: { reached: number; total: number };
  features: number;
  /** Inputs the run started from (seeds, corpus files, regressions), and the corpus at its end (those that reached something new, and the new inputs). */
  seeds: number;
  corpus: number;
  /** Inputs it added to the corpus, and corpus files it deleted as redundant (with `save`). */
  added: number;
  dropped: number;
  crashes: Crash[];
}

export const inputName = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex').slice(0, 16);

/** The inputs kept in `dir` (none when it does not exist), by name. */
export function readInputs(dir: string): Array<{ name: string; data: Uint8Array }> {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.filter((n) => !n.startsWith('.')).map((n) => ({ name: n, data: new Uint8Array(readFileSync(join(dir, n))) }));
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  return `thrown non-error: ${String(e)}`;
}

/** An error that escaped the target's call: thrown later from a timer or an event handler. */
let escaped: unknown = undefined;
let guarded = false;
function guardProcess(): void {
  if (guarded) return;
  guarded = true;
  const keep = (e: unknown) => {
    if (escaped === undefined) escaped = e ?? new Error('undefined thrown');
  };
  process.on('uncaughtException', keep);
  process.on('unhandledRejection', keep);
}

/** How long an async run may take before it counts as a hang (a crash). */
const HANG_MS = 20_000;

/** Runs `input`: the error it raised, or undefined. */
async function runOnce(target: FuzzTarget, input: Uint8Array): Promise<unknown> {
  escaped = undefined;
  try {
    const r = target.run(input);
    if (r instanceof Promise) {
      let timer: NodeJS.Timeout | undefined;
      const hang = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`hang: the run did not settle within ${HANG_MS / 1000} s`)), HANG_MS);
      });
      try {
        await Promise.race([r, hang]);
      } finally {
        clearTimeout(timer);
      }
    }
  } catch (e) {
    return e ?? new Error('undefined thrown');
  }
  return escaped;
}

/** The kind of error and the place it was raised (for a broken invariant, the check that found it), not the values in its message. */
function crashKey(e: unknown): string {
  const stack = e instanceof Error ? (e.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at ')) : [];
  return (e instanceof Error ? e.name : typeof e) + stack.slice(0, 2).join('\n');
}

/**
 * A smaller input that fails the same way (the same crashKey): parts of it taken out, halves
 * first, then smaller pieces, as long as the failure stays; at most `tries` runs.
 */
async function minimize(target: FuzzTarget, input: Uint8Array, key: string, tries = 1000): Promise<Uint8Array> {
  let best = input;
  for (let size = best.length >> 1; size >= 1 && tries > 0; size >>= 1) {
    for (let at = 0; at + size <= best.length && tries > 0; ) {
      const cand = new Uint8Array(best.length - size);
      cand.set(best.subarray(0, at));
      cand.set(best.subarray(at + size), at);
      tries--;
      const e = await runOnce(target, cand);
      if (e !== undefined && crashKey(e) === key) best = cand;
      else at += size;
    }
  }
  return best;
}

export async function fuzz(target: FuzzTarget, o: FuzzOptions): Promise<FuzzReport> {
  guardProcess();
  const rng = new Rng(o.seed);
  const mutator = new Mutator(rng, target.maxLength, target.dictionary, codeLiterals());
  const map = new FeatureMap();
  const corpus: Uint8Array[] = [];
  const crashes: Crash[] = [];
  const crashKeys = new Set<string>();
  const corpusDir = join(o.corpusRoot, target.name);
  const regressionDir = join(o.regressionsRoot, target.name);
  let runs = 0;
  let added = 0;

  const crashed = async (found: Uint8Array, e: unknown): Promise<void> => {
    // One report per distinct failure.
    const key = crashKey(e);
    if (crashKeys.has(key)) return;
    crashKeys.add(key);
    const input = await minimize(target, found, key);
    const error = describe((await runOnce(target, input)) ?? e);
    let file: string | null = null;
    if (o.save) {
      mkdirSync(regressionDir, { recursive: true });
      file = join(regressionDir, 'crash-' + inputName(input));
      writeFileSync(file, input);
    }
    crashes.push({ error, input: Buffer.from(input.subarray(0, 256)).toString('hex'), length: input.length, found: found.length, file });
  };

  /** Runs an input; keeps it when it reached something new (and saves it, unless `known`: a seed or a file already). */
  const run = async (input: Uint8Array, known: boolean): Promise<'kept' | 'crashed' | 'nothing new'> => {
    map.reset();
    const e = await runOnce(target, input);
    runs++;
    if (e !== undefined) {
      await crashed(input, e);
      return 'crashed';
    }
    if (map.collect() === 0 || (o.feedback === false && !known)) return 'nothing new';
    corpus.push(input);
    if (known) return 'kept';
    added++;
    if (o.save) {
      mkdirSync(corpusDir, { recursive: true });
      writeFileSync(join(corpusDir, inputName(input)), input);
    }
    return 'kept';
  };

  const t0 = performance.now();
  // The seeds, the regressions, then the corpus, smallest first. With `save`, a corpus file that
  // reaches nothing the inputs before it did is deleted, so that the corpus stays the
  // smallest set that reaches what it reaches (libFuzzer's merge, greedily).
  const known = [...target.seeds(), ...readInputs(regressionDir).map((f) => f.data)];
  for (const s of known) await run(s.subarray(0, target.maxLength), true);
  const files = readInputs(corpusDir).sort((a, b) => a.data.length - b.data.length || (a.name < b.name ? -1 : 1));
  let dropped = 0;
  for (const f of files) {
    if ((await run(f.data.subarray(0, target.maxLength), true)) !== 'nothing new' || !o.save) continue;
    unlinkSync(join(corpusDir, f.name));
    dropped++;
  }
  const seeds = known.length + files.length;
  if (corpus.length === 0) corpus.push(new Uint8Array(0));

  const runBudget = o.runs ?? Infinity;
  const end = o.timeMs === undefined ? Infinity : t0 + o.timeMs;
  let nextProgress = performance.now() + 10_000;
  for (let i = 0; i < runBudget && crashes.length < o.maxCrashes; i++) {
    // Recent inputs are favoured a little: they are the frontier.
    const pick = rng.chance(2) ? corpus.length - 1 - rng.below(Math.min(corpus.length, 16)) : rng.below(corpus.length);
    await run(mutator.mutate(corpus[pick], corpus[rng.below(corpus.length)]), false);
    if ((i & 63) === 0) {
      const now = performance.now();
      if (now >= end) break;
      if (o.progress && now >= nextProgress) {
        nextProgress = now + 10_000;
        o.progress(`${target.name}: ${runs} runs, ${Math.round((runs * 1000) / (now - t0))}/s, ${map.edges} edges, ${map.features} features, corpus ${corpus.length}, crashes ${crashes.length}`);
      }
    }
  }
  const ms = performance.now() - t0;
  return {
    target: target.name,
    runs,
    ms: Math.round(ms),
    execPerSec: Math.round((runs * 1000) / Math.max(1, ms)),
    edges: map.edgesIn(target.covers),
    files: target.covers.map((file) => ({ file, ...map.edgesIn([file]) })),
    allEdges: { reached: map.edges, total: edgeCount() },
    features: map.features,
    seeds,
    corpus: corpus.length,
    added,
    dropped,
    crashes,
  };
}
