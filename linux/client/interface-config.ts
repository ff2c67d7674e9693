// What to change on the tun device when the server pushes a configuration, given what is
// configured on it now: nothing when nothing differs, so a reconnect that gets the same
// address and routes leaves the interface (and the connections through it) alone. Pure: the
// caller applies the changes (linux/client/main.ts) and tests check them without a device.

import type { Route } from '../../client-sdk/src/client.js';
import type { Ipv6Config } from '../../protocol/index.js';

/** Address, prefix and MTU: what TunDevice.configure() sets in one go. */
export interface Addressing {
  address: string;
  prefix: number;
  mtu: number;
}

/** The IPv6 address on the device, with its prefix length. */
export interface Addressing6 {
  address: string;
  prefix: number;
}

/** What the server pushed (the SDK's 'ready' state has these fields; ipv6 from readIpv6Config). */
export interface Pushed extends Addressing {
  routes: Route[];
  /** The IPv6 address and routes granted, or null (absent: none). */
  ipv6?: Ipv6Config | null;
}

/** What is configured on the device now: nothing yet, or what the last changes left. */
export interface Configured {
  addressing: Addressing | null;
  routes: Route[];
  /** IPv6 on the device: its address (null: IPv6 off) and routes. */
  addressing6?: Addressing6 | null;
  routes6?: Route[];
}

export interface Changes {
  /** Address, netmask and MTU to set, or null when they are as pushed already. */
  configure: Addressing | null;
  /** Routes no longer pushed, to delete; then routes newly pushed, to add (in the pushed order). */
  deleteRoutes: Route[];
  addRoutes: Route[];
  /** The IPv6 address to take off (a new one, or none any more), then the one to put on (turning IPv6 on), or null. */
  removeAddress6: Addressing6 | null;
  addAddress6: Addressing6 | null;
  /** IPv6 routes to delete, then to add. */
  deleteRoutes6: Route[];
  addRoutes6: Route[];
  /** What is configured once every change is made. */
  after: Configured;
}

/** A route as the log lines and the keys here write it: NETWORK/PREFIX. */
export const routeText = (r: Route): string => `${r.network}/${r.prefix}`;

/** Routes to delete and to add to go from `have` to `pushed` (duplicates pushed once). */
function routeChanges(have: Route[], pushed: Route[]): { del: Route[]; add: Route[]; after: Route[] } {
  const had = new Set(have.map(routeText));
  const want = new Map<string, Route>();
  for (const r of pushed) if (!want.has(routeText(r))) want.set(routeText(r), { network: r.network, prefix: r.prefix });
  return {
    del: have.filter((r) => !want.has(routeText(r))),
    add: [...want].filter(([k]) => !had.has(k)).map(([, r]) => r),
    after: [...want.values()],
  };
}

export function interfaceChanges(now: Configured, pushed: Pushed): Changes {
  const a = now.addressing;
  const addressing: Addressing = { address: pushed.address, prefix: pushed.prefix, mtu: pushed.mtu };
  const same = a !== null && a.address === addressing.address && a.prefix === addressing.prefix && a.mtu === addressing.mtu;
  const r4 = routeChanges(now.routes, pushed.routes);
  // IPv6: the address changes as a whole; routes only with an address (none pushed without one).
  const a6 = now.addressing6 ?? null;
  const p6 = pushed.ipv6 ?? null;
  const addressing6 = p6 && { address: p6.address, prefix: p6.prefix };
  const same6 = a6 === null ? addressing6 === null : addressing6 !== null && a6.address === addressing6.address && a6.prefix === addressing6.prefix;
  const r6 = routeChanges(now.routes6 ?? [], p6 ? p6.routes : []);
  return {
    configure: same ? null : addressing,
    deleteRoutes: r4.del,
    addRoutes: r4.add,
    removeAddress6: same6 ? null : a6,
    addAddress6: same6 ? null : addressing6,
    deleteRoutes6: r6.del,
    addRoutes6: r6.add,
    after: { addressing, routes: r4.after, addressing6, routes6: r6.after },
  };
}
