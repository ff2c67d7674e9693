// IPv6 addresses follow the IPv4 lease through a state file (--state): after a restart a
// client that presents its lease token gets its IPv4 address back, and with it the same
// IPv6 address, even when another client asked first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REPLY, T_IPV6, T_LEASE, eachTlv, extKind, ipv6Request, readIpv6Config, readU32, DST } from '../../../protocol/index.js';
import { extRequest, waitFor, withServer, type RawClient } from '../../support/server-net.js';

const dir = mkdtempSync(join(tmpdir(), 'svpn-ipv6-state-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function ask(c: RawClient, tlvs: Parameters<typeof extRequest>[1], addr = 0) {
  c.write(extRequest(addr, tlvs));
  await waitFor(() => c.frames.length > 0 || c.closed, 3000, 'the answer');
  const r = c.frames.shift()!;
  assert.is(extKind(r), KIND_REPLY);
  let lease: Uint8Array | null = null;
  eachTlv(r, (t, v) => {
    if (t === T_LEASE) lease = Uint8Array.from(v);
  });
  return { address: readU32(r, DST), lease: lease!, address6: readIpv6Config(r)!.address };
}

test('after a restart with --state, the lease token brings back the IPv4 address and the same IPv6 address', async () => {
  const state = join(dir, 'leases.json');
  const options = { subnet: '10.8.0.0/24', subnet6: 'fd00:8::/64', state };
  let first: Awaited<ReturnType<typeof ask>> | null = null;
  await withServer(options, async (h) => {
    first = await ask(await h.raw(), [[T_IPV6, ipv6Request()]]);
    assert.is(first.address6, 'fd00:8::a08:2');
  });
  await withServer(options, async (h) => {
    // Another client first: it does not get the kept address.
    const other = await ask(await h.raw(), [[T_IPV6, ipv6Request()]]);
    assert.is.not(other.address6, first!.address6);
    const back = await ask(await h.raw(), [[T_IPV6, ipv6Request()], [T_LEASE, first!.lease]], first!.address);
    assert.is(back.address, first!.address);
    assert.is(back.address6, first!.address6);
  });
});

test.run();
