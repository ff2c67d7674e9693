// The shape every section has: bench/main.ts calls each section's run function with the
// same context, and stores what it returns under the section's name in latest.json. Each
// section turns the context (--quick above all) into its own sizes and durations, logs its
// heading and its measurements as it goes, and throws only when it cannot run at all.

export const SECTIONS = ['tun', 'tun-internet', 'switch', 'scale', 'sdk', 'hardening', 'cluster', 'tun6'] as const;
export type SectionName = (typeof SECTIONS)[number];

export interface RunContext {
  /** --quick: shorter transfers and fewer clients, a smoke run. */
  quick: boolean;
  /** Interleaved rounds per measurement, the best kept. */
  rounds: number;
  /** Seconds per iperf3 transfer (the TUN section). */
  seconds: number;
  /** Where CPU profiles go; absent with --no-profile, and then nothing is profiled. */
  profileDir?: string;
  /** bench/results: heap snapshots are written there, and removed. */
  outDir: string;
  /** The best raised tunnel MTU the TUN section found earlier in this run, when it ran. */
  tunBestMtu?: number | null;
  /** Versions of the tools found on this machine, null for those missing. */
  tools: Record<string, string | null>;
  log: (msg: string) => void;
}

export type Section<R> = (ctx: RunContext) => Promise<R>;

