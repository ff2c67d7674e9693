// The native TUN binding and linux/tun.ts. Everything that creates a device runs in a child
// process inside a network namespace made for this run (fixtures/tun-ns.ts), so the host's
// interfaces, addresses and routes are never touched. Needs root, /dev/net/tun, iproute2
// and the built addon; without them those tests are not registered and the reason is printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tunStatus } from '../../../linux/tun.js';

const FIXTURE = fileURLToPath(new URL('../../support/fixtures/tun-ns.js', import.meta.url));
const NS = `svt-${process.pid}-${randomBytes(3).toString('hex')}`;

interface Run {
  status: number | null;
  result: any;
  stderr: string;
  ms: number;
}

function fixture(scenario: string, opts: { ns?: boolean; env?: NodeJS.ProcessEnv; nodeArgs?: string[]; prefix?: string[] } = {}): Run {
  const node = [...(opts.prefix ?? []), process.execPath, '--enable-source-maps', ...(opts.nodeArgs ?? []), FIXTURE, scenario];
  const [cmd, ...args] = opts.ns === false ? node : ['ip', 'netns', 'exec', NS, ...node];
  const t0 = Date.now();
  const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...opts.env } });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  const run = { status: r.status, result: line ? JSON.parse(line.slice(7)) : undefined, stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`, ms: Date.now() - t0 };
  assert.is(run.status, 0, `fixture ${scenario} exited with ${r.status ?? r.signal}: ${run.stderr}`);
  assert.ok(run.result, `fixture ${scenario} printed no RESULT: ${r.stdout}${run.stderr}`);
  return run;
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function assertError(e: any, code: string, pattern: RegExp): void {
  assert.ok(e, `expected a ${code} error`);
  assert.ok(e.tunError, `not a TunError: ${JSON.stringify(e)}`);
  assert.is(e.code, code, e.message);
  assert.match(e.message, pattern);
}

// Runs without privileges or a device: the addon is never loaded.
test('a bad SIMPLEVPN_TUN_ADDON path gives ADDON_MISSING from tunStatus() and openTun()', () => {
  const { result } = fixture('status', { ns: false, env: { SIMPLEVPN_TUN_ADDON: '/nonexistent/simplevpn_tun.node' } });
  if (process.platform !== 'linux') {
    assert.is(result.status.code, 'UNSUPPORTED_PLATFORM');
    return;
  }
  assert.is(result.status.ok, false);
  assert.is(result.status.code, 'ADDON_MISSING');
  assert.match(result.status.reason, /SIMPLEVPN_TUN_ADDON=\/nonexistent\/simplevpn_tun\.node/);
  assertError(result.open, 'ADDON_MISSING', /could not be loaded/);
});

function unavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun does not exist';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (ip) is not installed';
  const status = tunStatus();
  if (!status.ok) return status.reason;
  const add = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim()}`;
  return null;
}

const why = unavailable();
if (why) {
  console.log(`tun.test: SKIPPING the TUN device tests (not registered): ${why}`);
} else {
  let deleted = false;
  const deleteNs = (): void => {
    if (deleted) return;
    deleted = true;
    spawnSync('ip', ['netns', 'delete', NS]);
  };
  // The after hook covers failing tests; these cover a kill by the runner's time limit.
  process.on('exit', deleteNs);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      deleteNs();
      process.exit(1);
    });
  }
  test.after(deleteNs);
  spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);

  test('tunStatus() is ok as root with /dev/net/tun', () => {
    assert.equal(tunStatus(), { ok: true });
  });

  // setpriv (util-linux) runs the fixture as nobody, without CAP_NET_ADMIN.
  if (spawnSync('setpriv', ['--version']).status === 0) {
    // Which call refuses depends on the mode of /dev/net/tun, which belongs to the machine:
    // 0600 denies the open (EACCES), 0666 lets it through and TUNSETIFF refuses (EPERM).
    // Either way the error names the fix.
    test('without CAP_NET_ADMIN: tunStatus() says NO_PERMISSION and openTun() throws EACCES or EPERM naming the fix', () => {
      const { result } = fixture('status', { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
      assert.is(result.status.code, 'NO_PERMISSION');
      assert.match(result.status.reason, /CAP_NET_ADMIN/);
      const e = result.open;
      assert.ok(e?.tunError, `not a TunError: ${JSON.stringify(e)}`);
      if (e.code === 'EACCES') assert.match(e.message, /open \/dev\/net\/tun failed: Permission denied\. .*mode of \/dev\/net\/tun.*needs CAP_NET_ADMIN: run as root/);
      else assertError(e, 'EPERM', /creating the TUN device failed: Operation not permitted\. .*needs CAP_NET_ADMIN: run as root/);
    });
  } else {
    console.log('tun.test: SKIPPING the unprivileged test (not registered): setpriv is not installed');
  }

  test('open with a chosen name, a kernel-numbered pattern and the default; errors name the cause', () => {
    const { result } = fixture('open');
    const [chosen, numbered, byDefault] = result.names;
    assert.is(chosen, 'svt0');
    assert.match(numbered, /^svk\d+$/);
    assert.match(byDefault, /^svpn\d+$/);
    for (const n of result.names) assert.ok(result.during.includes(n), `${n} missing from ip link`);
    for (const n of result.names) assert.not.ok(result.after.includes(n), `${n} still there after close()`);
    assertError(result.errors.busy, 'EBUSY', /svt0.*in use/);
    assertError(result.errors.long, 'EINVAL', /too long: at most 15 bytes/);
    assertError(result.errors.slash, 'EINVAL', /"a\/b" is invalid/);
    assertError(result.errors.notTun, 'EINVAL', /not a TUN device/);
  });

  test('configure sets address, prefix (with the subnet route), MTU, a 4,096-packet queue and up; routes are added and deleted', () => {
    const { result: r } = fixture('configure');
    const link = r.addr[0];
    assert.is(link.ifname, 'svt1');
    assert.is(link.mtu, 1400);
    assert.is(link.txqlen, 4096, 'the queue of packets for the program to read, raised from 500 so a pause does not drop');
    assert.is(r.raisedQueue, 10000, 'a longer queue set by hand is not shortened');
    assert.ok(link.flags.includes('UP'), `flags: ${link.flags}`);
    const inet = link.addr_info.filter((a: any) => a.family === 'inet');
    assert.equal(inet.map((a: any) => [a.local, a.prefixlen]), [['10.77.0.1', 24]]);

    const subnet = r.routesConfigured.find((x: any) => x.dst === '10.77.0.0/24');
    assert.ok(subnet, `no connected route: ${JSON.stringify(r.routesConfigured)}`);
    assert.is(subnet.protocol, 'kernel');
    assert.is(subnet.prefsrc, '10.77.0.1');

    const added = r.routesAdded.map((x: any) => x.dst);
    assert.ok(added.includes('10.78.0.0/16'), JSON.stringify(r.routesAdded));
    assert.ok(added.includes('10.79.1.2'), JSON.stringify(r.routesAdded));
    for (const x of r.routesAdded) assert.not.ok(x.gateway, 'a device route has no gateway');
    assert.equal(r.routesDeleted.map((x: any) => x.dst), ['10.77.0.0/24']);

    assertError(r.routeWhileDown, 'ENETDOWN', /svt2.*10\.90\.0\.0\/16.*configure\(\) it first/);
    assertError(r.duplicate, 'EEXIST', /adding route 10\.78\.0\.0\/16 dev svt1.*already exists/);
    assertError(r.deleteMissing, 'ESRCH', /deleting route 10\.78\.0\.0\/16 dev svt1.*no such route/);
    assertError(r.hostBits, 'EINVAL', /outside the prefix/);
    assertError(r.badAddress, 'EINVAL', /"10\.77\.0\.300" is not an IPv4 address/);
    assertError(r.badPrefix, 'EINVAL', /prefix/);
    assert.is(r.link[0].mtu, 1300);
    assertError(r.afterClose, 'EBADF', /svt1: write\(\) after close\(\)/);
  });

  test('a UDP datagram sent into the subnet arrives through onPackets as a correct IPv4 packet', () => {
    const { result } = fixture('read');
    const p = Buffer.from(result.packet, 'hex');
    assert.is(p[0], 0x45, 'IPv4, 20-byte header');
    assert.is(p.readUInt16BE(2), p.length, 'total length');
    assert.is(p[9], 17, 'UDP');
    assert.is(checksum(p.subarray(0, 20)), 0, 'header checksum');
    assert.is([...p.subarray(12, 16)].join('.'), '10.77.0.1');
    assert.is([...p.subarray(16, 20)].join('.'), '10.77.0.2');
    assert.is(p.readUInt16BE(22), 9999);
    assert.is(p.readUInt16BE(24), p.length - 20, 'UDP length');
    assert.is(p.subarray(28).toString(), 'hello tun');
    assert.ok(result.count >= 1);
    assert.ok(result.asyncId > 1, 'onPackets runs in its own async context');
    assert.equal(result.order, ['nextTick', 'microtask', 'immediate']);
  });

  test('an exception thrown by onPackets becomes an uncaught exception', () => {
    const { result } = fixture('throws');
    assert.equal(result.caught, ['thrown from onPackets']);
  });

  test('a burst is read in batches, and kept views are not overwritten by later batches', () => {
    const { result } = fixture('burst');
    const expected = Array.from({ length: 300 }, (_, i) => `seq ${i}`);
    assert.equal(result.payloads, expected);
    assert.ok(result.counts.some((c: number) => c > 1), `batch sizes: ${result.counts}`);
    assert.ok(Math.max(...result.counts) <= 64, `batch sizes: ${result.counts}`);
    assert.ok(result.stats.rxPackets >= 300);
    assert.ok(result.stats.rxBytes >= 300 * 33);
  });

  test('pause() stops reading (the kernel queues the packets) and resume() reads them all, in order', () => {
    const { result } = fixture('pause');
    assert.is(result.callsWhilePaused, 0, 'no onPackets while paused');
    assert.is(result.beforeResume, 1, 'only the first datagram before the pause');
    assert.equal(result.got, Array.from({ length: 100 }, (_, i) => `seq ${i}`));
  });

  test('write() and writeBatch() deliver hand-built UDP/IPv4 packets to a socket in the namespace', () => {
    const { result: r } = fixture('write');
    assert.is(r.single, true);
    assert.equal(r.received[0], { msg: 'from the tun', from: '10.77.0.2', port: 4444 });
    assert.is(r.written, 20);
    assert.is(r.partial, 0);
    assert.equal(
      r.received.slice(1).map((m: any) => m.msg),
      Array.from({ length: 20 }, (_, i) => `batch ${i}`),
    );
    assert.is(r.stats.txPackets, 21);
    assert.is(r.stats.txBytes, 28 + 'from the tun'.length + r.bytes);
    assert.is(r.stats.txDropped, 0);
    // The kernel refuses a 2-byte packet (EINVAL): counted and dropped, not thrown.
    assert.is(r.garbage.returned, false, `write() of a packet the kernel refuses: ${JSON.stringify(r.garbage)}`);
    assert.is(r.garbage.stats.txRejected, 1);
    assert.is(r.garbage.stats.txPackets, 21);
    assert.is(r.garbage.stats.txDropped, 0);
    assert.is(r.mixedWritten, 2, 'writeBatch() skips the refused packet and goes on');
    assert.equal(r.mixedReceived.map((m: any) => m.msg), ['mixed 0', 'mixed 1']);
    assert.is(r.after.txRejected, 2);
    assert.is(r.after.txPackets, 23);
    assert.is(r.after.txDropped, 0);
  });

  test('writeParts() writes a packet given in two parts as one, on a plain device and on one with offloads', () => {
    const { result: r } = fixture('writeParts');
    for (const kind of ['plain', 'offload']) {
      const x = r[kind];
      assert.is(x.offload, kind === 'offload', `${kind}: the device's offloads`);
      assert.equal(x.returned, [true, true, true, true, true], kind);
      assert.equal(x.received, ['cut at 1', 'cut at 20', 'cut at 27', 'cut at 28', 'cut at 30'], kind);
      assert.is(x.refused, false, `${kind}: a packet the kernel refuses`);
      assert.is(x.stats.txRejected, 1, kind);
      assert.is(x.stats.txPackets, 5, kind);
    }
    assert.match(r.plain.headerOnPlain, /hdr must be null/);
  });

  test('close() inside onPackets is safe and idempotent, and lets the process exit', () => {
    const { result } = fixture('closeInCallback');
    assertError(result.writeAfterClose, 'EBADF', /after close/);
  });

  test('an unref()ed device does not keep the process alive', () => {
    const { result } = fixture('unref');
    assert.is(result.name, 'svt7');
  });

  test('workers that exit or are terminated with a device open, or just closed, tear down cleanly', () => {
    const { result } = fixture('workers');
    assert.is(result.names.length, 3);
    for (const n of result.names) assert.not.ok(result.after.includes(n), `${n} left behind`);
  });

  test('300 open/close cycles leak no file descriptors', () => {
    const { result } = fixture('leak', { nodeArgs: ['--expose-gc'] });
    console.log(`  300 open/close: ${result.ms} ms, fds ${result.before} -> ${result.after}, rss +${(result.rssGrowth / 1048576).toFixed(1)} MiB`);
    assert.is(result.after, result.before);
  });
}

test.run();
