// Section 2, switching alone: the simplevpn server in a process of its own, with the native
// switching hub as simplevpn-server runs it, one sender and one receiver
// (bench/fixtures/switch-peer.ts, plain TCP) over loopback, no tun. The reference, in
// the same run and measured the same way: a plain TCP relay (bench/fixtures/relay.ts).
// Throughput is what the receiver frames and counts; the server's CPU comes from
// /proc/PID/stat over the same window.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Proc, SERVER_BIN, nodeFlags } from '../../test/support/lab.js';
import { FIXTURES, type Place, ask, loopbackPlace, nodeIn } from '../netlab.js';
import { type Background, type CpuShare, backgroundSampler, cpuShare, procTimes, systemShare, systemTimes, waitQuiet } from '../probes/cpu.js';
import { type ProfileSummary, summarizeProfile } from '../probes/cpuprofile.js';
import { errorText, round, sleep } from '../util.js';
import type { Section } from './section.js';

export interface SwitchCase {
  mode: 'simplevpn' | 'relay';
  size: number;
  seconds: number;
  /** Delivered to the receiver. */
  gbps: number;
  mpps: number;
  /** Written by the sender (the rest was dropped or is still queued). */
  sentGbps: number;
  cpu: { server: CpuShare | null; sender: CpuShare | null; receiver: CpuShare | null };
  /** Both cores over the window (1 = both fully busy), softirq included. */
  machine: ReturnType<typeof systemShare> | null;
  /** CPU used meanwhile by processes that are not the bench's; the wait for quiet before. */
  background: Background | null;
  quiet: { waitedMs: number; busyCores: number } | null;
  /** Server (or relay) CPU time per delivered packet, ns. */
  serverNsPerPacket: number | null;
  /** simplevpn only: the server's drop counters over the whole case. */
  drops?: Record<string, number>;
  error?: string;
}

export interface SwitchResult {
  isolated: boolean;
  rounds: number;
  /** Per mode and size, the round that delivered the most (the least disturbed). */
  cases: SwitchCase[];
  runs: SwitchCase[];
  profiles: Array<{ size: number; mpps: number; server: ProfileSummary | null; error?: string }>;
}

interface SwitchOptions {
  rounds: number;
  /** When set: one more run per packet size with the server under node --cpu-prof, here. */
  profileDir?: string;
  seconds: number;
  warmup: number;
  log: (msg: string) => void;
}

/** A peer's counters now (it prints them when sent SIGUSR2). */
async function snap(p: Proc): Promise<{ packets: number; bytes: number; sent: number; t: number }> {
  const from = p.lines.length;
  process.kill(p.pid, 'SIGUSR2');
  const l = await p.waitFor('snap', () => true, 5000, from);
  return { packets: Number(l.packets), bytes: Number(l.bytes), sent: Number(l.sent), t: Number(l.t) };
}

async function runCase(place: Place, mode: SwitchCase['mode'], size: number, o: SwitchOptions, serverFlags: string[] = []): Promise<SwitchCase> {
  const c: SwitchCase = { mode, size, seconds: o.seconds, gbps: 0, mpps: 0, sentGbps: 0, cpu: { server: null, sender: null, receiver: null }, machine: null, background: null, quiet: null, serverNsPerPacket: null };
  const procs: Proc[] = [];
  try {
    c.quiet = await waitQuiet();
    const server =
      mode === 'simplevpn'
        ? nodeIn(place, 'switch-server', join(FIXTURES, 'server.js'), [JSON.stringify({ port: 0, host: '127.0.0.1', native: true })], [...nodeFlags(SERVER_BIN), ...serverFlags])
        : nodeIn(place, 'relay', join(FIXTURES, 'relay.js'), ['127.0.0.1']);
    procs.push(server);
    const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
    const peer = (role: string, extra: object) =>
      nodeIn(place, `switch-${role}`, join(FIXTURES, 'switch-peer.js'), [JSON.stringify({ role, mode, host: '127.0.0.1', port, ...extra })]);
    const receiver = peer('receiver', {});
    procs.push(receiver);
    const dst = String((await receiver.waitFor('ready', () => true, 10_000)).address);
    const sender = peer('sender', { size, dst });
    procs.push(sender);
    await sender.waitFor('sending', () => true, 10_000);
    await sleep(o.warmup * 1000);
    const pids = [server.pid, sender.pid, receiver.pid];
    const c0 = pids.map(procTimes);
    const m0 = systemTimes();
    const bg = backgroundSampler();
    const [r0, s0] = await Promise.all([snap(receiver), snap(sender)]);
    await sleep(o.seconds * 1000);
    const c1 = pids.map(procTimes);
    c.machine = systemShare(m0, systemTimes());
    c.background = bg.until();
    const [r1, s1] = await Promise.all([snap(receiver), snap(sender)]);
    const secs = (r1.t - r0.t) / 1000;
    const cpuSecs = ((r1.t - r0.t) / 1000 + (s1.t - s0.t) / 1000) / 2;
    const packets = r1.packets - r0.packets;
    c.gbps = round(((r1.bytes - r0.bytes) * 8) / secs / 1e9, 3);
    c.mpps = round(packets / secs / 1e6, 3);
    c.sentGbps = round(((s1.sent - s0.sent) * 8) / ((s1.t - s0.t) / 1000) / 1e9, 3);
    c.cpu = { server: cpuShare(c0[0], c1[0], cpuSecs), sender: cpuShare(c0[1], c1[1], cpuSecs), receiver: cpuShare(c0[2], c1[2], cpuSecs) };
    if (c.cpu.server && packets > 0) c.serverNsPerPacket = round((c.cpu.server.total * secs * 1e9) / packets, 1);
    if (mode === 'simplevpn') {
      const st = await ask(server, 'stats', 'stats', 5000);
      c.drops = Object.fromEntries(Object.entries(st.drops as Record<string, number>).filter(([, v]) => v > 0));
    }
  } catch (e) {
    c.error = errorText(e);
  } finally {
    await Promise.all(procs.reverse().map((p) => p.stop('SIGTERM', 3000)));
  }
  const cpu = c.cpu.server ? `${Math.round(c.cpu.server.total * 100)}% of a core` : '?';
  const bg = c.background && c.background.cores >= 0.05 ? `; others used ${Math.round(c.background.cores * 100)}% of a core` : '';
  o.log(
    c.error
      ? `  ${mode} ${size} B: FAILED: ${c.error.split('\n')[0]}`
      : `  ${mode.padEnd(9)} ${String(size).padStart(4)} B packets: ${c.gbps} Gbit/s, ${c.mpps} Mpps, server CPU ${cpu}, ${c.serverNsPerPacket} ns/packet${bg}`,
  );
  return c;
}

async function switchSection(o: SwitchOptions): Promise<SwitchResult> {
  const { place, destroy, isolated } = loopbackPlace('switch');
  const result: SwitchResult = { isolated, rounds: o.rounds, cases: [], runs: [], profiles: [] };
  try {
    for (let r = 0; r < o.rounds; r++) {
      for (const size of [1500, 64]) {
        for (const mode of ['simplevpn', 'relay'] as const) {
          result.runs.push(await runCase(place, mode, size, o));
        }
      }
    }
    if (o.profileDir) {
      mkdirSync(o.profileDir, { recursive: true });
      for (const size of [1500, 64]) {
        const name = `switch-server-${size}.cpuprofile`;
        const c = await runCase(place, 'simplevpn', size, { ...o, log: (m) => o.log(m.replace(/^ {2}/, '  (profiled) ')) }, [
          '--cpu-prof',
          '--cpu-prof-dir',
          o.profileDir,
          '--cpu-prof-name',
          name,
        ]);
        try {
          result.profiles.push({ size, mpps: c.mpps, server: summarizeProfile(join(o.profileDir, name)) });
        } catch (e) {
          result.profiles.push({ size, mpps: c.mpps, server: null, error: errorText(e) });
        }
      }
    }
  } finally {
    await destroy();
  }
  for (const size of [1500, 64]) {
    for (const mode of ['simplevpn', 'relay'] as const) {
      const all = result.runs.filter((c) => c.mode === mode && c.size === size);
      const ok = all.filter((c) => !c.error);
      result.cases.push(ok.length ? ok.reduce((a, b) => (b.mpps > a.mpps ? b : a)) : all[0]);
    }
  }
  return result;
}

export const runSwitch: Section<SwitchResult> = async (ctx) => {
  ctx.log(`\n2. Switching alone (${ctx.rounds} round${ctx.rounds > 1 ? 's' : ''})`);
  return switchSection({ rounds: ctx.rounds, seconds: ctx.quick ? 2 : 5, warmup: 1, profileDir: ctx.profileDir, log: ctx.log });
};
