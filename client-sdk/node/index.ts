// Node adapters for the SDK's seams.
export { tcpConnect, wrapNodeSocket } from './tcp.js';
export type { TcpOptions, WrapOptions } from './tcp.js';
export { tlsConnect } from './tls.js';
export type { TlsOptions } from './tls.js';
export { nodeClock } from './clock.js';
export { describeDown } from './describe.js';
export { proxyConnect, parseProxyUrl, noProxy } from './proxy.js';
export type { ProxyOptions } from './proxy.js';
export { nodeWebSocketConnect } from './websocket.js';
export type { NodeWebSocketOptions } from './websocket.js';
export { challengeCredentials, clientKeyFromSecret } from './auth.js';
export type { ChallengeCredentials } from './auth.js';
export { ServerRotation } from './servers.js';
// IPv6 inside the tunnel: the request TLV ([T_IPV6, ipv6Request()] in the client's `tlvs`) and
// the ready state's reply read as text (protocol/ipv6.ts; kept out of the device core, which
// only carries the packets).
export { T_IPV6, ipv6Request, readIpv6Config, formatIPv6, parseIPv6 } from '../../protocol/index.js';
export type { Ipv6Config } from '../../protocol/index.js';
