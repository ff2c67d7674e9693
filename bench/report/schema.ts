// The shape of bench/results/latest.json (version 1): everything one run measured, with the
// targets judged against it. latest.md and latest.svg are drawn from this alone (--render).

import type { ClusterResult } from '../sections/cluster.js';
import type { HardeningResult } from '../sections/hardening.js';
import type { ScaleResult } from '../sections/scale.js';
import type { SdkResult } from '../sections/sdk.js';
import type { SwitchResult } from '../sections/switch.js';
import type { TunResult } from '../sections/tun.js';
import type { TunInternetResult } from '../sections/tun-internet.js';
import type { Tun6Result } from '../sections/tun6.js';

export interface Machine {
  cpus: number;
  model: string;
  memGiB: number;
  kernel: string;
  node: string;
  loadavgAtStart: string;
  /** This machine's TCP congestion control (net.ipv4.tcp_congestion_control), and the one the
   * bench set in every namespace it made; absent in results from before they were recorded. */
  tcp?: { host: string; namespaces: string };
}

export interface BenchResults {
  version: 1;
  date: string;
  /** The code measured: the commit, and files of the data path changed since it. */
  code: { commit: string; changed: string[] };
  mode: 'full' | 'quick';
  sections: string[];
  durationS: number;
  machine: Machine;
  tools: Record<string, string | null>;
  notes: string[];
  tun?: TunResult;
  'tun-internet'?: TunInternetResult;
  switch?: SwitchResult;
  scale?: ScaleResult;
  sdk?: SdkResult;
  hardening?: HardeningResult;
  cluster?: ClusterResult;
  tun6?: Tun6Result;
  targets: Target[];
}

/** One target (issues 7, 12-15, 17), as judged in this run (report/targets.ts). */
export interface Target {
  id: string;
  section: string;
  target: string;
  measured: string;
  ratio: string;
  status: 'met' | 'missed' | 'not measured';
}
