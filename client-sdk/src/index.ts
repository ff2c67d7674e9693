// The simplevpn client SDK. Engine-agnostic: imports nothing from any runtime.
export { Client } from './client.js';
export type { ClientOptions, ClientStats, StateInfo, StateName, Route } from './client.js';
export type { Clock, Connect, Failure, Socket, SocketHandlers, Tun } from './types.js';
export { Framer, frameLength } from './framer.js';
export { formatIPv4, parseIPv4, readU32 } from './ipv4.js';
export { KEEPALIVE, isKeepalive, credentials } from './control.js';
export type { Tlv } from './control.js';
