// The tun-internet section: through TUN to a host beyond the VPN server, the path most VPN
// users take (to the internet through the server), not to another client:
//
//   c1 ──198.18.1.0/24── hub ──198.18.3.0/24── beyond      (c2 idle)
//   iperf3 -c          server, NAT            iperf3 -s
//
// The beyond host (bench/netlab.ts) has no route but its own subnet: the hub's kernel routes
// what comes out of each VPN's tun there and masquerades it (nftables), as a VPN server
// does for its users. The paths are tun-paths.ts's with `beyond`: raw (the hub routes and
// masquerades, no tunnel), wireguard-go, OpenVPN 2.6 TCP with and without a cipher, and
// simplevpn at tunnel MTU 1500 with TUN offloads off and on, and at the best raised MTU with
// them on. Each is measured as the TUN section measures (tun.ts's measureOnce), with the tun
// devices of client 1 and of the hub (whose tun is on this path) checked for drops. When the
// bench profiles, simplevpn at the best MTU with offloads runs once more under perf and
// node --cpu-prof (tun.ts's profileRun), for where the two cores go on this path.

import { type Star, star } from '../netlab.js';
import { errorText, sleep } from '../util.js';
import type { Section } from './section.js';
import { perfUsable } from '../probes/perf.js';
import { type MeasureOptions, type PathEnds, type PathResult, type PathSample, type PathSpec, type ProfileRun, combine, measureOnce, peersMissing, profileRun } from './tun.js';
import { Pki, openvpnPath, rawPath, simplevpnPath, wireguardGoPath } from './tun-paths.js';

export interface TunInternetResult {
  rounds: number;
  seconds: number;
  omit: number;
  pings: number;
  /** The host beyond the hub: its address and subnet, and the hub's NAT ruleset towards it (nft syntax). */
  beyond: { addr: string; subnet: string; nat: string };
  /** The raised tunnel MTU measured: the TUN section's best in this run, else 65000 (what the Linux client asks for). */
  bestMtu: number;
  bestMtuFrom: 'tun' | 'default';
  paths: PathResult[];
  /** simplevpn at the best MTU with offloads under the profilers; absent in results from before them. */
  profiles?: ProfileRun[];
  notes: string[];
}

/** The tunnel MTU measured with offloads when the TUN section did not run before. */
const DEFAULT_RAISED_MTU = 65000;

/** The paths, in the order of every round. */
function pathSpecs(s: Star, bestMtu: number, missing: Record<string, string>, notes: string[]): { specs: PathSpec[]; pki: Pki | null } {
  let pki: Pki | null = null;
  const specs: PathSpec[] = [{ id: 'raw', label: 'raw routed path (no tunnel), masqueraded by the hub', kind: 'raw', mtu: 1500, up: () => rawPath(s, true) }];
  if (missing['wireguard-go']) notes.push(`wireguard-go not measured: ${missing['wireguard-go']}`);
  else specs.push({ id: 'wireguard-go', label: 'wireguard-go (UDP, ChaCha20-Poly1305)', kind: 'wireguard-go', mtu: 1420, up: () => wireguardGoPath(s, true) });
  if (missing.openvpn) notes.push(`OpenVPN not measured: ${missing.openvpn}`);
  else {
    try {
      const p = (pki = new Pki());
      specs.push({ id: 'openvpn-aes-256-gcm', label: 'OpenVPN 2.6 TCP, AES-256-GCM', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'aes-256-gcm', true) });
      specs.push({ id: 'openvpn-none', label: 'OpenVPN 2.6 TCP, no cipher', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'none', true) });
    } catch (e) {
      notes.push(`OpenVPN not measured: the throwaway PKI could not be made: ${errorText(e)}`);
    }
  }
  const ours = (mtu: number, offload: boolean): PathSpec => ({
    id: `simplevpn-${offload ? 'offload-' : ''}${mtu}`,
    label: offload
      ? `simplevpn with TUN offloads (the server's tun, client --offload), tunnel MTU ${mtu}`
      : `simplevpn without TUN offloads (SIMPLEVPN_TUN_OFFLOAD=0 on the server, no --offload), tunnel MTU ${mtu}`,
    kind: 'simplevpn',
    mtu,
    transport: 'tcp',
    offload,
    up: () => simplevpnPath(s, { mtu, beyond: true, offload, serverOffload: offload }),
  });
  specs.push(ours(1500, false), ours(1500, true));
  if (bestMtu !== 1500) specs.push(ours(bestMtu, true));
  return { specs, pki };
}

interface InternetOptions extends MeasureOptions {
  rounds: number;
  bestMtu: number;
  bestMtuFrom: TunInternetResult['bestMtuFrom'];
  /** Peers whose programs are missing, with why. */
  missing: Record<string, string>;
  /** Where the profiled run writes; none when absent. */
  profileDir?: string;
}

async function internetSection(o: InternetOptions): Promise<TunInternetResult> {
  const s = await star(1500, { beyond: true });
  let pki: Pki | null = null;
  try {
    const b = s.beyond!;
    const result: TunInternetResult = {
      rounds: o.rounds,
      seconds: o.seconds,
      omit: o.omit,
      pings: o.pings,
      beyond: { addr: b.addr, subnet: b.subnet, nat: b.nat },
      bestMtu: o.bestMtu,
      bestMtuFrom: o.bestMtuFrom,
      paths: [],
      notes: [],
    };
    const paths = pathSpecs(s, o.bestMtu, o.missing, result.notes);
    pki = paths.pki;
    const ends: PathEnds = { dest: b.host, tunHosts: { client1: s.c1, hub: s.hub } };
    // Interleaved rounds, best kept, as in the TUN section.
    const runs = paths.specs.map(() => [] as PathSample[]);
    for (let r = 1; r <= o.rounds; r++) {
      for (let i = 0; i < paths.specs.length; i++) {
        runs[i].push(await measureOnce(s, paths.specs[i], o, r, ends));
        await sleep(300);
      }
    }
    result.paths = paths.specs.map((spec, i) => combine(spec, runs[i]));
    if (o.profileDir) {
      const usePerf = perfUsable();
      if (!usePerf) result.notes.push('perf is not usable here: the profile is node --cpu-prof only');
      const mtu = o.bestMtu;
      const up = (profileDir: string, tag: string) => simplevpnPath(s, { mtu, beyond: true, offload: true, serverOffload: true, profileDir, tag });
      result.profiles = [await profileRun(s, { mtu, tag: `internet-mtu${mtu}`, up }, ends, o, o.profileDir, usePerf)];
    }
    return result;
  } finally {
    await s.lab.destroy();
    pki?.remove();
  }
}

export const runTunInternet: Section<TunInternetResult> = async (ctx) => {
  ctx.log(`\n1b. Through TUN to a host beyond the server, internet-bound (${ctx.rounds} round${ctx.rounds > 1 ? 's' : ''} of ${ctx.seconds} s transfers)`);
  const tools = ctx.tools;
  if (process.getuid?.() !== 0) throw new Error('the tun-internet section needs root (network namespaces, tun devices)');
  if (!tools.iperf3) throw new Error('iperf3 is not installed');
  if (!tools.nft) throw new Error('nft (nftables) is not installed: the hub masquerades towards the host beyond with it');
  const best = ctx.tunBestMtu ?? null;
  return internetSection({
    rounds: ctx.rounds,
    seconds: ctx.seconds,
    omit: 1,
    pings: ctx.quick ? 20 : 50,
    bestMtu: best ?? DEFAULT_RAISED_MTU,
    bestMtuFrom: best ? 'tun' : 'default',
    missing: peersMissing(tools),
    profileDir: ctx.profileDir,
    log: ctx.log,
  });
};
