// simplevpn-server's IPv6 flags as a process: --subnet6 and --route6 (repeatable, and in a
// --config file), a bad value exits 2 naming the flag, and --subnet6 with --etcd is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliServer, runCli } from '../../support/server-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'svpn-ipv6-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('--subnet6 and --route6 start the server with IPv6 and say so in the listening line', async () => {
  const s = new CliServer(['--no-tun', '--port', '0', '--log-format', 'json', '--subnet6', 'fd00:5:6::/64', '--route6', '2001:db8:1::/48', '--route6', '2001:db8:2::/48']);
  try {
    const l = await s.event('listening', 10_000);
    assert.is(l.subnet6, 'fd00:5:6::/64');
  } finally {
    await s.stop();
  }
});

test('a --config file takes subnet6 and route6 (a list)', async () => {
  const cfg = join(dir, 'v6.json');
  writeFileSync(cfg, JSON.stringify({ subnet6: 'fd00:9::/64', route6: ['2001:db8::/32'] }));
  const s = new CliServer(['--no-tun', '--port', '0', '--log-format', 'json', '--config', cfg]);
  try {
    assert.is((await s.event('listening', 10_000)).subnet6, 'fd00:9::/64');
  } finally {
    await s.stop();
  }
});

test('bad IPv6 flags exit 2 with the reason', async () => {
  for (const [args, re] of [
    [['--subnet6', 'fd00::/48'], /--subnet6 must be a \/64/],
    [['--subnet6', 'nonsense'], /--subnet6 must be an IPv6 network/],
    [['--route6', '2001:db8::/32'], /--route6 needs --subnet6/],
    [['--subnet6', 'fd00::/64', '--etcd', 'http://127.0.0.1:2379'], /--subnet6 does not go with --etcd/],
  ] as Array<[string[], RegExp]>) {
    const r = await runCli(['--no-tun', '--port', '0', ...args], 20_000);
    assert.is(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
});

test.run();
