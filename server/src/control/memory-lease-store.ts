// The lease store of a server on its own: the address pool in this process's memory. Every
// answer is immediate. It records no holders (the bitsets of the pool are all it keeps, so
// a /8 costs 6 MiB and not a map entry per client): admission releases only the address a
// session holds, and a second connection never holds the same one (the switch binds each
// address to one port).

import { AddressPool } from './address-pool.js';
import type { Allocation, LeaseStore } from './lease-store.js';

/**
 * The address space and the gauges of a store over an address pool, which every store here
 * keeps: the subnet's configuration, fixed addresses, and which addresses are taken.
 */
export abstract class PoolStore {
  constructor(readonly pool: AddressPool) {}

  inside(address: number): boolean {
    return this.pool.inside(address);
  }

  assignable(address: number): boolean {
    return this.pool.assignable(address);
  }

  isFixed(address: number): boolean {
    return this.pool.isFixed(address);
  }

  fix(address: number): void {
    this.pool.fix(address);
  }

  unfix(address: number): void {
    this.pool.unfix(address);
  }

  isLeased(address: number): boolean {
    return this.pool.has(address);
  }

  /** Leases here never expire. */
  renew(_address: number, _holder: number): void {}

  get inUse(): number {
    return this.pool.size;
  }

  get free(): number {
    return this.pool.free;
  }
}

export class MemoryLeaseStore extends PoolStore implements LeaseStore {
  /** The host addresses of network/prefix but `reserved` (the server's own). */
  constructor(network: number, prefix: number, reserved: number[] = []) {
    super(new AddressPool(network, prefix, reserved));
  }

  allocate(wanted: number, owner: boolean, _holder: number): Allocation {
    if (wanted === 0) {
      const a = this.pool.allocate();
      return a === 0 ? 'exhausted' : a;
    }
    return this.pool.take(wanted, owner) ? wanted : 'in_use';
  }

  release(address: number, _holder: number): void {
    this.pool.release(address);
  }
}
