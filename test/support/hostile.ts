// Hostile loads against a server running in a process of its own, as the security tests and
// the bench's hardening section run them (issue 12): many connections that each hold the
// start of a long frame (the server's memory is read in its own process, after a full GC),
// and many connections guessing credentials while a legitimate client logs in. Every
// process started here is stopped before the function returns, and on exit at the latest.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REFUSAL, KIND_REPLY, credentials, extKind, readRefusal } from '../../protocol/index.js';
import { type LogLine, Proc } from './lab.js';
import { FIXTURES, ROOT } from './paths.js';
import { type TestClient, newSecret, writeAuth } from './security-kit.js';
import { RawClient, extRequest, sleep, waitFor } from './server-net.js';

/** The server alone in a process (the bench's fixture: `mem` and `stats` on stdin). */
export const SERVER_FIXTURE = join(ROOT, 'dist/js/bench/fixtures/server.js');
const MB = 1024 * 1024;
/** Node flags of the server under measurement: the bin's young generation, and gc(). */
const SERVER_FLAGS = ['--expose-gc', '--max-semi-space-size=1'];
/** Open files each process of a flood may need (its sockets, and a margin). */
const NOFILE = 16_384;

const live = new Set<Proc>();
process.once('exit', () => {
  for (const p of live) p.signal('SIGKILL');
});

/** `node FLAGS script ARGS` with the open-file limit raised as far as the shell may. */
function nodeProc(name: string, script: string, args: string[], flags: string[] = []): Proc {
  const argv = [process.execPath, ...flags, script, ...args];
  const raise = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const p = new Proc(name, spawn('sh', ['-c', raise, 'sh', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] }));
  live.add(p);
  p.exited.then(() => live.delete(p));
  return p;
}

/** Writes `line` to a fixture's stdin and waits for its answer, the next `event` line. */
function ask(p: Proc, line: string, event: string, ms = 10_000): Promise<LogLine> {
  const from = p.lines.length;
  p.child.stdin!.write(line + '\n');
  return p.waitFor(event, () => true, ms, from);
}

/** `n` loopback addresses 127.0.`third`.`from`, and on (the kernel accepts any of 127/8 as a source). */
export const loopbackSources = (n: number, third: number, from = 1): string[] => Array.from({ length: n }, (_, i) => `127.0.${third}.${i + from}`);

export interface ServerProc {
  proc: Proc;
  port: number;
  /** After a full GC: the server's resident set and V8's figures. */
  mem(): Promise<{ rss: number; heapUsed: number; external: number; arrayBuffers: number }>;
  /** Connections open, and the counters by reason. */
  stats(): Promise<{ open: number; refusals: Record<string, number>; disconnects: Record<string, number>; drops: Record<string, number> }>;
  stop(): Promise<void>;
}

/** Starts the server fixture with createServer `options` (JSON); `log`: its log lines as JSON on stdout, from that level. */
export async function serverProc(options: object, log?: 'debug' | 'info' | 'warn', script = SERVER_FIXTURE): Promise<ServerProc> {
  const proc = nodeProc('server', script, [JSON.stringify({ port: 0, host: '127.0.0.1', ...options, log })], SERVER_FLAGS);
  const port = Number((await proc.waitFor('listening', (l) => l.port !== undefined, 15_000)).port);
  return {
    proc,
    port,
    mem: async () => (await ask(proc, 'mem', 'mem')) as any,
    stats: async () => (await ask(proc, 'stats', 'stats')) as any,
    stop: async () => void (await proc.stop('SIGTERM', 5000)),
  };
}

function peersProc(args: object): Proc {
  return nodeProc('peers', join(FIXTURES, 'hostile-peers.js'), [JSON.stringify(args)]);
}

// ---- partial frames -----------------------------------------------------------------------------

export interface PartialFrameResult {
  conns: number;
  opened: number;
  /** RSS of the server (bytes, after a full GC): before, with the connections open, after they closed. */
  baseline: number;
  held: number;
  after: number;
  /** When `after` was read: once back within a fifth of the rise (or 1 MB) of the baseline, or after 10 s. */
  afterSeconds: number;
  /** What the open connections added: RSS, JS heap, buffers outside the heap. */
  rssPerConn: number;
  heapPerConn: number;
  arrayBuffersPerConn: number;
  /** The server's counters at the end. */
  disconnects: Record<string, number>;
  seconds: number;
}

/**
 * `conns` connections from `sources`, each sending `hex` (by default the first 4 bytes of an
 * IPv4 header declaring 65,535 bytes) and nothing more, against a server started with
 * `options` (per-source limits off, handshake and frame timeouts long enough to measure).
 */
export async function partialFrames(o: { conns: number; sources: string[]; hex?: string; options?: object; script?: string }): Promise<PartialFrameResult> {
  const t0 = Date.now();
  const hex = o.hex ?? '4500ffff';
  const srv = await serverProc({ maxPerSource: 0, connRate: 0, handshakeTimeout: 300, frameTimeout: 300, idleTimeout: 600, ...o.options }, undefined, o.script);
  const procs: Proc[] = [];
  try {
    const flood = async (n: number) => {
      const p = peersProc({ mode: 'partial', port: srv.port, conns: n, sources: o.sources, hex });
      procs.push(p);
      const opened = Number((await p.waitFor('opened', () => true, 60_000)).opened);
      await waitUntil(async () => (await srv.stats()).open === opened, 30_000, `the server to hold ${opened} connections`);
      return { p, opened };
    };
    const closeAll = async (p: Proc) => {
      await ask(p, 'close', 'closed');
      await waitUntil(async () => (await srv.stats()).open === 0, 30_000, 'every connection to close');
      await p.stop();
    };
    // A first round, so that what the server allocates once (code, caches) is in the baseline.
    await closeAll((await flood(Math.min(200, o.conns))).p);
    const base = await settled(srv);
    const { p, opened } = await flood(o.conns);
    const held = await settled(srv);
    await closeAll(p);
    // What was freed goes back to the system over a few seconds (V8 keeps freed pages a while).
    const closed = Date.now();
    let after = await settled(srv);
    while (after.rss - base.rss > Math.max(MB, (held.rss - base.rss) / 5) && Date.now() - closed < 10_000) {
      await sleep(1000);
      after = await settled(srv);
    }
    const per = (k: 'rss' | 'heapUsed' | 'arrayBuffers') => Math.round((held[k] - base[k]) / Math.max(1, opened));
    return {
      conns: o.conns,
      opened,
      baseline: base.rss,
      held: held.rss,
      after: after.rss,
      afterSeconds: Math.round((Date.now() - closed) / 100) / 10,
      rssPerConn: per('rss'),
      heapPerConn: per('heapUsed'),
      arrayBuffersPerConn: per('arrayBuffers'),
      disconnects: (await srv.stats()).disconnects,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await srv.stop();
  }
}

/** The server's memory once a full GC has run and V8 has swept and given back what it freed. */
async function settled(srv: ServerProc): ReturnType<ServerProc['mem']> {
  await srv.mem();
  await sleep(300);
  await srv.mem();
  await sleep(300);
  return srv.mem();
}

/** Polls an asynchronous condition (bounded). */
async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// ---- guessing credentials -------------------------------------------------------------------------

export interface LoginTry {
  id: string;
  ms: number;
  /** 'granted', or the refusal's code, or 'no answer'. */
  outcome: string;
}

export interface GuessingResult {
  /** The legitimate client, whose proof the server verified before the attack. */
  known: LoginTry[];
  /** Clients logging in for the first time during the attack (proof not yet verified). */
  fresh: LoginTry[];
  attack: { conns: number; sources: number; seconds: number; tries: number; answers: Record<string, number>; unanswered: number; errors: number };
  /** The server's counters, and its log lines (warn and above) when asked for. */
  refusals: Record<string, number>;
  log: LogLine[];
}

/** One login from 127.0.0.1 with `c`'s credentials: how long until the answer, and which. */
async function login(port: number, c: TestClient, ms: number): Promise<LoginTry> {
  const t0 = Date.now();
  let r: RawClient | null = null;
  try {
    r = await RawClient.connect(port, { localAddress: '127.0.0.1' });
    r.write(extRequest(0, credentials(c.id, c.secret)));
    await waitFor(() => r!.frames.length > 0 || r!.closed, ms, 'the answer').catch(() => {});
    const f = r.frames[0];
    const outcome = !f ? 'no answer' : extKind(f) === KIND_REPLY ? 'granted' : extKind(f) === KIND_REFUSAL ? String(readRefusal(f).code) : 'other';
    return { id: c.id, ms: Date.now() - t0, outcome };
  } catch (e) {
    return { id: c.id, ms: Date.now() - t0, outcome: String((e as Error).message) };
  } finally {
    r?.destroy();
  }
}

/**
 * `conns` connections from `sources` loopback addresses guess secrets (of the legitimate
 * client's id, of other listed ids, of ids that do not exist), each at most once per `pace`
 * ms; meanwhile the legitimate client, verified once before, logs in `tries` times, and as
 * many clients never seen before log in once each.
 */
export async function guessing(o: { conns: number; sources: number; tries: number; pace?: number; warmup?: number; options?: object; log?: boolean; script?: string }): Promise<GuessingResult> {
  const dir = mkdtempSync(join(tmpdir(), 'svpn-guess-'));
  const known: TestClient = { id: 'legit', secret: newSecret() };
  const fresh: TestClient[] = Array.from({ length: o.tries }, (_, i) => ({ id: `fresh-${i}`, secret: newSecret() }));
  const decoys: TestClient[] = Array.from({ length: 5 }, (_, i) => ({ id: `decoy-${i}`, secret: newSecret() }));
  const procs: Proc[] = [];
  let srv: ServerProc | null = null;
  try {
    const auth = await writeAuth(join(dir, 'auth.json'), [known, ...fresh, ...decoys]);
    srv = await serverProc({ auth, ...o.options }, o.log ? 'warn' : undefined, o.script);
    const first = await login(srv.port, known, 5000);
    if (first.outcome !== 'granted') throw new Error(`the legitimate client could not log in before the attack: ${first.outcome}`);
    const guesses: Array<[string, string]> = [];
    for (let i = 0; i < 64; i++) {
      guesses.push([known.id, `guess-${i}`], [decoys[i % decoys.length].id, `guess-${i}`], [`ghost-${i}`, `guess-${i}`]);
    }
    const peers = peersProc({ mode: 'guess', port: srv.port, conns: o.conns, sources: loopbackSources(o.sources, 0, 2), guesses, pace: o.pace ?? 200 });
    procs.push(peers);
    await peers.waitFor('guessing', () => true, 10_000);
    const t0 = Date.now();
    await sleep(o.warmup ?? 2000);
    const knownTries: LoginTry[] = [];
    const freshTries: LoginTry[] = [];
    for (let i = 0; i < o.tries; i++) {
      knownTries.push(await login(srv.port, known, 5000));
      freshTries.push(await login(srv.port, fresh[i], 5000));
      await sleep(100);
    }
    const stopped = await ask(peers, 'stop', 'stopped', 15_000);
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    const stats = await srv.stats();
    return {
      known: knownTries,
      fresh: freshTries,
      attack: { conns: o.conns, sources: o.sources, seconds, tries: Number(stopped.tries), answers: stopped.answers as Record<string, number>, unanswered: Number(stopped.unanswered), errors: Number(stopped.errors) },
      refusals: stats.refusals,
      log: srv.proc.lines.filter((l) => l.level === 'warn' || l.level === 'error'),
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
