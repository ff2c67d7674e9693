// The scale section's report: the assignments/s row names both generators and the bare
// node:net server's rate under each, judges the best of simplevpn's figures, and gives the
// ratio against the bare server (the C generator's when it ran); markdown lists every round.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { markdown } from '../../../bench/report/markdown.js';
import { judge } from '../../../bench/report/targets.js';
import type { Burst, ScaleResult } from '../../../bench/sections/scale.js';
import { benchRun } from '../../support/bench-run.js';

const burst = (rate: number, us: number): Burst => ({ assignmentsPerSecond: rate, failed: 0, serverCpuUs: us, serverCpu: 1, generatorCpu: 0.4 });

function scale(native?: ScaleResult['native']): ScaleResult {
  return {
    clients: 10000,
    processes: 1,
    window: 512,
    assigned: 10000,
    failed: 0,
    errors: {},
    assignSeconds: 5,
    assignmentsPerSecond: 2000,
    assignCpu: 0.5,
    memory: null,
    hold: null,
    background: null,
    isolated: true,
    reference: { clients: 10000, rssPerClient: 3000, heapPerClient: 960, assignmentsPerSecond: 4000 },
    native,
  };
}

const results = (sc: ScaleResult) => benchRun({ sections: ['scale'], scale: sc });

const row = (sc: ScaleResult) => judge(results(sc)).find((t) => t.id === 'scale-assign')!;

test('with the C generator: both generators and the bare server under each, ratio against the bare server under the C generator', () => {
  const t = row(scale({ clients: 10000, window: 512, server: [burst(5000, 200), burst(6000, 185)], floor: [burst(8500, 124), burst(8000, 130)] }));
  assert.is(t.status, 'missed');
  assert.match(t.measured, 'Node generator: 2000/s');
  assert.match(t.measured, 'bare node:net server 4000/s');
  assert.match(t.measured, 'C generator (10000 clients, best of 2): 6000/s, bare node:net server 8500/s');
  assert.match(t.measured, '185 µs vs 124 µs');
  assert.is(t.ratio, '0.71x the bare server');
});

test('judged on the best figure: met when the C generator reaches the target', () => {
  assert.is(row(scale({ clients: 10000, window: 512, server: [burst(10500, 90)], floor: [burst(12000, 80)] })).status, 'met');
});

test('without the C generator: the Node generator against the bare server', () => {
  const t = row(scale({ clients: 10000, window: 512, server: [], floor: [], error: 'no C generator: cc exited 1' }));
  assert.is(t.ratio, '0.50x the bare server');
  assert.not.match(t.measured, 'C generator');
});

test('markdown lists each round of both servers', () => {
  const r = results(scale({ clients: 10000, window: 512, server: [burst(5000, 200), burst(6000, 185)], floor: [burst(8500, 124), burst(8000, 130)] }));
  const md = markdown({ ...r, targets: judge(r) });
  assert.match(md, 'round 2: assignments/s and server CPU per assignment, simplevpn | 6000/s, 185 µs');
  assert.match(md, '| the same, bare node:net server | 8000/s, 130 µs');
});

test.run();
