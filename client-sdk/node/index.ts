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
