// Who holds which VPN address: the seam between admission and where leases are recorded:
// in this process's memory (memory-lease-store.ts, the default), in a state file that
// outlives the process (file-lease-store.ts, --state), or in etcd for a cluster of servers
// (cluster/etcd-lease-store.ts, --etcd). Recording on a disk or in etcd takes time and can
// fail, so allocate() may answer with a promise (admission waits, and the client's further
// requests wait with it) or with 'unavailable'. The in-memory store answers at once, with no
// promise and no allocation.

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

/**
 * Who asks for a lease, for a store that records leases beyond this process (a state file,
 * etcd): what it records, and what lets a client that comes back (after a restart of the
 * server, or to another server) take its old address again.
 */
export interface LeaseClaim {
  /** The lease token the reply will carry (base64url); null for a seed client, whose reply carries none. */
  readonly token: string | null;
  /** Who the client is: its auth id when the server requires credentials, else the name it gave ('' for none). */
  readonly client: string;
  /** `client` is an auth id the client proved (true), or only a name it gave (false). */
  readonly proven: boolean;
  /** The lease token the client presented (the one its last reply carried), or null: a view of a socket chunk, valid during allocate() only. */
  readonly presented: Uint8Array | null;
}

/** What a store that records elsewhere tells the server around it. */
export interface LeaseStoreHooks {
  /**
   * The store can no longer vouch for `address` (its record expired, or another server took
   * it over with the client's lease token): the session holding it here must end now.
   */
  evict(address: number, code: 'lease_lost' | 'replaced', detail: string): void;
  /** A log line and event (`level` as in common/log.ts). */
  event(level: 'debug' | 'info' | 'warn' | 'error', name: string, fields: Record<string, unknown>): void;
}

/** How a store is doing, for /metrics and /cluster. */
export interface LeaseStoreHealth {
  /** 'memory', 'file' or 'etcd'. */
  readonly kind: string;
  /** The store can record leases now (the file is writable, etcd answers). */
  readonly reachable: boolean;
  /** Leases recorded as held by this server's clients. */
  readonly held: number;
  /** Leases recorded as held elsewhere: by other servers, or by clients not back since a restart. */
  readonly elsewhere: number;
  /** Kernel routes to other servers' clients installed now. */
  readonly routes: number;
  /** Anything else worth showing on /cluster (the server's id, the etcd lease, the file). */
  readonly detail: Record<string, unknown>;
}

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
  allocate(wanted: number, owner: boolean, holder: number, claim?: LeaseClaim): Allocation | Promise<Allocation>;
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

  // ---- for stores that record elsewhere (the in-memory store has none of these) ----

  /** Why allocate() answers 'unavailable' now, in words for the refused client. */
  unavailableDetail?(): string;
  /** Before the server takes clients: read the state, reach the shared store. */
  open?(): Promise<void>;
  /**
   * The server stops; its sessions are ended in the same turn, right after this call. A
   * state file keeps their leases (the clients take them back after the restart); etcd
   * revokes the server's lease once they have ended.
   */
  close?(): Promise<void>;
  health?(): LeaseStoreHealth;
  /** Every lease recorded, as this server knows it (for /cluster). */
  records?(): LeaseInfo[];
}

/** One lease as /cluster shows it. */
export interface LeaseInfo {
  address: string;
  /** Who holds it: the auth id, or the name the client gave. */
  client: string;
  /** Held by a session of this server. */
  here: boolean;
  /** The server holding it, and its underlay address (etcd). */
  server?: string;
  via?: string | null;
}
