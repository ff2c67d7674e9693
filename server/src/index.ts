// Programmatic API of the simplevpn server.
export { createServer, VpnServer } from './server.js';
export type { ClientInfo, CreateServerOptions, OpenTun, ServerTun } from './server.js';
export { ConfigError, resolveConfig, parseCidr } from './config.js';
export type { ServerOptions, ResolvedConfig } from './config.js';
export { AddressPool } from './address-pool.js';
export { createLogger } from '../../common/log.js';
export type { Logger, LogFormat } from '../../common/log.js';
