// The Node side of every engine test: a real simplevpn server on loopback (no tun), a second
// SDK client that sends every packet it gets back to where it came from (the echo peer of
// scenario.ts), and the server-side kill of a client's connection that the scenario waits
// for. Also what the tests check of a scenario's events, the same for every engine.
import { spawn } from 'node:child_process';
import * as assert from 'uvu/assert';
import { Client } from '../../../client-sdk/src/index.js';
import { nodeClock, tcpConnect } from '../../../client-sdk/node/index.js';
import { parseIPv4 } from '../../../protocol/index.js';
import { createServer, type VpnServer } from '../../../server/src/server.js';
import { sessionAt } from '../../../server/src/internals.js';
import { es5Script } from './espruino-stand-in.js';

export interface Event {
  event: string;
  [k: string]: unknown;
}

export class EngineLab {
  peerAddress = '';
  echoed = 0;
  private constructor(
    readonly server: VpnServer,
    readonly peer: Client,
  ) {}

  /**
   * A server pushing a 1 s keepalive (so the scenario sees two within seconds) and the echo
   * peer, ready.
   */
  static async start(): Promise<EngineLab> {
    const server = createServer({ tun: false, host: '127.0.0.1', port: 0, keepalive: 1, idleTimeout: 4, connRate: 0 });
    await server.listen();
    let lab: EngineLab;
    const peer = new Client({
      connect: tcpConnect({ host: '127.0.0.1', port: server.port }),
      clock: nodeClock,
      name: 'echo-peer',
      tun: {
        write(b, o, n) {
          // A copy with source and destination swapped (b may be a Buffer, whose slice is a view).
          const p = new Uint8Array(n);
          p.set(b.subarray(o + 16, o + 20), 12);
          p.set(b.subarray(o + 12, o + 16), 16);
          p.set(b.subarray(o, o + 12), 0);
          p.set(b.subarray(o + 20, o + n), 20);
          lab.echoed++;
          lab.peer.send(p);
        },
      },
      onState: (s) => {
        if (s.state === 'ready') lab.peerAddress = s.address;
      },
    });
    lab = new EngineLab(server, peer);
    peer.start();
    await until('the echo peer to be ready', () => lab.peerAddress !== '');
    return lab;
  }

  /** Breaks the connection of the client at `address`, from the server's side. */
  kill(address: string): boolean {
    const s = sessionAt(this.server, parseIPv4(address));
    if (!s) return false;
    s.socket.destroy();
    return true;
  }

  async close(): Promise<void> {
    this.peer.close();
    await this.server.close();
  }
}

export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The scenario's reaction: kills the connection when it asks. Returns the events so far. */
export function reactor(lab: EngineLab, events: Event[], extra?: (e: Event) => void): (e: Event) => void {
  return (e) => {
    events.push(e);
    // Called from an engine's output or a bridge: a failure is recorded for checkScenario.
    if (e.event === 'await_reconnect' && !lab.kill(e.address as string)) events.push({ event: 'failed', what: `the server holds no client at ${e.address} to kill` });
    extra?.(e);
  };
}

/**
 * Runs a program that runs the scenario and prints its events as JSON lines; resolves when
 * it exits (killed after `ms`).
 */
export function runProgram(cmd: string, args: string[], onEvent: (e: Event) => void, ms = 45_000): Promise<{ code: number | null; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      for (let nl; (nl = out.indexOf('\n')) >= 0; ) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith('{')) onEvent(JSON.parse(line));
        else if (line.trim()) stderr += line + '\n';
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${ms} ms)`;
      child.kill('SIGKILL');
    }, ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - t0 });
    });
  });
}

/**
 * The scenario in an engine that runs runtime-main.js as a program: `command` + `args`, then
 * the file, the server's port, the peer's address and the transport. Checks the events and
 * that the program exits 0 by itself once the client is closed.
 */
export async function programScenario(engine: string, command: string, args: string[], transport: 'native' | 'node'): Promise<Record<string, unknown>> {
  const lab = await EngineLab.start();
  try {
    const events: Event[] = [];
    const main = new URL('./runtime-main.js', import.meta.url).pathname;
    const r = await runProgram(command, [...args, main, String(lab.server.port), lab.peerAddress, transport], reactor(lab, events));
    assert.is(r.code, 0, `${engine} exited with ${r.code}: ${r.stderr}\nevents: ${JSON.stringify(events)}`);
    checkScenario(events, lab);
    const v = events.find((e) => e.event === 'engine');
    return figures(engine, events, { version: v?.version, transport, run_ms: r.ms });
  } finally {
    await lab.close();
  }
}

/** What every engine must have done: the checks are the same for all of them. */
export function checkScenario(events: Event[], lab: EngineLab): void {
  const of = (name: string) => events.filter((e) => e.event === name);
  const failed = of('failed');
  assert.equal(failed, [], 'the scenario failed: ' + JSON.stringify(failed));
  const ready = of('ready');
  assert.is(ready.length, 1, 'one first ready');
  assert.ok(/^10\.0\.\d+\.\d+$/.test(ready[0].address as string), 'an address in the server subnet: ' + ready[0].address);
  assert.is(ready[0].server, 'simplevpn');
  assert.is(ready[0].keepalive, 1, 'the keepalive the server pushed');
  const echo = of('echo').map((e) => [e.run, e.packets]);
  assert.equal(echo, [
    ['one_at_a_time', 200],
    ['window_16', 200],
    ['after_reconnect', 20],
  ]);
  assert.ok(lab.echoed >= 420, 'the peer echoed every packet: ' + lab.echoed);
  const ka = of('keepalive')[0];
  assert.ok(ka && (ka.keepalives as number) >= 2 && ka.connects === 1, 'two keepalives answered on the first connection: ' + JSON.stringify(ka));
  assert.is(of('down').length, 1, 'one down: the connection the test killed');
  const back = of('reconnected');
  assert.is(back.length, 1);
  assert.is(back[0].address, ready[0].address, 'the same address after the reconnect');
  assert.is(back[0].connects, 2);
  const closed = of('closed');
  assert.is(closed.length, 1, 'closed at the end');
}

/** The events' figures, one line for the test log. */
export function figures(engine: string, events: Event[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const us = (run: string) => events.find((e) => e.event === 'echo' && e.run === run)?.us_per_packet;
  const f = { engine, us_per_packet_one_at_a_time: us('one_at_a_time'), us_per_packet_window_16: us('window_16'), ...events.find((e) => e.event === 'measure'), ...extra };
  delete (f as { event?: string }).event;
  console.log('  ' + JSON.stringify(f));
  return f;
}

export { es5Script };

/** scenario.ts as a script defining the global `scenario`. */
export const scenarioScript = () => es5Script('test/support/engines/scenario.ts', 'scenario');
