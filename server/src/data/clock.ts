// The times a session keeps (when it connected, when it last sent anything, when its
// unfinished frame began), as milliseconds since this module loaded. Date.now() is beyond
// 2^31, so V8 would keep each such field as a heap number of its own (16 bytes, and a
// pointer); a small integer sits in the object itself. Past 24.8 days of uptime the values
// outgrow small integers and V8 goes back to heap numbers: memory as before, nothing else.

/** Date.now() at the module's start, less one: no time read from tick() is 0, which callers keep for "none". */
const EPOCH = Date.now() - 1;

/** Largest small integer (31 bits and sign, on 64-bit V8 without pointer compression, as Node builds it). */
const SMALL = 0x7fffffff;

/**
 * Now, in the sessions' milliseconds. `| 0` makes it an integer for V8 (the difference of two
 * doubles is a heap number even when it is whole), as long as it fits.
 */
export function tick(): number {
  const t = Date.now() - EPOCH;
  return t <= SMALL ? t | 0 : t;
}

/** A time from tick() as Date.now() would have said it. */
export const wallTime = (t: number): number => t + EPOCH;

/** A time as Date.now() says it, in the sessions' milliseconds. */
export function fromWall(ms: number): number {
  const t = ms - EPOCH;
  return t <= SMALL && t >= -SMALL ? t | 0 : t;
}
