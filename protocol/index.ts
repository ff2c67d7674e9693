// The wire protocol on its own: framing, control messages and their TLVs, refusal codes,
// the numbers both ends agree on, and IPv4 header helpers. Runtime-neutral like the SDK
// core: it imports nothing from any runtime, so the SDK, the server and the Linux client
// share one codec. Import it through this file only.
export * from './constants.js';
export * from './control.js';
export * from './framer.js';
export * from './ipv4.js';
export * from './ipv6.js';
