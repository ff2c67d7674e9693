// The device application: the SDK client, the IP stack behind it, and a sensor that sends
// one small JSON reading over UDP to a collector on the VPN every `interval` seconds.
// Nothing here knows which engine it runs on: a Platform gives it the network (Connect),
// time (Clock) and somewhere to report to (log). See main.ts for the embedded entry point
// and node.ts / ../quickjs/ for two platforms.

import { Client, formatIPv4, parseIPv4 } from '../../client-sdk/src/index.js';
// The TLV reader the SDK core bundles anyway (its reply reader), for the IPv6 grant.
import { T_IPV6, eachTlv } from '../../protocol/index.js';
import type { ClientStats, Clock, Connect, StateInfo } from '../../client-sdk/src/index.js';
import { IpStack, type IpStats } from './ip-stack.js';

export interface Platform {
  /** Opens a connection to the VPN server (the only network code a port writes). */
  connect: Connect;
  /** Time and timers (the only other platform code). */
  clock: Clock;
  /** Reports an event: a runner prints it as a JSON line, a firmware over its UART. */
  log(event: string, fields: Record<string, unknown>): void;
  /** The sensor, in °C. A slow simulated sine when absent. */
  temperature?(): number;
}

export interface DeviceConfig {
  /** Name in each reading and in the server's log. */
  id: string;
  /** Where readings go: "10.0.0.5:5005", an address on the VPN. */
  collector: string;
  /** Seconds between readings (10). */
  interval?: number;
  /** A static VPN address to ask for; omitted, the server picks and the device keeps it across reconnects. */
  address?: string;
  /** Ask for an IPv6 address too, and answer ping -6 on it (a server with --subnet6 grants one). */
  ipv6?: boolean;
  /** Passed to the SDK Client: seconds. */
  keepalive?: number;
  timeout?: number;
  minBackoff?: number;
  maxBackoff?: number;
}

export interface Device {
  readonly client: Client;
  readonly ip: IpStack;
  /** Readings sent so far (the last reading's seq). */
  readonly seq: number;
  /** Closes the link and stops every timer; logs 'stopped' with the counters. */
  stop(): void;
}

/** JSON with every non-ASCII character escaped, so one char is one byte on the wire. */
function asciiJson(o: unknown): Uint8Array {
  const s = JSON.stringify(o).replace(/[\u0080-\uffff]/g, (c) => '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4));
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

export function startDevice(p: Platform, c: DeviceConfig): Device {
  const colon = c.collector.lastIndexOf(':');
  const dst = parseIPv4(c.collector.slice(0, colon));
  const port = +c.collector.slice(colon + 1);
  if (dst <= 0 || !(port > 0 && port < 65536)) throw new Error('collector must be ADDRESS:PORT, got ' + c.collector);
  const clock = p.clock;
  const t0 = clock.now();
  const uptime = () => (clock.now() - t0) / 1000;
  const temperature = p.temperature || (() => Math.round((21 + 3 * Math.sin(uptime() / 600)) * 10) / 10);
  let seq = 0;
  let timer: unknown = null;

  const ip: IpStack = new IpStack((pkt) => client.send(pkt));
  const client = new Client({
    connect: p.connect,
    clock,
    // A view per packet is simple and cheap here; a stack that reads (buf, offset) directly
    // would allocate nothing at all.
    tun: { write: (buf, offset, length) => ip.input(buf.subarray(offset, offset + length)) },
    address: c.address,
    // Any IPv6 address: an empty TLV 24 (PROTOCOL.md, "IPv6").
    tlvs: c.ipv6 ? [[T_IPV6, new Uint8Array(0)]] : undefined,
    name: c.id,
    keepalive: c.keepalive,
    timeout: c.timeout,
    minBackoff: c.minBackoff,
    maxBackoff: c.maxBackoff,
    onState: (s: StateInfo) => {
      if (s.state === 'ready') {
        ip.address = parseIPv4(s.address);
        // TLV 24 of an extension reply: the IPv6 address (16 bytes) and its prefix length.
        ip.address6 = null;
        if (s.server === 'simplevpn') eachTlv(s.reply, (t, v) => {
          if (t === 24 && v.length === 17) ip.address6 = v.subarray(0, 16);
        });
        p.log('ready', { address: s.address, prefix: s.prefix, gateway: s.gateway, mtu: s.mtu, keepalive: s.keepalive, server: s.server });
      } else if (s.state === 'down') p.log('down', { reason: s.reason, detail: s.detail, code: s.code, retry_in_s: s.retryIn / 1000 });
      else p.log(s.state, {});
    },
  });

  // One reading per interval while the link is up; none are queued while it is down.
  const tick = () => {
    timer = clock.setTimeout(tick, (c.interval || 10) * 1000);
    if (client.info.state !== 'ready') return;
    const reading = { id: c.id, seq: ++seq, uptime_s: Math.round(uptime()), temp_c: temperature() };
    const sent = ip.udp(dst, port, port, asciiJson(reading));
    p.log('telemetry', { seq, to: formatIPv4(dst) + ':' + port, sent });
  };

  client.start();
  tick();
  return {
    client,
    ip,
    get seq() {
      return seq;
    },
    stop() {
      if (timer !== null) clock.clearTimeout(timer);
      timer = null;
      client.close();
      const f = counters(client.stats, ip.stats);
      f.readings = seq;
      p.log('stopped', f);
    },
  };
}

/** The SDK's and the IP stack's counters as one flat record for a log line. */
export function counters(c: ClientStats, s: IpStats): Record<string, number> {
  return {
    connects: c.connects,
    keepalives: c.keepalives,
    rx_packets: c.rxPackets,
    tx_packets: c.txPackets,
    link_dropped: c.dropped,
    echo_replies: s.echoReplies,
    udp_in: s.udpIn,
    malformed: s.malformed,
    bad_checksum: s.badChecksum,
    fragment: s.fragment,
    not_for_us: s.notForUs,
    unsupported: s.unsupported,
    send_failed: s.sendFailed,
  };
}
