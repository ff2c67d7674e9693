// The native switching path near the open-file limit (linux/native/hub.c): the hub keeps a
// second descriptor per session (a dup of the socket's), so past half the process's limit it
// takes no more sessions, which stay on JavaScript with one descriptor each. simplevpn-server
// runs under a limit of 128 (prlimit); more clients connect than it could hold if every
// session took two. All get their address and reach each other, the refusal is logged (at
// most once a second, with how many were not said), and no accept fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { CliServer } from '../../support/server-cli.js';
import { RawClient, extRequest, ipPacket, waitFor } from '../../support/server-net.js';
import { tunStatus } from '../../../linux/tun.js';

const LIMIT = 128;
const CLIENTS = 80;
const why = spawnSync('prlimit', ['--version']).status !== 0 ? 'prlimit (util-linux) is not installed' : tunStatus().ok ? null : 'the native binding is not built';

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

(why ? test.skip : test)(`past half of a limit of ${LIMIT} descriptors, sessions stay on JavaScript and every client gets in`, async () => {
  const s = new CliServer(['--no-tun', '--no-warm-up', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json'], ['prlimit', `--nofile=${LIMIT}:${LIMIT}`]);
  const clients: RawClient[] = [];
  try {
    const l = await s.event('listening', 15_000);
    assert.is(l.data_path, 'native');
    const port = await s.port();
    const base = fdCount(s.child.pid!);
    // Without the guard, sessions would take two descriptors each and accept() would fail
    // with EMFILE before the last ones were in.
    assert.ok(base + 2 * CLIENTS > LIMIT, `the limit binds: ${base} + 2 x ${CLIENTS} > ${LIMIT}`);
    const addresses: number[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await RawClient.connect(port);
      clients.push(c);
      c.write(extRequest());
      await waitFor(() => c.frames.length > 0 || c.closed, 5000, `client ${i}'s reply`);
      assert.not.ok(c.closed, `client ${i} was closed: ${c.error}; ${s.stderr.slice(-500)}`);
      addresses.push(Buffer.from(c.frames.shift()!).readUInt32BE(16));
    }
    const refused = await s.event('native_path_failed', 5000);
    assert.match(String(refused.error), 'descriptors');
    assert.match(String(refused.error), 'ulimit -n');
    const fds = fdCount(s.child.pid!);
    assert.ok(fds < LIMIT, `the server holds ${fds} descriptors, under its limit of ${LIMIT}`);
    assert.ok(fds > base + CLIENTS, 'the first sessions went native (two descriptors each)');
    // The first client (native) and the last (JavaScript) reach each other, both ways.
    const [first, last] = [0, CLIENTS - 1];
    for (const [from, to] of [[first, last], [last, first]]) {
      const p = ipPacket(addresses[from], addresses[to], 300);
      clients[from].write(p);
      await waitFor(() => clients[to].frames.some((f) => Buffer.compare(Buffer.from(f), Buffer.from(p)) === 0), 3000, `${from} -> ${to}`);
    }
    assert.not.ok(s.events.some((e) => e.event === 'accept_failed' || /EMFILE/.test(JSON.stringify(e)) && e.event !== 'native_path_failed'), 'no accept failed');
    assert.is(s.events.filter((e) => e.event === 'native_path_failed').length < CLIENTS / 2, true, 'the refusals are not one line each');
  } finally {
    for (const c of clients) c.sock.destroy();
    const r = await s.stop();
    assert.is(r.code, 0, s.stderr.slice(-1000));
  }
});

test.run();
