// The mutator: libFuzzer's kinds of mutation (erase, insert, repeat, flip a bit, set a byte,
// shuffle, add to a big-endian integer, copy a part, cross over with another input, splice a
// dictionary word, write a value the code under test compares with), 1 to 5 stacked per new input, all drawn from a seeded generator so that a
// run with the same seed and budget makes the same inputs.

/** xoshiro128** (Math.random cannot be seeded). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = 0x9e3779b9;
    this.c = 0x243f6a88;
    this.d = 0xb7e15162;
    for (let i = 0; i < 16; i++) this.next();
  }
  /** A 32-bit unsigned integer. */
  next(): number {

    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** Values that sit on boundaries: as single bytes and as 16-bit big-endian fields. */
const INTERESTING_8 = [0, 1, 2, 4, 5, 6, 15, 16, 20, 32, 40, 64, 0x40, 0x45, 0x46, 0x4f, 0x60, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16 = [0, 1, 19, 20, 21, 24, 40, 60, 64, 68, 128, 255, 256, 576, 1280, 1499, 1500, 1501, 4096, 32767, 32768, 65000, 65534, 65535];

export class Mutator {
  /**
   * `literals`: integer values of the code under test (coverage.ts, codeLiterals), written
   * into inputs as bytes or 16-bit fields: the stand-in for libFuzzer's traced comparisons.
   */
  constructor(
    private readonly rng: Rng,
    private readonly maxLength: number,
    private readonly dictionary: Uint8Array[],
    private readonly literals: readonly number[] = [],
  ) {}

  /** A new input from `base`, with `other` (another corpus input) for cross-over. */
  mutate(base: Uint8Array, other: Uint8Array): Uint8Array {
    let b = Array.from(base);
    const n = 1 + this.rng.below(5);
    for (let i = 0; i < n; i++) b = this.once(b, other);
    if (b.length > this.maxLength) b.length = this.maxLength;
    return Uint8Array.from(b);
  }

  private once(b: number[], other: Uint8Array): number[] {
    const r = this.rng;
    const at = () => r.below(b.length + 1);
    switch (r.below(13)) {
      case 0: {
        // erase a run
        if (b.length === 0) break;
        const i = r.below(b.length);
        b.splice(i, 1 + r.below(Math.min(16, b.length - i)));
        break;
      }
      case 1:
        // insert random bytes
        b.splice(at(), 0, ...Array.from({ length: 1 + r.below(8) }, () => r.below(256)));
        break;
      case 2: {
        // insert a byte repeated
        const v = r.chance(2) ? r.below(256) : INTERESTING_8[r.below(INTERESTING_8.length)];
        b.splice(at(), 0, ...new Array(1 + r.below(r.chance(8) ? 512 : 16)).fill(v));
        break;
      }
      case 3:
        // flip a bit
        if (b.length) b[r.below(b.length)] ^= 1 << r.below(8);
        break;
      case 4:
        // set a byte, to a random or a boundary value
        if (b.length) b[r.below(b.length)] = r.chance(2) ? r.below(256) : INTERESTING_8[r.below(INTERESTING_8.length)];
        break;
      case 5: {
        // add to a 16-bit big-endian field (lengths, offsets)
        if (b.length < 2) break;
        const i = r.below(b.length - 1);
        const v = r.chance(2) ? (((b[i] << 8) | b[i + 1]) + r.below(33) - 16) & 0xffff : INTERESTING_16[r.below(INTERESTING_16.length)];
        b[i] = v >> 8;
        b[i + 1] = v & 255;
        break;
      }
      case 6: {
        // shuffle a few bytes
        if (b.length < 2) break;
        const i = r.below(b.length - 1);
        const n = Math.min(b.length - i, 2 + r.below(7));
        for (let k = n - 1; k > 0; k--) {
          const j = r.below(k + 1);
          [b[i + k], b[i + j]] = [b[i + j], b[i + k]];
        }
        break;
      }
      case 7: {
        // copy a part of itself elsewhere (repeats frames)
        if (b.length === 0) break;
        const from = r.below(b.length);
        const part = b.slice(from, from + 1 + r.below(Math.min(256, b.length - from)));
        if (r.chance(2)) b.splice(at(), 0, ...part);
        else {
          const to = r.below(b.length);
          for (let k = 0; k < part.length && to + k < b.length; k++) b[to + k] = part[k];
        }
        break;
      }
      case 8:
      case 9: {
        // a dictionary word, inserted or written over
        if (this.dictionary.length === 0) break;
        const w = this.dictionary[r.below(this.dictionary.length)];
        if (r.chance(2) || b.length < w.length) b.splice(at(), 0, ...w);
        else {
          const to = r.below(b.length - w.length + 1);
          for (let k = 0; k < w.length; k++) b[to + k] = w[k];
        }
        break;
      }
      case 10: {
        // cross over: a part of another input, inserted or written over
        if (other.length === 0) break;
        const from = r.below(other.length);
        const part = Array.from(other.subarray(from, from + 1 + r.below(other.length - from)));
        if (r.chance(2)) b.splice(at(), 0, ...part);
        else b = b.slice(0, at()).concat(part);
        break;
      }
      case 11: {
        // a value the code compares with: a byte, or a big-endian 16-bit field
        const lits = this.literals;
        if (b.length === 0 || lits.length === 0) break;
        const v = lits[r.below(lits.length)];
        const i = r.below(b.length);
        if (v > 255 && i + 1 < b.length) {
          b[i] = v >> 8;
          b[i + 1] = v & 255;
        } else b[i] = v & 255;
        break;
      }
      default: {
        // truncate, or cut the head (frames split in new places)
        if (b.length === 0) break;
        if (r.chance(2)) b.length = r.below(b.length);
        else b = b.slice(r.below(b.length));
      }
    }
    return b;
  }
}
