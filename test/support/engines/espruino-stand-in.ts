// What an Espruino-class engine gives a script, for running ES5 code in a vm context
// (test/support/es5.ts) as it would run there: a stand-in for Espruino's `net` over real
// node:net sockets (binary strings in, a write() that always returns false, 'drain' once its
// buffer is empty), E.toString / E.toUint8Array, and the TypeScript modules written as ES5
// (the Espruino adapter, the scenario) as ES5 scripts. Used by the ES5 engine test and by the
// ES5 device runner (es5-device-main.ts).
import net from 'node:net';
import { build } from 'esbuild';
import { ROOT } from '../paths.js';

/** Espruino's net, as far as examples/ports/espruino.ts uses it, over node:net. */
export function espruinoNet(sockets: net.Socket[]) {
  return {
    connect(o: { host: string; port: number }, onConnect: () => void) {
      const s = net.connect({ host: o.host, port: o.port });
      sockets.push(s);
      const on: Record<string, Array<(...a: unknown[]) => void>> = {};
      const emit = (ev: string, ...a: unknown[]) => (on[ev] ?? []).forEach((f) => f(...a));
      s.setNoDelay(true);
      s.once('connect', () => onConnect());
      s.on('data', (d: Buffer) => emit('data', d.toString('latin1')));
      s.on('error', (e: NodeJS.ErrnoException) => emit('error', { code: e.errno ?? -1, message: e.message }));
      s.on('close', (hadError: boolean) => emit('close', hadError));
      return {
        write(data: string) {
          s.write(Buffer.from(data, 'latin1'), () => s.writableLength === 0 && emit('drain'));
          return false;
        },
        end: () => s.destroy(),
        on(ev: string, f: (...a: unknown[]) => void) {
          (on[ev] ??= []).push(f);
        },
      };
    },
  };
}

/** Espruino's E, as ES5 source to run inside the context, so that its Uint8Arrays are the context's own. */
export const ESPRUINO_E = `var E = {
  toString: function (b) { var s = ''; for (var i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096)); return s; },
  toUint8Array: function (s) { var b = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) b[i] = s.charCodeAt(i); return b; }
};`;

/** Timers for the context that the host can count (and clear, on failure). */
export function countedTimers() {
  const live = new Set<NodeJS.Timeout>();
  return {
    live,
    setTimeout(f: () => void, ms: number) {
      const t = setTimeout(() => {
        live.delete(t);
        f();
      }, ms);
      live.add(t);
      return t;
    },
    clearTimeout(t: NodeJS.Timeout) {
      clearTimeout(t);
      live.delete(t);
    },
  };
}

/**
 * A TypeScript module written as ES5 (scenario.ts, examples/ports/espruino.ts) as one ES5
 * script defining the global `globalName`, for engines that take scripts; esbuild fails on
 * any syntax it would have to lower. The script begins "use strict" (esbuild's, for a
 * module), so its var stays local under eval: the footer sets the global, as build.mjs does.
 */
export async function es5Script(entry: string, globalName: string): Promise<string> {
  const r = await build({
    entryPoints: [ROOT + entry],
    bundle: true,
    write: false,
    format: 'iife',
    globalName,
    target: 'es5',
    platform: 'neutral',
    logLevel: 'silent',
    footer: { js: `(typeof globalThis<'u'?globalThis:this).${globalName}=${globalName};` },
  });
  return r.outputFiles[0].text;
}
