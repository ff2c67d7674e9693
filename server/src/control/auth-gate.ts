// When credential checks run, so that parties who cannot authenticate cannot keep those who
// can out. A check costs scrypt (about 15 ms and 4 MiB on the thread pool); this gate bounds
// the work and shares it:
//
// - a token bucket of checks per second, server-wide: the scrypt work an attacker can cause;
// - a bounded wait: checks beyond those running wait in a queue of `queued`, at most
//   `perSource` of them (running included) from one source (an address, an IPv6 /64); when
//   the queue is full, a source with fewer waiting takes the place of the newest check of
//   the source with the most, so that many connections from a few sources cannot crowd one
//   out; a check that waited `maxWaitMs` is refused (busy) rather than kept;
// - a fair share: the next check to run is the one of the source that failed the fewest
//   checks lately (a count that halves every 5 s), so a client whose proofs hold goes ahead
//   of those guessing, however often it logs in;
// - guesses per id: after `freeFailures` failures an id gets one check at a time, each after
//   a delay that doubles per failure (from `backoffMs` up to `maxBackoffMs`); checks in
//   between are refused (throttled) without running. Unknown ids are treated the same, so
//   the answers do not tell which ids exist. Failures are forgotten `forgetMs` after the last.
//
// A proof verified before never comes here (auth.ts answers it from its cache). Pure logic:
// the check itself and the clock are the caller's.

export interface GateOptions {
  /** Checks started per second, server-wide, in bursts of `burst`. */
  rate: number;
  burst: number;
  /** Checks running at once. */
  running: number;
  /** Checks waiting, server-wide. */
  queued: number;
  /** Checks waiting or running from one source. */
  perSource: number;
  maxWaitMs: number;
  freeFailures: number;
  backoffMs: number;
  maxBackoffMs: number;
  forgetMs: number;
  /** Ids whose failures are remembered at most (the least recently tried are forgotten first). */
  ids: number;
}

export const GATE_DEFAULTS: GateOptions = {
  rate: 50,
  burst: 50,
  running: 2,
  queued: 64,
  perSource: 4,
  maxWaitMs: 5000,
  freeFailures: 5,
  backoffMs: 1000,
  maxBackoffMs: 300_000,
  forgetMs: 900_000,
  ids: 10_000,
};

/** How a check ended: the proof holds, or not, or it never ran (no room, or its id is throttled). */
export type Outcome = 'ok' | 'failed' | 'busy' | 'throttled';

interface Waiting {
  id: string;
  src: Source;
  at: number;
  check: () => Promise<boolean>;
  done: (o: Outcome) => void;
}

interface Source {
  key: string;
  queue: Waiting[];
  /** Checks of this source running now. */
  active: number;
  /** Checks failed lately (decaying), as of `at`. */
  score: number;
  at: number;
  /** When a check of this source last started (ms; 0: never). */
  served: number;
}

interface IdState {
  failures: number;
  /** Checks of this id waiting or running. */
  inflight: number;
  last: number;
  /** No check of this id before then. */
  until: number;
}

const HALF_LIFE_MS = 5000;

export class AuthGate {
  private readonly o: GateOptions;
  private readonly sources = new Map<string, Source>();
  private readonly idStates = new Map<string, IdState>();
  private waiting = 0;
  private running = 0;
  private tokens: number;
  private refilled: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private swept: number;

  constructor(
    options: Partial<GateOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.o = { ...GATE_DEFAULTS, ...options };
    this.tokens = this.o.burst;
    this.refilled = this.swept = now();
  }

  /** Checks waiting or running. */
  get pending(): number {
    return this.waiting + this.running;
  }

  /** Failures of `id` lately, and how long (ms) until its next check may run. */
  guesses(id: string): { failures: number; retryInMs: number } {
    const s = this.idState(id, this.now(), false);
    return s ? { failures: s.failures, retryInMs: Math.max(0, s.until - this.now()) } : { failures: 0, retryInMs: 0 };
  }

  /** Runs `check` (true: the proof holds) for `id` from `source` when its turn comes. */
  submit(source: string, id: string, check: () => Promise<boolean>): Promise<Outcome> {
    const now = this.now();
    if (!this.mayRun(id, now)) return Promise.resolve('throttled');
    let src = this.sources.get(source);
    if (src === undefined) this.sources.set(source, (src = { key: source, queue: [], active: 0, score: 0, at: now, served: 0 }));
    if (src.active + src.queue.length >= this.o.perSource) return Promise.resolve('busy');
    if (this.waiting >= this.o.queued && !this.makeRoom(src, now)) return Promise.resolve('busy');
    return new Promise((done) => {
      src.queue.push({ id, src, at: now, check, done });
      this.waiting++;
      this.idState(id, now, true)!.inflight++;
      this.pump();
    });
  }

  /** Refuses everything waiting and stops the timer (the server is closing). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const s of this.sources.values()) for (const w of s.queue.splice(0)) this.drop(w, 'busy');
  }

  /**
   * The queue is full: the newest check of the source with the most waiting (the most
   * failures lately among equals) gives way to `src`, when that source would still have
   * more waiting than `src`, or as many but clearly more failures lately.
   */
  private makeRoom(src: Source, now: number): boolean {
    let most: Source | null = null;
    let mostScore = 0;
    for (const s of this.sources.values()) {
      const n = s.queue.length;
      if (n === 0) continue;
      const score = decayed(s, now);
      if (most === null || n > most.queue.length || (n === most.queue.length && score > mostScore)) {
        most = s;
        mostScore = score;
      }
    }
    const mine = src.queue.length + 1;
    if (most === null || most === src || most.queue.length < mine || (most.queue.length === mine && mostScore < decayed(src, now) + 1)) return false;
    this.drop(most.queue.pop()!, 'busy');
    return true;
  }

  /** A waiting check that will not run. */
  private drop(w: Waiting, o: Outcome): void {
    this.waiting--;
    const s = this.idStates.get(w.id);
    if (s && s.inflight > 0) s.inflight--;
    w.done(o);
  }

  /** Starts waiting checks while there is room and tokens, fairest source first. */
  private pump(): void {
    const o = this.o;
    const now = this.now();
    this.tokens = Math.min(o.burst, this.tokens + ((now - this.refilled) * o.rate) / 1000);
    this.refilled = now;
    while (this.waiting > 0 && this.running < o.running) {
      const src = this.fairest(now);
      if (src === null) break; // everything waiting was too old, and is refused
      if (this.tokens < 1) {
        this.wake(Math.ceil(((1 - this.tokens) * 1000) / o.rate));
        break;
      }
      const w = src.queue.shift()!;
      this.waiting--;
      const st = this.idState(w.id, now, true)!;
      // Its id went into backoff while it waited: refused, as it would be now.
      if (st.failures >= o.freeFailures && (now < st.until || st.inflight > 1)) {
        st.inflight--;
        w.done('throttled');
        continue;
      }
      this.tokens--;
      this.running++;
      src.active++;
      src.served = now;
      const finish = (ok: boolean) => {
        this.running--;
        src.active--;
        if (!ok) {
          const t = this.now();
          src.score = decayed(src, t) + 1;
          src.at = t;
        }
        this.record(w.id, ok);
        w.done(ok ? 'ok' : 'failed');
        this.pump();
      };
      w.check().then(finish, () => finish(false));
    }
    if (now - this.swept >= 1000) this.sweep(now);
  }

  /**
   * The source whose check goes next: the fewest failures lately, then the one served
   * longest ago (a newcomer first), then the one waiting longest. Refuses checks that
   * waited too long.
   */
  private fairest(now: number): Source | null {
    let best: Source | null = null;
    let bestScore = 0;
    for (const s of this.sources.values()) {
      while (s.queue.length > 0 && now - s.queue[0].at >= this.o.maxWaitMs) this.drop(s.queue.shift()!, 'busy');
      if (s.queue.length === 0) continue;
      const score = decayed(s, now);
      if (best === null || score < bestScore || (score === bestScore && (s.served < best.served || (s.served === best.served && s.queue[0].at < best.queue[0].at)))) {
        best = s;
        bestScore = score;
      }
    }
    return best;
  }

  private wake(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** May a check of `id` start now? Not while it is in backoff, nor beside another of its checks once it has failed enough. */
  private mayRun(id: string, now: number): boolean {
    const s = this.idState(id, now, false);
    return s === undefined || s.failures + s.inflight < this.o.freeFailures || (s.inflight === 0 && now >= s.until);
  }

  /** A check of `id` ended. */
  private record(id: string, ok: boolean): void {
    const now = this.now();
    const s = this.idState(id, now, true)!;
    if (s.inflight > 0) s.inflight--;
    if (ok) {
      s.failures = 0;
      s.until = 0;
      return;
    }
    s.failures++;
    s.last = now;
    const over = s.failures - this.o.freeFailures;
    if (over >= 0) s.until = now + Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** Math.min(over, 30));
  }

  /** The state of `id` (failures forgotten once old), created when `make`; the most recently used last in the map. */
  private idState(id: string, now: number, make: boolean): IdState | undefined {
    const m = this.idStates;
    let s = m.get(id);
    if (s !== undefined && s.inflight === 0 && now - s.last >= this.o.forgetMs) {
      m.delete(id);
      s = undefined;
    }
    if (s === undefined) {
      if (!make) return undefined;
      s = { failures: 0, inflight: 0, last: now, until: 0 };
    } else m.delete(id);
    m.set(id, s);
    if (m.size > this.o.ids) m.delete(m.keys().next().value!);
    return s;
  }

  /** Forgets sources with nothing waiting or running and hardly any failures lately. */
  private sweep(now: number): void {
    this.swept = now;
    for (const [k, s] of this.sources) if (s.queue.length === 0 && s.active === 0 && decayed(s, now) < 0.05) this.sources.delete(k);
  }
}

const decayed = (s: Source, now: number): number => s.score * 2 ** (-(now - s.at) / HALF_LIFE_MS);
