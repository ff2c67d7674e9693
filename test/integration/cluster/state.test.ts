// One server with --state FILE (simplevpn-server, dist/bin, no tun, loopback): after kill -9
// and a restart, every client that comes back asking for its address with its lease token
// gets it, even when another client asked for that address in between; an address whose
// client does not come back is free again after the idle timeout. A corrupt file is set
// aside and said so. The clients are the SDK's, in this process, dialling through a gate
// the test closes while the server is down, so that the other client surely asks first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../../client-sdk/src/client.js';
import { tcpConnect } from '../../../client-sdk/node/tcp.js';
import { REFUSE_IN_USE } from '../../../protocol/index.js';
import { CliServer } from '../../support/server-cli.js';
import { SdkPeer, freePort, waitFor } from '../../support/server-net.js';

const N = 20;
const IDLE = 6;
let dir = '';
let port = 0;
let closedPort = 0;
let file = '';
const servers: CliServer[] = [];
const clients: Client[] = [];
const peers: SdkPeer[] = [];

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svpn-state-it-'));
  file = join(dir, 'leases.json');
  port = await freePort();
  closedPort = await freePort(); // nobody listens there: the gate, closed
});

test.after(async () => {
  for (const c of clients) c.close();
  for (const p of peers) p.close();
  for (const s of servers) s.kill();
  rmSync(dir, { recursive: true, force: true });
});

function start(extra: string[] = []): CliServer {
  const s = new CliServer(['--no-tun', '--host', '127.0.0.1', '--port', String(port), '--state', file, '--idle-timeout', String(IDLE), '--keepalive', '2', '--max-per-source', '0', '--conn-rate', '0', '--log-format', 'json', ...extra]);
  servers.push(s);
  return s;
}

/** An SDK client whose connections go to the server only while `open()` says so. */
function client(name: string, open: () => boolean): { c: Client; ready: string[] } {
  const ready: string[] = [];
  const c = new Client({
    connect: (h) => tcpConnect({ host: '127.0.0.1', port: open() ? port : closedPort })(h),
    tun: { write() {} },
    name,
    timeout: 2,
    minBackoff: 0.2,
    maxBackoff: 0.5,
    onState: (s) => {
      if (s.state === 'ready') ready.push(s.address);
    },
  });
  clients.push(c);
  c.start();
  return { c, ready };
}

function peer(opts: ConstructorParameters<typeof SdkPeer>[1]): SdkPeer {
  const p = new SdkPeer(port, opts);
  peers.push(p);
  return p;
}

test('kill -9 and restart: every client is back with its address, though another client asked for one first; one that does not come back frees its address after the idle timeout', async () => {
  let gate = true;
  let lostGate = true;
  const srv = start();
  await srv.event('listening', 10_000);
  const all = [...Array(N)].map((_, i) => client(`dev-${i}`, () => (i === N - 1 ? lostGate : gate)));
  await waitFor(() => all.every((x) => x.ready.length === 1), 10_000, 'every client ready');
  const addrs = all.map((x) => x.ready[0]!);
  assert.is(new Set(addrs).size, N);
  const onDisk = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(Object.keys(onDisk.leases).sort(), [...addrs].sort(), 'every lease in the file before its reply');

  gate = false;
  lostGate = false; // the last client will not come back
  srv.kill();
  await waitFor(() => srv.exit !== null, 5000, 'the server to die');
  const t0 = Date.now();
  const again = start();
  const loaded = await again.event('state_loaded', 10_000);
  assert.is(loaded.leases, N);
  await again.event('listening', 10_000);

  // Another client asks for a client's address before it is back: refused, in use.
  const other = peer({ address: addrs[0] });
  other.start();
  const down = await other.waitState('down', 5000);
  assert.is(down.code, REFUSE_IN_USE, JSON.stringify(down));
  assert.match(String((down as { detail?: string }).detail ?? ''), /in use/);
  // Nor does a client asking for any address get one of theirs.
  const fresh = peer({});
  const got = await fresh.ready(5000);
  assert.not.ok(addrs.includes(got.address), `${got.address} is someone's`);

  gate = true;
  await waitFor(() => all.slice(0, N - 1).every((x) => x.ready.length === 2), 10_000, 'the clients back', () => all.map((x) => x.ready));
  console.log(`  ${N - 1} clients back with their addresses ${Date.now() - t0} ms after the restart`);
  for (let i = 0; i < N - 1; i++) assert.is(all[i]!.ready[1], addrs[i], `dev-${i} got its address back`);

  // The lost client's address: kept for it until the idle timeout after the restart, then free.
  const lost = addrs[N - 1]!;
  const early = peer({ address: lost });
  early.start();
  assert.is((await early.waitState('down', 5000)).code, REFUSE_IN_USE);
  // Kept for the idle timeout from when the server read the file (a slow start is not counted).
  const loadedAt = Date.parse(String(loaded.time));
  assert.ok(loadedAt >= t0, 'state_loaded carries its time');
  await waitFor(() => Date.now() - loadedAt > IDLE * 1000 + 500, IDLE * 1000 + 2000, 'the idle timeout');
  const late = peer({ address: lost });
  assert.is((await late.ready(5000)).address, lost, 'free after the idle timeout');
  await again.event('state_leases_expired', 1000);
});

test('a clean stop (SIGTERM) keeps the leases too', async () => {
  for (const s of servers) s.kill();
  for (const c of clients.splice(0)) c.close();
  for (const p of peers.splice(0)) p.close();
  rmSync(file, { force: true });
  let gate = true;
  const srv = start();
  await srv.event('listening', 10_000);
  const all = [...Array(5)].map((_, i) => client(`clean-${i}`, () => gate));
  await waitFor(() => all.every((x) => x.ready.length === 1), 10_000, 'every client ready');
  gate = false;
  assert.equal(await srv.stop('SIGTERM'), { code: 0, signal: null });
  assert.is(Object.keys(JSON.parse(readFileSync(file, 'utf8')).leases).length, 5, 'kept in the file');
  const again = start();
  await again.event('listening', 10_000);
  gate = true;
  await waitFor(() => all.every((x) => x.ready.length === 2), 10_000, 'the clients back');
  for (const x of all) assert.is(x.ready[1], x.ready[0]);
});

test('a corrupt state file is set aside, named in an error line with the way out, and the server starts', async () => {
  for (const s of servers) s.kill();
  for (const c of clients.splice(0)) c.close();
  writeFileSync(file, '{"format": "simplevpn-leases 1", "leases": {"10.0.0.2": ');
  const srv = start();
  const e = await srv.event('state_corrupt', 10_000);
  assert.is(e.level, 'error');
  assert.is(e.file, file);
  assert.ok(existsSync(e.set_aside), 'the corrupt file kept');
  assert.match(e.fix, /restore/);
  await srv.event('listening', 10_000);
  assert.ok(readdirSync(dir).some((f) => f.startsWith('leases.json.corrupt-')));
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).leases, {});
});

test('--state in a directory that does not exist: the server does not start, and says why', async () => {
  const srv = new CliServer(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--state', join(dir, 'nope', 'x.json'), '--log-format', 'json']);
  servers.push(srv);
  const e = await srv.event('start_failed', 10_000);
  assert.match(e.error, /--state .*nope\/x\.json cannot be written/);
  await waitFor(() => srv.exit !== null, 5000, 'exit');
  assert.is(srv.exit!.code, 1);
});

test.run();
