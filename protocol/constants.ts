// The numbers both ends of the protocol agree on, in one place. Ports, MTUs and timers of
// the 2013 programs are kept as they were: devices in the field depend on them.

/** TCP port of the plain listener (the 2013 programs' only port). */
export const PORT = 2002;
/** TCP port of the TLS listener. */
export const TLS_PORT = 2003;

/** The MTU of a client that does not ask for one: what the 2013 devices use. */
export const SEED_MTU = 1500;
/** The smallest MTU granted: IPv4's minimum datagram every host must take. */
export const MIN_MTU = 576;
/** The largest frame the length field of an IPv4 header can describe. */
export const MAX_FRAME = 65535;
/** The MTU the Linux client asks for, and the server's default ceiling: large inner packets are what make IP-in-TCP fast. */
export const LARGE_MTU = 65000;

/** Seconds of silence before a client sends a keepalive, as the 2013 client does. */
export const KEEPALIVE_S = 15;
/** Seconds of silence before the server drops a client. */
export const IDLE_TIMEOUT_S = 60;
/** Seconds a new connection has to ask for an address. */
export const HANDSHAKE_TIMEOUT_S = 10;
