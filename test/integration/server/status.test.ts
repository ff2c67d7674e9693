// The status listener: /metrics in Prometheus text format, /clients as JSON, everything else
// 404, via createServer({ status }). The CLI side is in server-cli.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveConfig } from '../../../server/src/config/config.js';
import { createServer } from '../../../server/src/server.js';
import { type Harness, freePort, ip, ipPacket, nextEvent, sleep, waitFor, withServer } from '../../support/server-net.js';

async function get(h: Harness, path: string, method = 'GET') {
  const addr = h.server.statusAddress;
  assert.ok(addr, 'status listener address');
  const res = await fetch(`http://${addr}${path}`, { method, signal: AbortSignal.timeout(3000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Samples of a Prometheus text exposition: "name{labels}" -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})?) (-?[0-9.e+]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error('not a Prometheus sample line: ' + JSON.stringify(line));
    out.set(m[1], Number(m[2]));
  }
  return out;
}

async function withStatus(opts: Record<string, unknown>, fn: (h: Harness) => Promise<void>) {
  const port = await freePort();
  await withServer({ ...opts, status: `127.0.0.1:${port}` }, fn);
}

test('status listener: logs status_listening with its loopback address', async () => {
  const port = await freePort();
  const events: any[] = [];
  const logger = { log: (_l: any, e: string, f: any) => events.push({ e, ...f }) };
  await withServer({ status: `127.0.0.1:${port}`, logger }, async (h) => {
    assert.is(h.server.statusAddress, `127.0.0.1:${port}`);
    assert.equal(events.filter((x) => x.e === 'status_listening').map((x) => x.address), [`127.0.0.1:${port}`]);
  });
});

test('status listener is off unless asked for; a bare PORT means loopback', async () => {
  await withServer({}, async (h) => {
    assert.is(h.server.statusAddress, null);
  });
  assert.equal(resolveConfig({ status: '9100' }).status, { host: '127.0.0.1', port: 9100 });
  assert.equal(resolveConfig({ status: '[::1]:9100' }).status, { host: '::1', port: 9100 });
  assert.is(resolveConfig({}).status, null);
});

test('status port 0 (any free port) is accepted, and the bound address is reported', async () => {
  const server = createServer({ tun: false, host: '127.0.0.1', port: 0, status: '127.0.0.1:0' });
  try {
    const ev = nextEvent<any>(server, 'status_listening', 3000);
    await server.listen();
    const addr = (await ev).address as string;
    assert.match(addr, /^127\.0\.0\.1:\d+$/);
    assert.is.not(addr, '127.0.0.1:0');
    assert.is(server.statusAddress, addr);
  } finally {
    await server.close();
  }
});

test('/metrics: Prometheus text with sessions, addresses, bytes and packets, drops and refusals by reason', async () => {
  await withStatus({ subnet: '10.11.0.0/24' }, async (h) => {
    const a = h.sdk({ name: 'a', address: '10.11.0.10' });
    const b = h.sdk({ name: 'b' });
    await a.ready();
    await b.ready();
    const pkts = [ipPacket(a.address, b.address, 100), ipPacket(a.address, b.address, 60), ipPacket(a.address, ip('10.11.0.99'), 40)];
    for (const p of pkts) a.client.send(p);
    const spoof = await h.raw();
    await spoof.requestSeed();
    spoof.write(ipPacket(a.address, b.address, 50));
    const refused = h.sdk({ address: '10.11.0.10' }).start(); // in use
    await refused.waitState('down');
    await waitFor(() => b.packets.length === 2 && h.metrics.drops.spoofed_source === 1 && h.sessions === 3, 3000, 'traffic, drop and refusal');
    const r = await get(h, '/metrics');
    assert.is(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    const s = samples(r.body);
    const must = (k: string, v: number) => assert.is(s.get(k), v, k);
    must('simplevpn_sessions', 3);
    must('simplevpn_addresses_in_use', 3);
    must('simplevpn_addresses_free', 253 - 3);
    must('simplevpn_received_packets_total', 3);
    must('simplevpn_received_bytes_total', 200);
    must('simplevpn_sent_packets_total', 2);
    must('simplevpn_sent_bytes_total', 160);
    must('simplevpn_dropped_packets_total{reason="spoofed_source"}', 1);
    must('simplevpn_dropped_packets_total{reason="no_route"}', 1);
    for (const reason of ['unassigned', 'queue_full', 'tun_full', 'not_ipv4']) must(`simplevpn_dropped_packets_total{reason="${reason}"}`, 0);
    must('simplevpn_refusals_total{reason="address_in_use"}', 1);
    must('simplevpn_connections_total', 4);
    must('simplevpn_tun_up', 0);
    for (const name of ['sessions', 'addresses_in_use', 'addresses_free', 'received_bytes_total', 'dropped_packets_total', 'refusals_total']) {
      assert.match(r.body, new RegExp(`^# HELP simplevpn_${name} .+$`, 'm'));
      assert.match(r.body, new RegExp(`^# TYPE simplevpn_${name} (gauge|counter)$`, 'm'));
    }
    assert.ok(r.body.endsWith('\n'));
  });
});

test('/metrics counts disconnects by reason and follows sessions going away', async () => {
  await withStatus({ subnet: '10.11.0.0/24' }, async (h) => {
    const c = await h.raw();
    await c.requestSeed();
    c.write(Uint8Array.from([0x70, 0, 0, 0]));
    await c.waitClosed();
    await waitFor(() => h.sessions === 0, 3000, 'session end');
    const s = samples((await get(h, '/metrics')).body);
    assert.is(s.get('simplevpn_sessions'), 0);
    assert.is(s.get('simplevpn_addresses_in_use'), 0);
    assert.is(s.get('simplevpn_disconnects_total{reason="malformed_frame"}'), 1);
  });
});

test('/clients: JSON with address, remote, connected since, bytes and last seen for each client', async () => {
  await withStatus({ subnet: '10.11.0.0/24' }, async (h) => {
    const t0 = Date.now();
    const a = h.sdk({ name: 'unit-a' });
    const b = h.sdk();
    await a.ready();
    await b.ready();
    await h.raw(); // connected, has not asked yet: listed with address null
    await waitFor(() => h.sessions === 3, 3000, 'three sessions');
    a.client.send(ipPacket(a.address, b.address, 100));
    await waitFor(() => b.packets.length === 1, 3000, 'delivery');
    const r = await get(h, '/clients');
    assert.is(r.status, 200);
    assert.match(r.type, /^application\/json/);
    const list = JSON.parse(r.body) as any[];
    assert.is(list.length, 3);
    const ea = list.find((c) => c.name === 'unit-a');
    assert.ok(ea, 'the named client: ' + r.body);
    assert.is(ip(ea.address), a.address);
    assert.match(ea.remote, /^127\.0\.0\.1:\d+$/);
    assert.is(ea.protocol, 'simplevpn');
    for (const k of ['connectedSince', 'lastSeen']) {
      const t = Date.parse(ea[k]);
      assert.ok(Number.isFinite(t) && new Date(t).toISOString() === ea[k], `${k} is an ISO time: ${ea[k]}`);
      assert.ok(t >= t0 - 1000 && t <= Date.now() + 1000, `${k} is now-ish`);
    }
    assert.ok(Date.parse(ea.lastSeen) >= Date.parse(ea.connectedSince));
    assert.is(ea.rxBytes, 100, 'data bytes from a');
    assert.is(ea.rxPackets, 1);
    const eb = list.find((c) => c.address !== null && ip(c.address) === b.address);
    assert.is(eb.txBytes, 100, 'data bytes to b');
    assert.is(eb.txPackets, 1);
    const er = list.find((c) => c.address === null);
    assert.ok(er, 'a connection without an address is listed with address null');
  });
});

test('unknown paths are 404, other methods 405, HEAD and query strings work', async () => {
  await withStatus({}, async (h) => {
    assert.is((await get(h, '/')).status, 404);
    assert.is((await get(h, '/metricsx')).status, 404);
    assert.is((await get(h, '/../etc/passwd')).status, 404);
    assert.is((await get(h, '/metrics', 'POST')).status, 405);
    assert.is((await get(h, '/clients', 'DELETE')).status, 405);
    const head = await get(h, '/metrics', 'HEAD');
    assert.is(head.status, 200);
    assert.is(head.body, '');
    assert.is((await get(h, '/metrics?name[]=x')).status, 200);
  });
});

test('closing the server closes the status listener', async () => {
  const port = await freePort();
  const server = createServer({ tun: false, host: '127.0.0.1', port: 0, status: `127.0.0.1:${port}` });
  await server.listen();
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) });
  assert.is(res.status, 200);
  await res.text();
  await server.close();
  await sleep(20);
  let refused = false;
  try {
    await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
  } catch {
    refused = true;
  }
  assert.ok(refused, 'nothing listens after close()');
});

test.run();
