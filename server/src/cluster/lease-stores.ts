// Which lease store a server runs on, from its options: in memory (the default), a state
// file (--state: one server whose leases survive a restart), or etcd (--etcd: a cluster).

import { readFileSync } from 'node:fs';
import { ConfigError, type ResolvedConfig } from '../config/config.js';
import type { AddressPool } from '../control/address-pool.js';
import { FileLeaseStore } from '../control/file-lease-store.js';
import type { LeaseStore, LeaseStoreHooks } from '../control/lease-store.js';
import { MemoryLeaseStore } from '../control/memory-lease-store.js';
import { localAddressTowards, openEtcd } from './etcd-backend.js';
import { EtcdLeaseStore } from './etcd-lease-store.js';
import type { OpenRouteTable } from './peer-routes.js';

/** Every store here keeps an address pool (tests read it through internals()). */
export type PooledLeaseStore = LeaseStore & { readonly pool: AddressPool };

function readPem(flag: string, file: string | null): Buffer | null {
  if (file === null) return null;
  try {
    return readFileSync(file);
  } catch (err: any) {
    throw new ConfigError(`--${flag} ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}

/** `openRoutes`: the kernel's routes to other servers' clients (etcd only; none without a tun). */
export function createLeaseStore(c: ResolvedConfig, hooks: LeaseStoreHooks, openRoutes?: OpenRouteTable): PooledLeaseStore {
  const { network, prefix } = c.subnet;
  if (c.state) return new FileLeaseStore({ file: c.state, network, prefix, reserved: [c.gateway], keepMs: c.idleTimeoutMs, hooks });
  const e = c.etcd;
  if (!e) return new MemoryLeaseStore(network, prefix, [c.gateway]);
  const ca = readPem('etcd-ca', e.ca);
  const cert = readPem('etcd-cert', e.cert);
  const key = readPem('etcd-key', e.key);
  return new EtcdLeaseStore({
    network,
    prefix,
    reserved: [c.gateway],
    connect: () => openEtcd({ urls: e.endpoints, ca, cert, key, callTimeoutMs: 2000 }),
    keyPrefix: e.prefix,
    ttl: e.ttl,
    id: e.id,
    advertise: e.advertise,
    localAddress: () => localAddressTowards(e.endpoints[0]),
    endpoints: e.endpoints.join(','),
    hooks,
    openRoutes: openRoutes ?? null,
  });
}

/** What the listening line says of the store. */
export function describeStore(c: ResolvedConfig): string {
  if (c.state) return `file ${c.state}`;
  if (c.etcd) return `etcd ${c.etcd.endpoints.join(',')} ${c.etcd.prefix}`;
  return 'memory';
}
