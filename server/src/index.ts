// Programmatic API of the simplevpn server: `simplevpn/server`.
//
// This entry is where the server is wired to the Linux tun, as the CLI is: the server
// itself takes its tun through the openTun option and never imports linux/.
import { type CreateServerOptions, type OpenHub, type OpenTun, VpnServer } from './server.js';
import { openKernelRoutes } from '../../linux/kernel-routes.js';

/** The native tun, loaded only when a server opens one, so the rest runs without the binding. */
const nativeTun: OpenTun = async (name, config, onPackets, onError) => (await import('../../linux/server-tun.js')).openServerTun(name, config, onPackets, onError);

/** The native switching hub, loaded only when a server starts. */
const nativeHub: OpenHub = async (maxFrame, onEvent) => (await import('../../linux/server-hub.js')).openServerHub(maxFrame, onEvent);

/**
 * A server; unless `openTun` is given (or `tun: false`), it opens the native tun device, and
 * in a cluster (`etcd`) it keeps the kernel's routes to the other servers' clients with
 * iproute2 unless `openRoutes` is given.
 */
export function createServer(options: CreateServerOptions = {}): VpnServer {
  return new VpnServer({ openTun: nativeTun, openRoutes: openKernelRoutes, openHub: nativeHub, ...options });
}

export { VpnServer } from './server.js';
export type { ClientInfo, CreateServerOptions, OpenTun, ServerTun } from './server.js';
export { ConfigError, resolveConfig, parseCidr } from './config/config.js';
export type { ServerOptions, ResolvedConfig } from './config/config.js';
export { AddressPool } from './control/address-pool.js';
export { createLogger } from '../../common/log.js';
export type { Logger, LogFormat } from '../../common/log.js';
