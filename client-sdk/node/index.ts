// Node adapters for the SDK's seams.
export { tcpConnect, wrapNodeSocket } from './tcp.js';
export type { TcpOptions } from './tcp.js';
export { nodeClock } from './clock.js';
