// Counters of the server, and their Prometheus text rendering for /metrics.

/** Why a packet was not delivered. */
export type DropReason =
  | 'spoofed_source' // source is not the sender's assigned address
  | 'unassigned' // data before the sender had an address
  | 'no_route' // no client owns the destination and there is no tun
  | 'queue_full' // the destination client's send queue is at its cap
  | 'tun_full' // the tun device had no room
  | 'tun_rejected' // the kernel refused the packet (not valid IP)
  | 'too_big' // larger than the destination client's MTU, with Don't Fragment: ICMP sent back
  | 'fragment_overflow' // to be fragmented, but its fragment offset plus length pass 65,535: the offsets would wrap
  | 'not_ipv4' // IPv6 from a client that holds no IPv6 address (or the server has none), or a frame of another version
  | 'bad_ipv6'; // an IPv6 header chain not passed on: a jumbogram, extension headers too many, cut short, or a type 0 routing header

export const DROP_REASONS: DropReason[] = ['spoofed_source', 'unassigned', 'no_route', 'queue_full', 'tun_full', 'tun_rejected', 'too_big', 'fragment_overflow', 'not_ipv4', 'bad_ipv6'];

/** How the lease store is doing (a store that records beyond this process). */
export interface StoreGauges {
  kind: string;
  reachable: boolean;
  held: number;
  elsewhere: number;
  routes: number;
}

export class Metrics {
  connections = 0;
  /** Data packets and bytes received from clients. */
  rxPackets = 0;
  rxBytes = 0;
  /** Data packets and bytes written towards clients. */
  txPackets = 0;
  txBytes = 0;
  tunRxPackets = 0;
  tunTxPackets = 0;
  keepalives = 0;
  /** Fragments made of packets larger than their destination's MTU. */
  fragmented = 0;
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  readonly refusals: Record<string, number> = {};
  readonly disconnects: Record<string, number> = {};

  refused(reason: string): void {
    this.refusals[reason] = (this.refusals[reason] ?? 0) + 1;
  }

  disconnected(reason: string): void {
    this.disconnects[reason] = (this.disconnects[reason] ?? 0) + 1;
  }

  /** Prometheus text exposition format, version 0.0.4. */
  render(g: { sessions: number; inUse: number; free: number; tun: boolean; store?: StoreGauges }): string {
    const out: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
      out.push(`# HELP simplevpn_${name} ${help}`, `# TYPE simplevpn_${name} ${type}`);
      for (const [labels, v] of samples) out.push(`simplevpn_${name}${labels} ${v}`);
    };
    const byLabel = (label: string, rec: Record<string, number>): Array<[string, number]> =>
      Object.keys(rec).map((k) => [`{${label}="${k}"}`, rec[k]]);
    metric('sessions', 'gauge', 'Open client connections, with or without an address.', [['', g.sessions]]);
    metric('addresses_in_use', 'gauge', 'Addresses of the pool held by clients.', [['', g.inUse]]);
    metric('addresses_free', 'gauge', 'Addresses of the pool still free.', [['', g.free]]);
    metric('tun_up', 'gauge', '1 when the server has its own tun device.', [['', g.tun ? 1 : 0]]);
    const st = g.store;
    if (st) {
      const kind = `{store="${st.kind}"}`;
      metric('lease_store_reachable', 'gauge', 'The lease store records leases now: 1 when etcd answers (or the state file is writable), 0 when not.', [[kind, st.reachable ? 1 : 0]]);
      metric('leases_held', 'gauge', "Leases recorded for this server's clients.", [[kind, st.held]]);
      metric('leases_elsewhere', 'gauge', 'Leases recorded for clients of other servers (etcd), or not back since a restart (state file).', [[kind, st.elsewhere]]);
      metric('peer_routes', 'gauge', "Kernel routes installed to other servers' clients.", [[kind, st.routes]]);
    }
    metric('connections_total', 'counter', 'Connections accepted.', [['', this.connections]]);
    metric('received_packets_total', 'counter', 'Data packets received from clients.', [['', this.rxPackets]]);
    metric('received_bytes_total', 'counter', 'Bytes of data packets received from clients.', [['', this.rxBytes]]);
    metric('sent_packets_total', 'counter', 'Data packets sent to clients.', [['', this.txPackets]]);
    metric('sent_bytes_total', 'counter', 'Bytes of data packets sent to clients.', [['', this.txBytes]]);
    metric('tun_received_packets_total', 'counter', 'Packets read from the server tun.', [['', this.tunRxPackets]]);
    metric('tun_sent_packets_total', 'counter', 'Packets written to the server tun.', [['', this.tunTxPackets]]);
    metric('keepalives_total', 'counter', 'Keepalives echoed.', [['', this.keepalives]]);
    metric('fragments_total', 'counter', "Fragments made of packets larger than their destination's MTU.", [['', this.fragmented]]);
    metric('dropped_packets_total', 'counter', 'Packets not delivered, by reason.', byLabel('reason', this.drops));
    metric('refusals_total', 'counter', 'Address requests or connections refused, by reason.', byLabel('reason', this.refusals));
    metric('disconnects_total', 'counter', 'Sessions ended, by reason.', byLabel('reason', this.disconnects));
    return out.join('\n') + '\n';
  }
}
