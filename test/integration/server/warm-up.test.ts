// The start-up warm-up (server/src/data/warm-up.ts): it runs before the server listens, is
// bounded, leaves nothing behind (handles, leases, counters, log lines but its own), and a
// warm-up that fails or takes too long is logged while the server starts anyway.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import type { Level, Logger } from '../../../common/log.js';
import { createServer, VpnServer } from '../../../server/src/server.js';
import { internals } from '../../../server/src/internals.js';
import { resolveConfig } from '../../../server/src/config/config.js';
import { WARM_UP_TIMEOUT_MS, warmDataPath, warmUpOptions } from '../../../server/src/data/warm-up.js';
import { RawClient, extRequest, ip, ipPacket, waitFor } from '../../support/server-net.js';
import { CliServer } from '../../support/server-cli.js';

type Line = { level: Level; event: string; fields: Record<string, unknown> };

function recorder(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  return { lines, log: (level, event, fields = {}) => void lines.push({ level, event, fields }) };
}

/** This process's sockets, listeners and timers, counted by kind (not its stdio pipes, busy as the log is written). */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) if (/TCP|Timeout|Immediate/.test(r)) out[r] = (out[r] ?? 0) + 1;
  return out;
}

const same = (a: Record<string, number>, b: Record<string, number>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** Listens `options` with and without the warm-up; returns what each left open once listening, and the warm one. */
async function listenBoth(logger: Logger) {
  const base = { tun: false as const, host: '127.0.0.1', port: 0 };
  const cold = createServer(base);
  await cold.listen();
  const coldResources = resources();
  await cold.close();
  const warm = createServer({ ...base, warmUp: true, logger });
  return { coldResources, warm };
}

test('warmUp: the warm-up runs before listening, bounded, and leaves no handle, lease, counter or log line behind', async () => {
  const log = recorder();
  const { coldResources, warm } = await listenBoth(log);
  try {
    const t0 = Date.now();
    await warm.listen();
    const took = Date.now() - t0;
    assert.equal(
      log.lines.map((l) => l.event),
      ['tun_disabled', 'warm_up', 'listening'],
      'one line of its own, before listening',
    );
    const w = log.lines[1];
    assert.is(w.level, 'info');
    const { ms, cpu_ms, packets } = w.fields as { ms: number; cpu_ms: number; packets: number };
    assert.ok(ms > 0 && ms < WARM_UP_TIMEOUT_MS && took < WARM_UP_TIMEOUT_MS + 2000, `bounded: ${ms} ms (listen took ${took} ms)`);
    assert.ok(cpu_ms > 0, 'its CPU time is logged');
    assert.ok(packets > 1000, `a few thousand packets: ${packets}`);
    // Only the listener and the sweeper of the server itself: the throw-away servers and their clients are gone.
    await waitFor(() => same(resources(), coldResources), 2000, 'the same handles as a server listening without the warm-up', () => ({ now: resources(), cold: coldResources }));
    const i = internals(warm);
    assert.is(i.leases.inUse, 0, 'no lease');
    assert.is(i.clients.size, 0, 'no connection');
    assert.is(i.switch.size, 0, 'no address bound');
    const m = i.metrics;
    assert.equal([m.connections, m.rxPackets, m.txPackets, m.rxBytes, m.txBytes, m.keepalives, m.fragmented], [0, 0, 0, 0, 0, 0, 0], 'counters untouched');
    assert.ok(Object.values(m.drops).every((n) => n === 0), 'no drop counted');
    assert.equal(warm.clients(), []);

    // And the server works: two clients exchange a packet through it.
    const a = await RawClient.connect(warm.port);
    const b = await RawClient.connect(warm.port);
    try {
      a.write(extRequest(ip('10.0.0.2')));
      b.write(extRequest(ip('10.0.0.3')));
      await waitFor(() => i.switch.size === 2, 3000, 'both addresses bound');
      await waitFor(() => a.received > 0 && b.received > 0, 3000, 'both replies');
      const before = b.received;
      a.write(ipPacket(ip('10.0.0.2'), ip('10.0.0.3'), 84));
      await waitFor(() => b.received === before + 84, 3000, 'the packet at b');
      assert.is(m.rxPackets, 1);
      assert.is(m.connections, 2);
    } finally {
      a.destroy();
      b.destroy();
    }
  } finally {
    await warm.close();
  }
});

test('warmUp: off by default for createServer (no warm_up line)', async () => {
  const log = recorder();
  const s = createServer({ tun: false, host: '127.0.0.1', port: 0, logger: log });
  try {
    await s.listen();
    assert.not.ok(log.lines.some((l) => l.event.startsWith('warm_up')), log.lines.map((l) => l.event).join(' '));
  } finally {
    await s.close();
  }
});

test('warmUp: a warm-up whose clients cannot connect is logged as a warning, and the server starts', async () => {
  const log = recorder();
  const s = createServer({ tun: false, host: '127.0.0.1', port: 0, warmUp: true, logger: log });
  // The warm-up's clients connect through node:net's connect(): sent to a port nobody listens on.
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const realConnect = net.connect;
  (net as any).connect = (o: net.NetConnectOpts, ...rest: unknown[]) => (realConnect as any)({ ...o, port: closedPort }, ...rest);
  syncBuiltinESMExports();
  try {
    await s.listen();
  } finally {
    (net as any).connect = realConnect;
    syncBuiltinESMExports();
  }
  try {
    const failed = log.lines.find((l) => l.event === 'warm_up_failed');
    assert.ok(failed, log.lines.map((l) => l.event).join(' '));
    assert.is(failed!.level, 'warn');
    assert.match(String(failed!.fields.error), /ECONNREFUSED/);
    assert.match(String(failed!.fields.consequence), /optimised/);
    assert.ok(log.lines.some((l) => l.event === 'listening'), 'the server listens');
    assert.ok(s.port > 0);
    const c = await RawClient.connect(s.port);
    try {
      c.write(extRequest());
      await waitFor(() => c.received > 0, 3000, 'a reply from the server');
    } finally {
      c.destroy();
    }
  } finally {
    await s.close();
  }
});

test('warmDataPath: past its time limit it rejects, and closes its server and clients', async () => {
  // What the tests before left is closing still.
  await waitFor(() => same(resources(), {}), 2000, 'no socket or timer open', resources);
  const before = resources();
  const made: VpnServer[] = [];
  const cfg = resolveConfig({ tun: false });
  const err = await warmDataPath(
    (o) => {
      const s = new VpnServer(o);
      made.push(s);
      return s;
    },
    warmUpOptions(cfg),
    { pings: 1_000_000, bursts: 0, burst: 16, servers: 2 },
    300,
  ).then(
    () => null,
    (e: Error) => e,
  );
  assert.ok(err, 'rejected');
  assert.match(err!.message, /did not finish within 300 ms/);
  assert.is(made.length, 1, 'no second server after the time limit');
  await waitFor(() => same(resources(), before), 2000, 'every handle it opened closed', () => ({ now: resources(), before }));
});

test('simplevpn-server warms up by default and not with --no-warm-up; both listen', async () => {
  for (const [flags, warm] of [[[], true], [['--no-warm-up'], false]] as const) {
    const s = new CliServer(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json', ...flags]);
    try {
      await s.event('listening', 15_000);
      const i = s.events.findIndex((e) => e.event === 'warm_up');
      assert.is(i >= 0, warm, `${flags.join(' ') || 'default'}: ${s.events.map((e) => e.event).join(' ')}`);
      if (warm) assert.ok(i < s.events.findIndex((e) => e.event === 'listening'), 'before listening');
      assert.not.ok(s.events.some((e) => e.event === 'warm_up_failed'));
    } finally {
      s.kill();
    }
  }
});

test.run();
