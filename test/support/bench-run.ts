// A bench run's results as bench/report/ reads them, for the report's tests: what every run
// records (made-up code and machine), with the sections and results a test gives.
import type { BenchResults } from '../../bench/report/schema.js';

export function benchRun(parts: Partial<Omit<BenchResults, 'targets'>>): Omit<BenchResults, 'targets'> {
  return {
    version: 1,
    date: '2026-12-02T00:00:00Z',
    code: { commit: 'test', changed: [] },
    mode: 'quick',
    sections: [],
    durationS: 1,
    machine: { cpus: 2, model: 'test', memGiB: 1, kernel: 'test', node: 'test', loadavgAtStart: '0' },
    tools: {},
    notes: [],
    ...parts,
  };
}
