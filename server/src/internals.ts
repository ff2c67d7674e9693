// A server's insides, for tests and the bench only: not exported by the package entry
// (index.ts), and not part of VpnServer's surface. A server registers them when it is built.

import type { Admission, Client } from './control/admission.js';
import type { Authenticator } from './control/auth.js';
import type { PooledLeaseStore } from './cluster/lease-stores.js';
import type { Session } from './data/session.js';
import type { Switch } from './data/switch.js';
import type { TunPort } from './data/tun-port.js';
import type { Metrics } from './metrics/metrics.js';

export interface ServerInternals {
  readonly metrics: Metrics;
  readonly switch: Switch;
  readonly leases: PooledLeaseStore;
  readonly admission: Admission;
  /** The server's tun port while it has one. */
  readonly tun: TunPort | null;
  readonly auth: Authenticator | null;
  /** Every connection, with or without an address. */
  readonly clients: ReadonlySet<Client>;
}

const registry = new WeakMap<object, ServerInternals>();

export function registerInternals(server: object, i: ServerInternals): void {
  registry.set(server, i);
}

/** The insides of `server` (a VpnServer). */
export function internals(server: object): ServerInternals {
  const i = registry.get(server);
  if (i === undefined) throw new Error('internals(): not a VpnServer');
  return i;
}

/** The session holding `address` on `server`. */
export function sessionAt(server: object, address: number): Session | undefined {
  return internals(server).admission.holder(address)?.session;
}

/** The connection holding `address` on `server`. */
export function clientAt(server: object, address: number): Client | undefined {
  return internals(server).admission.holder(address);
}
