// Section 4, the SDK: bundle sizes (dist/sdk, raw and gzip -9) and the per-packet costs
// measured by bench/fixtures/sdk-micro.ts in a process of its own, with the V8 flags that
// its allocation method needs.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT } from '../../test/support/lab.js';
import { FIXTURES } from '../netlab.js';
import { errorText } from '../util.js';
import type { Section } from './section.js';

export interface PathCost {
  nsPerPacket: number;
  heapBytesPerPacket: number;
  bufferBytesPerPacket: number;
  packets: number;
}

export interface SdkResult {
  bundles: Array<{ file: string; raw: number; gzip: number }>;
  mix?: { sizes: string; packets: number; bytes: number; chunk: number };
  framer?: PathCost;
  receive?: PathCost;
  /** The receive path fed whole packets per chunk: the cost of a packet by itself. */
  receiveAligned?: PathCost;
  send?: PathCost;
  calibration?: { heapBytesPerPacket: number; bufferBytesPerPacket: number; packets: number };
  error?: string;
}

/** The bundles build.mjs makes of the SDK core, for firmware tooling. */
const SDK_BUNDLES = ['dist/sdk/simplevpn-sdk.mjs', 'dist/sdk/simplevpn-sdk.cjs', 'dist/sdk/simplevpn-sdk.iife.js'];

// Async only for the shape every section has: the micro-benchmarks run to completion (spawnSync).
export const runSdk: Section<SdkResult> = async (ctx) => {
  ctx.log('\n4. The SDK');
  const res: SdkResult = { bundles: [] };
  for (const file of SDK_BUNDLES) {
    try {
      const buf = readFileSync(join(ROOT, file));
      res.bundles.push({ file, raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length });
    } catch (e) {
      res.error = `bundle ${file}: ${errorText(e)}`;
    }
  }
  ctx.log(`  bundles: ${res.bundles.map((b) => `${b.file.split('/').pop()} ${b.raw} B (${b.gzip} B gzip)`).join(', ')}`);
  const micro = (mode: 'time' | 'alloc', flags: string[]) => {
    const r = spawnSync(process.execPath, [...flags, join(FIXTURES, 'sdk-micro.js'), mode, ...(ctx.quick ? ['--quick'] : [])], { encoding: 'utf8', timeout: 180_000 });
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{"event":"sdk"'));
    if (!line) throw new Error(`sdk-micro ${mode} failed (exit ${r.status}): ${(r.stderr || r.stdout || r.error?.message || '').trim().slice(0, 500)}`);
    return JSON.parse(line);
  };
  try {
    const t = micro('time', []);
    const a = micro('alloc', ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256']);
    res.mix = t.mix;
    for (const k of ['framer', 'receive', 'receiveAligned', 'send'] as const) res[k] = { ...t[k], ...a[k] };
    res.calibration = a.calibration;
  } catch (e) {
    res.error = errorText(e);
    ctx.log(`  FAILED: ${res.error}`);
    return res;
  }
  for (const k of ['framer', 'receive', 'receiveAligned', 'send'] as const) {
    const c = res[k]!;
    ctx.log(`  ${k.padEnd(14)} ${c.nsPerPacket} ns/packet, ${c.heapBytesPerPacket} B heap + ${c.bufferBytesPerPacket} B buffers allocated per packet`);
  }
  ctx.log(`  (calibration: one subarray() per operation measures ${res.calibration!.heapBytesPerPacket} B)`);
  return res;
};
