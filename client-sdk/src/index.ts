// The simplevpn client SDK. Engine-agnostic: imports nothing from any runtime.
export { Client } from './client.js';
export type { ClientOptions, ClientStats, DownInfo, DownReason, ReadyInfo, StateInfo, StateName, Route } from './client.js';
export type { Clock, CloseCode, Connect, Socket, SocketHandlers, Tun } from './types.js';
// What a device needs of the wire protocol (protocol/): framing, IPv4 helpers, keepalives
// and the refusal codes a server answers with.
export {
  Framer,
  frameLength,
  formatIPv4,
  parseIPv4,
  readU32,
  KEEPALIVE,
  isKeepalive,
  Refusal,
} from '../../protocol/index.js';
