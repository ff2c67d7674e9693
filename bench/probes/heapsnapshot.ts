// What the JS heap holds per client: two V8 heap snapshots of the server (before the clients
// and with them), grouped by constructor (objects, closures) or by kind (arrays, strings,
// code...), and the difference divided by the number of clients.
//
//   node dist/js/bench/probes/heapsnapshot.js BEFORE.heapsnapshot AFTER.heapsnapshot CLIENTS

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapGroup {
  name: string;
  /** Per client: objects and bytes (self size). */
  count: number;
  bytes: number;
}

function groups(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]];
    const name = s.strings[s.nodes[i + iName]];
    const key = type === 'object' || type === 'closure' || type === 'native' ? (type === 'closure' ? `${name || '(anonymous)'}()` : name) : `(${type})`;
    const g = out.get(key);
    const size = s.nodes[i + iSize];
    if (g) {
      g.count++;
      g.bytes += size;
    } else out.set(key, { count: 1, bytes: size });
  }
  return out;
}

/** The largest differences between two snapshots, per client. */
export function perClient(before: string, after: string, clients: number, top = 15): { total: number; groups: HeapGroup[] } {
  const a = groups(before);
  const b = groups(after);
  const rows: HeapGroup[] = [];
  let total = 0;
  for (const [name, g] of b) {
    const o = a.get(name) ?? { count: 0, bytes: 0 };
    const bytes = (g.bytes - o.bytes) / clients;
    total += bytes;
    if (bytes > 0) rows.push({ name, count: Math.round(((g.count - o.count) / clients) * 100) / 100, bytes: Math.round(bytes * 10) / 10 });
  }
  rows.sort((x, y) => y.bytes - x.bytes);
  return { total: Math.round(total), groups: rows.slice(0, top) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [before, after, n] = process.argv.slice(2);
  if (!before || !after || !n) {
    process.stderr.write('usage: node dist/js/bench/probes/heapsnapshot.js BEFORE.heapsnapshot AFTER.heapsnapshot CLIENTS\n');
    process.exit(2);
  }
  const r = perClient(before, after, Number(n), 25);
  console.log(`JS heap per client: ${r.total} B`);
  for (const g of r.groups) console.log(`${String(g.bytes).padStart(8)} B  ${String(g.count).padStart(6)} x  ${g.name}`);
}
