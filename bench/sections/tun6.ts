// Through TUN over IPv6 inside the tunnel: the same star as the TUN section (client 1 ->
// hub -> client 2), simplevpn with --subnet6, one iperf3 TCP stream and ping between the
// clients' IPv6 addresses, beside the same over their IPv4 addresses in the same bring-up.
// A file of its own, run on its own (not yet a section of bench/main.ts):
//
//   sudo node dist/js/bench/sections/tun6.js [--seconds S] [--mtu BYTES]
//
// It prints one JSON line per measurement and a summary; nothing is written to results/.

import { SERVER_BIN, CLIENT_BIN, type Proc, nodeFlags } from '../../test/support/lab.js';
import { nodeIn, star } from '../netlab.js';
import { iperf, ping } from '../probes/net.js';
import { errorText } from '../util.js';

const SUBNET6 = 'fd00:b:e::/64';

export interface Tun6Sample {
  family: 'ipv4' | 'ipv6';
  target: string;
  gbps: number | null;
  retransmits: number | null;
  rttMs: number | null;
  error?: string;
}

/** One bring-up at `mtu`: IPv4 then IPv6 between the two clients, `seconds` each. */
export async function runTun6(seconds: number, mtu: number): Promise<Tun6Sample[]> {
  const s = await star();
  const procs: Record<string, Proc> = {};
  try {
    procs.server = nodeIn(s.hub, 'simplevpn-server', SERVER_BIN, ['--log-format', 'json', '--mtu', String(mtu), '--subnet6', SUBNET6], nodeFlags(SERVER_BIN));
    await procs.server.waitFor('listening', () => true, 15_000);
    const args = ['--log-format', 'json', '--max-backoff', '2', '--no-proxy', '--mtu', String(mtu)];
    procs.client1 = nodeIn(s.c1, 'simplevpn-client1', CLIENT_BIN, ['-s', s.hub1, ...args], nodeFlags(CLIENT_BIN));
    procs.client2 = nodeIn(s.c2, 'simplevpn-client2', CLIENT_BIN, ['-s', s.hub2, ...args], nodeFlags(CLIENT_BIN));
    await procs.client1.waitFor('ready', () => true, 15_000);
    const r2 = await procs.client2.waitFor('ready', () => true, 15_000);
    const v6 = String(r2.address6 ?? '').split('/')[0];
    if (!v6) throw new Error('client 2 got no IPv6 address');
    const out: Tun6Sample[] = [];
    for (const [family, target] of [
      ['ipv4', String(r2.address)],
      ['ipv6', v6],
    ] as const) {
      const sample: Tun6Sample = { family, target, gbps: null, retransmits: null, rttMs: null };
      try {
        sample.rttMs = (await ping(s.c1, target, 20)).median;
        const t = await iperf(s.c1, s.c2, target, { seconds, omit: 1 }, procs);
        sample.gbps = t.gbps;
        sample.retransmits = t.retransmits;
      } catch (e) {
        sample.error = errorText(e);
      }
      console.log(JSON.stringify({ mtu, ...sample }));
      out.push(sample);
    }
    return out;
  } finally {
    await Promise.all([procs.client1?.stop('SIGTERM', 5000), procs.client2?.stop('SIGTERM', 5000)]);
    await procs.server?.stop('SIGTERM', 8000);
    await s.lab.destroy();
  }
}

if (process.argv[1]?.endsWith('tun6.js')) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  runTun6(arg('--seconds', 5), arg('--mtu', 65000)).then(
    (r) => console.log(r.map((x) => `${x.family}: ${x.gbps ?? '-'} Gbit/s, ping ${x.rttMs ?? '-'} ms${x.error ? ' (' + x.error + ')' : ''}`).join('\n')),
    (e) => {
      console.error(errorText(e));
      process.exitCode = 1;
    },
  );
}
