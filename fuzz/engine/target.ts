// What a fuzz target is. One file per target under fuzz/targets/, listed in
// fuzz/targets/index.ts; the fuzzer (fuzz/engine/fuzzer.ts), `npm run fuzz` (fuzz/run.ts) and
// the tests (test/unit/fuzz/) find them there.

export interface FuzzTarget {
  /** Folder name under fuzz/corpus/ and fuzz/regressions/, and --target's value. */
  readonly name: string;
  /** What it feeds where, and what it checks: one line for the report. */
  readonly about: string;
  /**
   * The files it is about (dist/js paths as in 'protocol/framer.js'): the report gives the
   * edges reached in them.
   */
  readonly covers: readonly string[];
  /**
   * Generated inputs `npm test` runs (test/unit/fuzz/), with a fixed seed: a few seconds on an
   * idle machine. A count, not a time, so that what CI runs does not depend on machine load.
   */
  readonly ciRuns: number;
  /** Inputs longer than this are not generated (a larger one in the corpus is cut). */
  readonly maxLength: number;
  /** Byte strings the mutator splices in: magic values, field values the code compares. */
  readonly dictionary: Uint8Array[];
  /** Seed inputs built in code (besides the files of fuzz/corpus/<name>/). */
  seeds(): Uint8Array[];
  /**
   * Runs one input. Throws (or rejects) only for a real failure: an exception the code under
   * test let out, or a broken invariant (InvariantError). May be async; then it must settle
   * within a bounded time, whatever the input.
   */
  run(input: Uint8Array): void | Promise<void>;
}

/** A property the code under test must keep, found broken for an input. */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new InvariantError(what);
}

/** Reads an input as a sequence of small fields; past the end, every read gives 0. */
export class InputReader {
  pos = 0;
  constructor(readonly data: Uint8Array) {}
  get left(): number {
    return this.data.length - this.pos;
  }
  u8(): number {
    return this.pos < this.data.length ? this.data[this.pos++] : 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  /** The next `n` bytes (fewer at the end), as a view. */
  bytes(n: number): Uint8Array {
    const end = Math.min(this.data.length, this.pos + n);
    const b = this.data.subarray(this.pos, end);
    this.pos = end;
    return b;
  }
  rest(): Uint8Array {
    return this.bytes(this.left);
  }
}
