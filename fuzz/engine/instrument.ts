// Turns coverage instrumentation on for the modules of the project imported from now on
// (protocol/, common/, client-sdk/, server/, linux/ under dist/js). Call before the first
// import of a target: a module evaluated earlier keeps its uninstrumented code.
import { register } from 'node:module';
import './coverage.js';

const INSTRUMENTED = ['protocol', 'common', 'client-sdk', 'server', 'linux'];

/** `extra`: more folders to instrument, as file: URLs ending in '/' (the engine's own test uses one). */
export function instrument(extra: string[] = []): void {
  // dist/js/fuzz/engine/ -> dist/js/
  const dist = new URL('../../', import.meta.url).href;
  register(new URL('./instrument-hook.js', import.meta.url), { data: { roots: [...INSTRUMENTED.map((d) => dist + d + '/'), ...extra] } });
}
