// What every engine test runs inside its engine, with that engine's Connect and Clock: the
// SDK client gets an address, exchanges packets with another client through the server (an
// echo peer that sends each one back), measures the time per forwarded packet, keeps the link
// alive, and comes back with the same address after the test kills its connection. It reports
// each step as an event for the test to check.
//
// Written as ES5 (var, function, no arrow, class, template or for-of; only ES5 built-ins and
// typed arrays) so that the same code runs in the ES5 context, XS, Bun, Deno and Node: the ES5
// engine test checks its syntax along with the bundle's.

import type { Client, ClientOptions, Clock, Connect, StateInfo } from '../../../client-sdk/src/index.js';

export interface ScenarioEnv {
  /** The SDK: a module namespace, or the `simplevpn` global of a bundle. */
  sdk: { Client: new (o: ClientOptions) => Client };
  connect: Connect;
  clock: Clock;
  /** The echo peer's VPN address. */
  peer: string;
  /** Packets in each timing run (200). */
  count?: number;
  /** Bytes per packet, IPv4 header included (100). */
  size?: number;
  /** A name for the server's log. */
  name?: string;
  report(event: string, fields: { [k: string]: unknown }): void;
  /** The engine's own memory figures, read once the client is ready with one connection. */
  memory?(): { [k: string]: unknown };
  /** Called once the client is closed. */
  done?(): void;
}

/** Milliseconds a phase may take before the scenario gives up and reports a failure. */
var PHASE_LIMIT = 10000;

function ipBytes(s: string): number[] {
  var p = s.split('.');
  return [+p[0], +p[1], +p[2], +p[3]];
}

/** An IPv4/UDP packet from `src` to `dst` carrying `seq`, with a correct header checksum. */
function packet(src: number[], dst: number[], seq: number, size: number): Uint8Array {
  var p = new Uint8Array(size);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 255;
  p[8] = 64;
  p[9] = 17;
  for (var i = 0; i < 4; i++) {
    p[12 + i] = src[i];
    p[16 + i] = dst[i];
  }
  var sum = 0;
  for (var j = 0; j < 20; j += 2) sum += (p[j] << 8) | p[j + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  sum = ~sum & 0xffff;
  p[10] = sum >> 8;
  p[11] = sum & 255;
  // UDP 7 -> 7, its length, no checksum (allowed over IPv4), then seq.
  p[21] = 7;
  p[23] = 7;
  p[24] = (size - 20) >> 8;
  p[25] = (size - 20) & 255;
  p[28] = (seq >>> 24) & 255;
  p[29] = (seq >> 16) & 255;
  p[30] = (seq >> 8) & 255;
  p[31] = seq & 255;
  return p;
}

export function run(env: ScenarioEnv): { client: Client; stop(): void } {
  var clock = env.clock;
  var count = env.count || 200;
  var size = env.size || 100;
  var peer = ipBytes(env.peer);
  var address = '';
  var self: number[] = [];
  var readies = 0;
  var finished = false;
  // The current echo run: packets sent and received, the window, what follows it.
  var cur: { name: string; total: number; window: number; sent: number; got: number; t0: number; next: () => void } | null = null;
  var deadline: unknown = null;

  function report(event: string, fields: { [k: string]: unknown }): void {
    env.report(event, fields);
  }

  function fail(what: string): void {
    if (finished) return;
    report('failed', { what: what, state: client.info.state, stats: client.stats });
    stop();
  }

  function limit(what: string): void {
    if (deadline !== null) clock.clearTimeout(deadline);
    deadline = clock.setTimeout(function () {
      deadline = null;
      fail('timed out: ' + what);
    }, PHASE_LIMIT);
  }

  function pump(): void {
    var r = cur!;
    while (r.sent < r.total && r.sent - r.got < r.window) {
      if (!client.send(packet(self, peer, r.sent, size))) return fail('send refused in ' + r.name + ' at ' + r.sent);
      r.sent++;
    }
  }

  function echo(name: string, total: number, window: number, next: () => void): void {
    cur = { name: name, total: total, window: window, sent: 0, got: 0, t0: clock.now(), next: next };
    limit(name);
    pump();
  }

  function received(b: Uint8Array, o: number, n: number): void {
    var r = cur;
    if (!r || n !== size || b[o + 9] !== 17) return;
    var seq = ((b[o + 28] << 24) | (b[o + 29] << 16) | (b[o + 30] << 8) | b[o + 31]) >>> 0;
    if (seq !== r.got) return fail(r.name + ': packet ' + seq + ' arrived when ' + r.got + ' was due');
    r.got++;
    if (r.got < r.total) return pump();
    var ms = clock.now() - r.t0;
    cur = null;
    report('echo', { run: r.name, packets: r.total, window: r.window, ms: Math.round(ms), us_per_packet: Math.round((ms * 1000) / r.total) });
    r.next();
  }

  // Two keepalives sent with no reconnect in between: the first was answered.
  function keepalive(): void {
    limit('keepalive');
    var poll = function (): void {
      if (finished) return;
      var s = client.stats;
      if (s.connects !== 1) return fail('reconnected while waiting for keepalives');
      if (s.keepalives < 2) {
        clock.setTimeout(poll, 100);
        return;
      }
      report('keepalive', { keepalives: s.keepalives, connects: s.connects });
      report('measure', env.memory ? env.memory() : {});
      // A moment for the test to read the engine's memory before it breaks the connection.
      clock.setTimeout(function () {
        if (!finished) report('await_reconnect', { address: address });
      }, 300);
      limit('reconnect');
    };
    poll();
  }

  function onState(s: StateInfo): void {
    if (finished) return;
    if (s.state === 'down') report('down', { reason: s.reason, code: s.code });
    if (s.state !== 'ready') return;
    readies++;
    if (readies === 1) {
      address = s.address;
      self = ipBytes(address);
      report('ready', { address: address, keepalive: s.keepalive, server: s.server });
      echo('one_at_a_time', count, 1, function () {
        echo('window_16', count, 16, keepalive);
      });
    } else {
      report('reconnected', { address: s.address, same: s.address === address, connects: client.stats.connects });
      echo('after_reconnect', 20, 1, function () {
        stop();
      });
    }
  }

  var client = new env.sdk.Client({
    connect: env.connect,
    clock: clock,
    tun: { write: received },
    name: env.name,
    timeout: 3,
    minBackoff: 0.05,
    maxBackoff: 0.2,
    onState: onState,
  });

  function stop(): void {
    if (finished) return;
    finished = true;
    if (deadline !== null) clock.clearTimeout(deadline);
    deadline = null;
    client.close();
    report('closed', { stats: client.stats });
    if (env.done) env.done();
  }

  limit('ready');
  client.start();
  return { client: client, stop: stop };
}
