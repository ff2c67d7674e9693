// Warming the data path at start-up. A fresh server runs its first packets in code V8 has
// not compiled or optimised yet, several times slower than once warm (docs/performance.md,
// "RTT"), so the first pings of a fresh tunnel took twice as long as later ones. Before the
// server listens, a throw-away server of the same code (its own switch, counters and memory
// lease store; plain TCP on 127.0.0.1 at a port the kernel picks, no tun, no status
// listener, no log) switches a few thousand packets between two clients, over real loopback
// sockets (warm-up-clients.ts), and everything is closed again.
//
// V8 keeps type feedback and optimised code per function, not per object: the sessions, the
// framer, the switch and Node's socket read, cork and writev code that the real server runs
// are the same functions, met with objects of the same shapes (the same classes, built by
// the same constructor from the same kind of options), so the server's first clients start
// on code that is optimised already. The packets are IPv4 between two extension clients, as
// the Linux client sends them: pings one at a time (a frame per chunk, one write per
// packet) and bursts of full-size packets (many frames per chunk, one corked writev).

import type { Socket } from 'node:net';
import { ANY, KIND_REQUEST, T_CLIENT, T_MTU, ascii, extMessage, parseIPv4, u16, writeU32 } from '../../../protocol/index.js';
import type { ResolvedConfig, ServerOptions } from '../config/config.js';
import { type ClientsJob, runClients } from './warm-up-clients.js';

/** What the warm-up needs of a server: the throw-away one is a VpnServer. */
export interface WarmUpServer {
  listen(): Promise<void>;
  close(): Promise<void>;
  readonly port: number;
}

export interface WarmUpResult {
  /** Wall time, ms. */
  ms: number;
  /** CPU time of the whole process meanwhile (V8's compiler threads included), ms. */
  cpuMs: number;
  /** Packets the throw-away server switched. */
  packets: number;
}

/** How much work: enough for V8 to optimise the per-packet functions (measured in docs/performance.md, RTT). */
export interface WarmUpWork {
  /** Round trips of one ping-sized packet. */
  pings: number;
  /** Bursts of `burst` full-size packets, each answered by one ping-sized packet. */
  bursts: number;
  burst: number;
  /**
   * Throw-away servers, one after the other, the work shared. The first server's sessions
   * and sockets leave V8 state that the next server's first connections change again
   * (fields of shared objects generalised, maps replaced: --trace-deopt shows "wrong map" in
   * Session.onData, deliver and Switch.route at the next server's first packets). With one,
   * that happened at the real server's first clients, and its first 200 pings cost more
   * CPU than without any warm-up; with two, the second meets it and has the code
   * re-optimised (docs/performance.md, RTT).
   */
  servers: number;
}

export const WARM_UP_WORK: WarmUpWork = { pings: 1500, bursts: 300, burst: 16, servers: 2 };

/** A warm-up that takes longer than this is given up (and logged): never a hung start. */
export const WARM_UP_TIMEOUT_MS = 3000;

/** The throw-away server's subnet and its two clients' addresses. */
const SUBNET = '10.0.0.0/24';
const ADDRESS_A = parseIPv4('10.0.0.2');
const ADDRESS_B = parseIPv4('10.0.0.3');
/** An ICMP echo's size: 20 bytes of IPv4, 8 of ICMP, 56 of data (ping's default). */
const PING_BYTES = 84;

/**
 * The throw-away server's options: what shapes the data path as the real server's config
 * does (MTU, frame and queue limits, WebSocket detection on the listener), the rest closed
 * off. `warmUp` stays off: it does not warm itself.
 */
export function warmUpOptions(c: Readonly<ResolvedConfig>): ServerOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    tun: false,
    subnet: SUBNET,
    mtu: c.mtu,
    maxFrame: c.maxFrame,
    sendQueue: c.sendQueue,
    frameMemory: c.frameMemory,
    ws: c.ws !== null,
    wsPath: c.ws?.path,
    // Admission limits as the real server's: they leave state on each socket (limits.ts), and
    // a socket of another shape would deoptimise the code warmed for it at the first client.
    maxPerSource: c.maxPerSource,
    connRate: c.connRate,
  };
}

/**
 * Runs the warm-up on servers `make` builds from `options` (warmUpOptions()), one after the
 * other (`work.servers` of them, the work shared), each closed with its clients whatever
 * happens. Rejects when something fails or it all takes longer than `timeoutMs`; the caller
 * goes on without it.
 */
export async function warmDataPath(
  make: (options: ServerOptions) => WarmUpServer,
  options: ServerOptions,
  work: WarmUpWork = WARM_UP_WORK,
  timeoutMs = WARM_UP_TIMEOUT_MS,
): Promise<WarmUpResult> {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  const all = async () => {
    for (let i = 0; i < work.servers; i++) {
      const share = (n: number) => Math.floor((n * (i + 1)) / work.servers) - Math.floor((n * i) / work.servers);
      await warmOnce(make, options, { pings: share(work.pings), bursts: share(work.bursts), burst: work.burst, servers: 1 }, deadline);
    }
  };
  const running = all();
  try {
    await Promise.race([deadline, running]);
  } catch (err) {
    // Past the deadline the server being warmed is still closing: it is gone before this rejects.
    await running.catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    ms: Number(process.hrtime.bigint() - t0) / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1000,
    packets: 2 * work.pings + work.bursts * (work.burst + 1),
  };
}

/** One throw-away server and its two clients; closed when done or when `deadline` rejects. */
async function warmOnce(make: (options: ServerOptions) => WarmUpServer, options: ServerOptions, work: WarmUpWork, deadline: Promise<never>): Promise<void> {
  const server = make(options);
  const sockets: Socket[] = [];
  const run = async () => {
    await server.listen();
    const mtu = Math.min(1500, Number(options.mtu ?? 1500));
    const request = (address: number) => extMessage(address, ANY, KIND_REQUEST, [[T_MTU, u16(mtu)], [T_CLIENT, ascii('warm-up')]]);
    const job: ClientsJob = {
      port: server.port,
      requests: [request(ADDRESS_A), request(ADDRESS_B)],
      addresses: [ADDRESS_A, ADDRESS_B],
      pingAB: packet(ADDRESS_A, ADDRESS_B, PING_BYTES),
      pingBA: packet(ADDRESS_B, ADDRESS_A, PING_BYTES),
      burst: Buffer.concat(Array.from({ length: work.burst }, () => packet(ADDRESS_A, ADDRESS_B, mtu))),
      pings: work.pings,
      bursts: work.bursts,
    };
    await runClients(job, sockets);
  };
  try {
    await Promise.race([deadline, run()]);
  } finally {
    await Promise.all(sockets.map(closed));
    await server.close();
  }
}

/** A well-formed IPv4 packet (ICMP, Don't Fragment) of `len` bytes from `src` to `dst`. */
function packet(src: number, dst: number, len: number): Buffer {
  const p = Buffer.alloc(len);
  p[0] = 0x45;
  p.writeUInt16BE(len, 2);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = 1;
  writeU32(p, 12, src);
  writeU32(p, 16, dst);
  return p;
}

/** Destroys `s` and waits for its handle to be gone (bounded: a destroyed socket closes within a turn or two). */
function closed(s: Socket): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 1000);
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    s.destroy();
  });
}
