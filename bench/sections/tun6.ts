// Through TUN over IPv6 inside the tunnel: the same star as the TUN section (client 1 ->
// hub -> client 2), simplevpn with --subnet6, one iperf3 TCP stream and ping between the
// clients' IPv6 addresses, beside the same over their IPv4 addresses in the same bring-up.
// The `tun6` section of bench/main.ts (`npm run bench -- tun6`): at the seed MTU and at a
// raised one (quick: the raised one only), IPv6 against IPv4 of the same run.

import { SERVER_BIN, CLIENT_BIN, type Proc, nodeFlags } from '../../test/support/lab.js';
import { nodeIn, star } from '../netlab.js';
import { iperf, ping } from '../probes/net.js';
import { errorText } from '../util.js';
import type { RunContext } from './section.js';

const SUBNET6 = 'fd00:b:e::/64';

export interface Tun6Sample {
  mtu: number;
  family: 'ipv4' | 'ipv6';
  target: string;
  gbps: number | null;
  retransmits: number | null;
  rttMs: number | null;
  error?: string;
}

/** One bring-up at `mtu`: IPv4 then IPv6 between the two clients, `seconds` each. */
export async function runTun6(seconds: number, mtu: number, log: (msg: string) => void): Promise<Tun6Sample[]> {
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
      const sample: Tun6Sample = { mtu, family, target, gbps: null, retransmits: null, rttMs: null };
      try {
        sample.rttMs = (await ping(s.c1, target, 20)).median;
        const t = await iperf(s.c1, s.c2, target, { seconds, omit: 1 }, procs);
        sample.gbps = t.gbps;
        sample.retransmits = t.retransmits;
      } catch (e) {
        sample.error = errorText(e);
      }
      log(`  MTU ${mtu} ${family}: ${sample.gbps ?? '-'} Gbit/s, ${sample.retransmits ?? '-'} retransmits, ping ${sample.rttMs ?? '-'} ms${sample.error ? ` (${sample.error})` : ''}`);
      out.push(sample);
    }
    return out;
  } finally {
    await Promise.all([procs.client1?.stop('SIGTERM', 5000), procs.client2?.stop('SIGTERM', 5000)]);
    await procs.server?.stop('SIGTERM', 8000);
    await s.lab.destroy();
  }
}

export interface Tun6Result {
  seconds: number;
  samples: Tun6Sample[];
  /** Bring-ups that failed as a whole, one line each. */
  errors: string[];
}

/** The tun6 section: one bring-up per MTU, IPv4 then IPv6 in each. */
export async function runTun6Section(ctx: RunContext): Promise<Tun6Result> {
  ctx.log('\nIPv6 through TUN (bench/sections/tun6.ts): iperf3 and ping between two clients, IPv4 and IPv6');
  const r: Tun6Result = { seconds: ctx.seconds, samples: [], errors: [] };
  for (const mtu of ctx.quick ? [65000] : [1500, 65000]) {
    try {
      r.samples.push(...(await runTun6(ctx.seconds, mtu, ctx.log)));
    } catch (e) {
      r.errors.push(`MTU ${mtu}: ${errorText(e)}`);
      ctx.log(`  MTU ${mtu} FAILED: ${errorText(e)}`);
    }
  }
  return r;
}
