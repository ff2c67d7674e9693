// Reconnect delays: exponential, capped, with jitter so that a fleet of devices cut off
// by the same outage does not come back in lock step.

export class Backoff {
  private attempt = 0;

  /** `min` and `max` in ms; `random` returns [0, 1). */
  constructor(
    private readonly min: number,
    private readonly max: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The next delay: uniformly within the upper half of min * 2^attempt, capped at max. */
  next(): number {
    const cap = Math.min(this.max, this.min * 2 ** this.attempt);
    if (cap < this.max) this.attempt++;
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
