// A VPN endpoint for a gateway that runs Node but has no TUN device and no root: the SDK
// client over node:net, its state reports as EventEmitter events, and the example IP stack
// so that the gateway answers ping on its VPN address and serves two UDP services:
//
//   echo    (port 7 by default)   the datagram comes back unchanged
//   status  (port 7070)           any datagram is answered with a JSON status record
//
//   const gw = new VpnGateway({ host: 'vpn.example', name: 'gw-1' });
//   gw.on('ready', (s) => console.log('on the VPN as', s.address));
//   gw.on('down', (s) => console.log('down:', s.reason, 'retry in', s.retryIn, 'ms'));
//   gw.start();
//   ...
//   await gw.close();

import { EventEmitter } from 'node:events';
import { Client, formatIPv4, parseIPv4 } from '../../client-sdk/src/index.js';
import type { DownInfo, ReadyInfo, StateInfo } from '../../client-sdk/src/index.js';
import { nodeClock, tcpConnect } from '../../client-sdk/node/index.js';
import { IpStack } from '../device/ip-stack.js';
import { counters } from '../device/device.js';

export interface GatewayOptions {
  host: string;
  port?: number;
  /** A static VPN address to ask for. */
  address?: string;
  name?: string;
  /** SDK timing, seconds: see ClientOptions. */
  keepalive?: number;
  timeout?: number;
  minBackoff?: number;
  maxBackoff?: number;
  /** UDP ports of the services; 0 turns one off. */
  echoPort?: number;
  statusPort?: number;
}

export interface GatewayEvents {
  /** Every state report of the SDK. */
  state: [StateInfo];
  /** A connection attempt starts; `attempt` counts attempts since the link was last up. */
  connecting: [{ attempt: number }];
  ready: [ReadyInfo];
  /** The link is down; the SDK retries after `retryIn` ms (exponential backoff with jitter). */
  down: [DownInfo & { attempt: number }];
  closed: [];
  /** A UDP service answered a datagram. */
  request: [{ service: 'echo' | 'status'; from: string; port: number; bytes: number }];
}

export class VpnGateway extends EventEmitter<GatewayEvents> {
  readonly client: Client;
  readonly ip: IpStack;
  private attempt = 0;
  private readonly started = nodeClock.now();

  constructor(readonly options: GatewayOptions) {
    super();
    const echoPort = options.echoPort ?? 7;
    const statusPort = options.statusPort ?? 7070;
    this.ip = new IpStack(
      (p) => this.client.send(p),
      (src, srcPort, dstPort, payload) => {
        let reply: Uint8Array | null = null;
        if (dstPort === echoPort && echoPort) reply = payload;
        else if (dstPort === statusPort && statusPort) reply = Buffer.from(JSON.stringify(this.status()));
        else return void this.ip.stats.unsupported++;
        // udp() copies the payload into the reply before returning, as the view requires.
        if (this.ip.udp(src, dstPort, srcPort, reply)) {
          this.emit('request', { service: dstPort === echoPort ? 'echo' : 'status', from: formatIPv4(src), port: srcPort, bytes: payload.length });
        }
      },
    );
    this.client = new Client({
      connect: tcpConnect({ host: options.host, port: options.port }),
      clock: nodeClock,
      tun: { write: (b, o, n) => this.ip.input(b.subarray(o, o + n)) },
      address: options.address,
      name: options.name,
      keepalive: options.keepalive,
      timeout: options.timeout,
      minBackoff: options.minBackoff,
      maxBackoff: options.maxBackoff,
      onState: (s) => this.onState(s),
    });
  }

  start(): this {
    this.client.start();
    return this;
  }

  /** Closes the link for good. Resolves once the 'closed' event has been emitted. */
  close(): Promise<void> {
    if (this.client.info.state === 'closed') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('closed', resolve));
    this.client.close();
    return done;
  }

  /** What the status service answers. */
  status(): Record<string, unknown> {
    const s = this.client.info;
    return {
      name: this.options.name ?? null,
      state: s.state,
      address: s.state === 'ready' ? s.address : null,
      uptime_s: Math.round((nodeClock.now() - this.started) / 1000),
      ...counters(this.client.stats, this.ip.stats),
    };
  }

  private onState(s: StateInfo): void {
    this.emit('state', s);
    switch (s.state) {
      case 'connecting':
        this.emit('connecting', { attempt: ++this.attempt });
        break;
      case 'ready':
        this.attempt = 0;
        this.ip.address = parseIPv4(s.address);
        this.emit('ready', s);
        break;
      case 'down':
        this.emit('down', { ...s, attempt: this.attempt });
        break;
      case 'closed':
        this.emit('closed');
        break;
    }
  }
}
