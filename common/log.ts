// One line per event, as `time level event key=value ...` or as JSON lines, so an operator
// can grep the text form and a collector can parse the other.

export type LogFormat = 'text' | 'json';
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | null | undefined>;

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: Level, event: string, fields?: Fields): void;
}

/**
 * Quotes a text value when it would otherwise break `key=value` parsing, and escapes
 * control characters: client-supplied names must not drive the operator's terminal.
 */
function textValue(v: unknown): string {
  const s = String(v);
  return s === '' || /[\s"=\x00-\x1f\x7f-\x9f]/.test(s) ? JSON.stringify(s).replace(/[\x7f-\x9f]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) : s;
}

export function createLogger(options: { format?: LogFormat; level?: Level; write?: (line: string) => void } = {}): Logger {
  const format = options.format ?? 'text';
  const min = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  return {
    log(level, event, fields = {}) {
      if (RANK[level] < min) return;
      const time = new Date().toISOString();
      if (format === 'json') {
        write(JSON.stringify({ time, level, event, ...fields }));
        return;
      }
      let line = `${time} ${level} ${event}`;
      for (const k in fields) {
        const v = fields[k];
        if (v !== undefined) line += ` ${k}=${textValue(v)}`;
      }
      write(line);
    },
  };
}

/** Discards everything: the default for the programmatic API. */
export const silentLogger: Logger = { log() {} };

/**
 * A budget of log lines per key: bursts of `burst`, then `rate` a second. pass() returns
 * how many lines were held back since the last one written (to report with it), or -1
 * when this one is held back too. Keys are few and fixed (events and reasons, never
 * addresses), so the map stays small.
 */
export class LogThrottle {
  private readonly keys = new Map<string, { tokens: number; at: number; held: number }>();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  pass(key: string, now: number): number {
    let k = this.keys.get(key);
    if (k === undefined) this.keys.set(key, (k = { tokens: this.burst, at: now, held: 0 }));
    k.tokens = Math.min(this.burst, k.tokens + ((now - k.at) * this.rate) / 1000);
    k.at = now;
    if (k.tokens < 1) {
      k.held++;
      return -1;
    }
    k.tokens--;
    const held = k.held;
    k.held = 0;
    return held;
  }
}
