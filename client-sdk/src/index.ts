// The simplevpn client SDK. Engine-agnostic: imports nothing from any runtime.
export { Client } from './client.js';
export type { ClientOptions, ClientStats, StateInfo, StateName, Route } from './client.js';
export type { Clock, Connect, Failure, Socket, SocketHandlers, Tun } from './types.js';
// What a device needs of the wire protocol (protocol/): framing, IPv4 helpers, keepalives,
// credentials, and the refusal codes a server answers with.
export {
  Framer,
  frameLength,
  formatIPv4,
  parseIPv4,
  readU32,
  KEEPALIVE,
  isKeepalive,
  credentials,
  Refusal,
} from '../../protocol/index.js';
export type { Tlv } from '../../protocol/index.js';
