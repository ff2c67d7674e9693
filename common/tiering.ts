// On an idle link (a ping a second, a sensor's reading a minute) the per-packet code never
// runs often enough for V8's default budget to optimise it, and unoptimised it costs
// several times as much per packet, on every hop of the tunnel: most of the round-trip time
// of an idle VPN. Two flags shorten the way to fast code (measured in docs/performance.md):
// a smaller interrupt budget optimises the per-packet functions after a few hundred packets
// instead of thousands, and --always-sparkplug compiles every function to baseline machine
// code on its first call, so the first packets of a fresh tunnel, in our code and in Node's
// stream code alike, skip the bytecode interpreter. An engine that does not know a flag says
// so once on stderr and runs as before.

import { setFlagsFromString } from 'node:v8';

export function tierUpSooner(): void {
  setFlagsFromString('--interrupt-budget=1024');
  setFlagsFromString('--always-sparkplug');
}
