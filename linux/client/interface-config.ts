// What to change on the tun device when the server pushes a configuration, given what is
// configured on it now: nothing when nothing differs, so a reconnect that gets the same
// address and routes leaves the interface (and the connections through it) alone. Pure: the
// caller applies the changes (linux/client/main.ts) and tests check them without a device.

import type { Route } from '../../client-sdk/src/client.js';

/** Address, prefix and MTU: what TunDevice.configure() sets in one go. */
export interface Addressing {
  address: string;
  prefix: number;
  mtu: number;
}

/** What the server pushed (the SDK's 'ready' state has these fields). */
export interface Pushed extends Addressing {
  routes: Route[];
}

/** What is configured on the device now: nothing yet, or what the last changes left. */
export interface Configured {
  addressing: Addressing | null;
  routes: Route[];
}

export interface Changes {
  /** Address, netmask and MTU to set, or null when they are as pushed already. */
  configure: Addressing | null;
  /** Routes no longer pushed, to delete; then routes newly pushed, to add (in the pushed order). */
  deleteRoutes: Route[];
  addRoutes: Route[];
  /** What is configured once every change is made. */
  after: Configured;
}

/** A route as the log lines and the keys here write it: NETWORK/PREFIX. */
export const routeText = (r: Route): string => `${r.network}/${r.prefix}`;

export function interfaceChanges(now: Configured, pushed: Pushed): Changes {
  const a = now.addressing;
  const addressing: Addressing = { address: pushed.address, prefix: pushed.prefix, mtu: pushed.mtu };
  const same = a !== null && a.address === addressing.address && a.prefix === addressing.prefix && a.mtu === addressing.mtu;
  const have = new Set(now.routes.map(routeText));
  const want = new Map<string, Route>();
  for (const r of pushed.routes) if (!want.has(routeText(r))) want.set(routeText(r), { network: r.network, prefix: r.prefix });
  return {
    configure: same ? null : addressing,
    deleteRoutes: now.routes.filter((r) => !want.has(routeText(r))),
    addRoutes: [...want].filter(([k]) => !have.has(k)).map(([, r]) => r),
    after: { addressing, routes: [...want.values()] },
  };
}
