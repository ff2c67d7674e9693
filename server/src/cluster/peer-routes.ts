// Routes to the clients of other servers. In a cluster every server holds the same subnet
// on its tun; an address leased to a client of server B is reached from server A by a host
// route, ADDRESS/32 via B's underlay address (--cluster-advertise), kept in A's kernel while
// the lease lasts. A packet from a client on A to a client on B leaves A's switch for A's
// tun (no session of A holds the address), the kernel sends it to B, B's kernel forwards it
// into B's tun, and B switches it to its client.
//
// RouteTable is the seam to the kernel: linux/kernel-routes.ts (iproute2) for the CLI, none
// in tests that do not need one. PeerRoutes keeps what the table should hold and tells it
// what changes.

import { formatIPv4 } from '../../../protocol/index.js';

export interface RouteTable {
  /** ADDRESS/32 via `via`, replacing any route of this table to it. Applied in the background. */
  replace(address: string, via: string): void;
  /** Takes this table's route to ADDRESS/32 away. */
  remove(address: string): void;
  /** Every change asked for so far has been applied (or has failed and been reported). */
  settled(): Promise<void>;
  /** Removes every route of this table, those a crashed run left included. */
  flush(): Promise<void>;
}

/** Opens the kernel's table; `failed` hears of changes the kernel refused. */
export type OpenRouteTable = (failed: (err: Error) => void) => RouteTable;

export class PeerRoutes {
  /** Address -> the underlay address of the server holding it, as installed. */
  private readonly installed = new Map<number, string>();
  /** A route was ever added: there is something to take away at the end. */
  private touched = false;

  constructor(
    private readonly table: RouteTable,
    /** This server's own underlay address: never a next hop. */
    private readonly self: string,
  ) {}

  get size(): number {
    return this.installed.size;
  }

  /** `address` is held behind `via` (null: here, or nowhere). */
  set(address: number, via: string | null): void {
    const now = this.installed.get(address);
    if (via === this.self) via = null;
    if (now === (via ?? undefined)) return;
    if (via === null) {
      this.installed.delete(address);
      this.table.remove(formatIPv4(address));
    } else {
      this.installed.set(address, via);
      this.touched = true;
      this.table.replace(formatIPv4(address), via);
    }
  }

  /** The routes, for /cluster. */
  list(): Array<{ address: string; via: string }> {
    return [...this.installed].map(([a, via]) => ({ address: formatIPv4(a), via }));
  }

  /** Takes every route away (shutdown). */
  async clear(): Promise<void> {
    this.installed.clear();
    await this.table.settled();
    if (this.touched) await this.table.flush();
  }
}
