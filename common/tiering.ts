// On an idle link (a ping a second, a sensor's reading a minute) the per-packet code never
// runs often enough for V8's default budget to optimise it, and unoptimised it costs
// several times as much per packet, on every hop of the tunnel: most of the round-trip time
// of an idle VPN. A smaller budget optimises it after a few hundred packets. Measured in
// docs/performance.md. An engine that does not know the flag says so once on stderr and
// runs as before.

import { setFlagsFromString } from 'node:v8';

export function tierUpSooner(): void {
  setFlagsFromString('--interrupt-budget=1024');
}
