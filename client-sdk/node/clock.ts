// The Clock seam on Node: monotonic time, so a wall-clock step never fakes a dead link.

import { performance } from 'node:perf_hooks';
import type { Clock } from '../src/types.js';

export const nodeClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
