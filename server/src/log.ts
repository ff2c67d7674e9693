// One line per event, as `time level event key=value ...` or as JSON lines, so an operator
// can grep the text form and a collector can parse the other.

export type LogFormat = 'text' | 'json';
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | null | undefined>;

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: Level, event: string, fields?: Fields): void;
}

/** Quotes a text value only when it would otherwise break `key=value` parsing. */
function textValue(v: unknown): string {
  const s = String(v);
  return s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
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
 * At most one line per `ms` for each key. pass() returns how many lines were held back
 * since the last one written (to report with it), or -1 when this one is held back too.
 * Keys are few and fixed (reasons, not addresses), so the map stays small.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; held: number }>();
  constructor(private readonly ms: number) {}

  pass(key: string, now: number): number {
    const l = this.last.get(key);
    if (l && now - l.at < this.ms) {
      l.held++;
      return -1;
    }
    const held = l ? l.held : 0;
    this.last.set(key, { at: now, held: 0 });
    return held;
  }
}
