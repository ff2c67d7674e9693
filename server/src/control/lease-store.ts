// Who holds which VPN address: the seam between admission and where leases are recorded.
// Today in this process's memory (memory-lease-store.ts); for a cluster of servers, in a
// shared store such as etcd, where recording takes a round trip and can fail. So allocate()
// may answer with a promise (admission waits, and the client's further requests wait with
// it) or with 'unavailable'. The in-memory store answers at once, with no promise and no
// allocation.

/** Why no address was leased. */
export type LeaseRefusal =
  /** The address asked for is held by someone else, or kept for another client. */
  | 'in_use'
  /** No free address is left. */
  | 'exhausted'
  /** The lease could not be recorded (the shared store is unreachable, say): try again later. */
  | 'unavailable';

/** The address leased (never 0), or why none was. */
export type Allocation = number | LeaseRefusal;

export interface LeaseStore {
  // ---- the address space: this server's configuration, answered at once ----

  /** True when `address` is in the subnet (reserved addresses included). */
  inside(address: number): boolean;
  /** True when `address` could ever be leased: inside the subnet and not reserved. */
  assignable(address: number): boolean;
  /** Kept for one client (the auth file names it): allocate() leases it only to its owner. */
  isFixed(address: number): boolean;
  /** Keeps `address` for one client from now on; a current holder keeps it until released. */
  fix(address: number): void;
  /** Returns a fixed address to general use. */
  unfix(address: number): void;

  // ---- leases ----

  /**
   * Leases `wanted` to `holder`, or any free address when `wanted` is 0. `owner`: the
   * caller vouches that the client owns `wanted` when it is fixed. `holder` names the
   * connection on this server (its id); a shared store records it with this server's name.
   */
  allocate(wanted: number, owner: boolean, holder: number): Allocation | Promise<Allocation>;
  /**
   * `holder` still holds `address` and is alive (it asked again): a store whose records
   * expire extends this one. Nothing waits for it.
   */
  renew(address: number, holder: number): void | Promise<void>;
  /**
   * Gives `address` back. At once for the caller: a store that records elsewhere does so in
   * the background, and must apply it before a later allocate() of the same address.
   */
  release(address: number, holder: number): void;
  /** Whether `address` is leased now (as far as this server knows). */
  isLeased(address: number): boolean;

  // ---- gauges for /metrics ----

  /** Addresses leased now. */
  readonly inUse: number;
  /** Addresses allocate() could still hand out. */
  readonly free: number;
}
