// Where things are, for tests that run from dist/js/test/<kind>/<area>/ at any depth: the
// repository root is the nearest folder above this file that holds our package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'simplevpn') return dir + '/';
    const up = dirname(dir);
    if (up === dir) throw new Error(`test/support/paths.ts: no simplevpn package.json above ${import.meta.url}`);
    dir = up;
  }
}

/** The repository root, with a trailing slash. */
export const ROOT = findRoot();
/** The bundled CLIs that build.mjs writes. */
export const SERVER_BIN = join(ROOT, 'dist/bin/simplevpn-server.js');
export const CLIENT_BIN = join(ROOT, 'dist/bin/simplevpn-client.js');
/** The compiled fixtures of test/support/fixtures. */
export const FIXTURES = join(ROOT, 'dist/js/test/support/fixtures');
