// Summarises a V8 .cpuprofile (node --cpu-prof): time by kind (idle, GC, native, JS of the
// app, JS of Node itself) and the functions with the most self time, with their inclusive
// time. Functions in the bundled CLIs (dist/bin/*.js) are named with the source module that
// esbuild marks in the bundle ("// server/src/session.ts"), so a reader finds them.
//
//   node dist/js/bench/probes/cpuprofile.js FILE.cpuprofile [--top N]

import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { profileMarkdown } from '../report/markdown.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  /** Source module (or Node internal module) and line. */
  where: string;
  selfMs: number;
  /** Share of the process's busy (non-idle) time. */
  selfPct: number;
  totalPct: number;
}

export interface ProfileSummary {
  file: string;
  /** The whole life of the process (start-up and the idle time around the workload too). */
  wallMs: number;
  busyMs: number;
  /** Share of busy time (wall minus idle) by kind: gc, program (VM and native code with no
   * JS on the stack), native (C++ bindings called from JS: socket and tun reads and writes,
   * their system calls included), app (our JS), node (Node's own JS: streams, net, timers). */
  kinds: Record<'gc' | 'program' | 'native' | 'app' | 'node', number>;
  top: FunctionTime[];
}

const SPECIAL = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

// Bundle line -> source module, from esbuild's "// path/to/module.ts" markers.
const moduleMaps = new Map<string, Array<[number, string]>>();
function sourceModule(url: string, line: number): string | null {
  if (!url.startsWith('file://')) return null;
  let marks = moduleMaps.get(url);
  if (!marks) {
    marks = [];
    try {
      const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
      for (let i = 0; i < lines.length; i++) {
        const m = /^\/\/ ((?:[\w.-]+\/)*[\w.-]+\.(?:ts|js|mjs))$/.exec(lines[i]);
        if (m) marks.push([i, m[1]]);
      }
    } catch {}
    moduleMaps.set(url, marks);
  }
  let found: string | null = null;
  for (const [l, mod] of marks) {
    if (l > line) break;
    found = mod;
  }
  return found;
}

function kindOf(f: CallFrame): keyof ProfileSummary['kinds'] | 'idle' {
  if (f.functionName === '(idle)') return 'idle';
  if (f.functionName === '(garbage collector)') return 'gc';
  if (f.functionName === '(program)' || f.functionName === '(root)') return 'program';
  if (!f.url) return 'native';
  if (f.url.startsWith('node:')) return 'node';
  return 'app';
}

function where(f: CallFrame): string {
  if (!f.url) return 'native';
  if (f.url.startsWith('node:')) return `${f.url}:${f.lineNumber + 1}`;
  const mod = sourceModule(f.url, f.lineNumber);
  const file = f.url.replace(/^file:\/\/.*?\/(dist\/)/, '$1');
  return mod ? `${mod} (${file.split('/').pop()}:${f.lineNumber + 1})` : `${file}:${f.lineNumber + 1}`;
}

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const key = (f: CallFrame) => `${f.functionName}|${f.url}|${f.lineNumber}|${f.columnNumber}`;
  // Sample i lasts until sample i+1; the last one until the profile's end.
  const n = p.samples.length;
  const stamps = new Array<number>(n);
  let t = p.startTime;
  for (let i = 0; i < n; i++) stamps[i] = t += p.timeDeltas[i] ?? 0;
  const self = new Map<string, { f: CallFrame; us: number }>();
  const incl = new Map<string, number>();
  const kinds: Record<keyof ProfileSummary['kinds'] | 'idle', number> = { idle: 0, gc: 0, program: 0, native: 0, app: 0, node: 0 };
  let wall = 0;
  for (let i = 0; i < n; i++) {
    const dur = Math.max(0, (i + 1 < n ? stamps[i + 1] : p.endTime) - stamps[i]);
    wall += dur;
    const node = byId.get(p.samples[i]);
    if (!node) continue;
    const f = node.callFrame;
    kinds[kindOf(f)] += dur;
    const k = key(f);
    const s = self.get(k);
    if (s) s.us += dur;
    else self.set(k, { f, us: dur });
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      const kk = key(cf);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dur);
    }
  }
  const busy = wall - kinds.idle || 1;
  const rows = [...self.entries()]
    .filter(([, v]) => v.f.functionName !== '(idle)')
    .sort((a, b) => b[1].us - a[1].us)
    .slice(0, top)
    .map(([k, v]) => ({
      name: v.f.functionName || '(anonymous)',
      where: SPECIAL.has(v.f.functionName) ? '' : where(v.f),
      selfMs: Math.round(v.us / 100) / 10,
      selfPct: Math.round((1000 * v.us) / busy) / 10,
      totalPct: Math.round((1000 * (incl.get(k) ?? v.us)) / busy) / 10,
    }));
  const share = (x: number) => Math.round((1000 * x) / busy) / 10;
  return {
    file,
    wallMs: Math.round(wall / 1000),
    busyMs: Math.round(busy / 1000),
    kinds: {
      gc: share(kinds.gc),
      program: share(kinds.program),
      native: share(kinds.native),
      app: share(kinds.app),
      node: share(kinds.node),
    },
    top: rows,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 15;
  const files = args.filter((a, i) => a !== '--top' && (ti < 0 || i !== ti + 1));
  if (!files.length) {
    process.stderr.write('usage: node dist/js/bench/probes/cpuprofile.js FILE.cpuprofile... [--top N]\n');
    process.exit(2);
  }
  for (const f of files) console.log(profileMarkdown(f, summarizeProfile(f, top)) + '\n');
}
