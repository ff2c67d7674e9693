// Every fuzz target, by name. A new target: a file in this folder exporting a FuzzTarget
// (fuzz/engine/target.ts), one line here, and seed inputs under fuzz/corpus/<name>/ if code
// cannot build them. `npm run fuzz` and test/unit/fuzz/ pick it up from this list.
import type { FuzzTarget } from '../engine/target.js';
import { controlTarget } from './control.js';
import { framerTarget } from './framer.js';
import { ipv6Target } from './ipv6.js';
import { offloadTarget } from './offload.js';
import { serverSessionTarget } from './server-session.js';
import { switchTarget } from './switch.js';

export const TARGETS: readonly FuzzTarget[] = [framerTarget, controlTarget, serverSessionTarget, switchTarget, ipv6Target, offloadTarget];
