// The version both CLIs print: package.json's, read once, so a release changes one place.
// The CLIs run bundled from dist/bin and unbundled from dist/js/common; both lie below the
// package root, so the nearest package.json of this package above this file is the one.

import { readFileSync } from 'node:fs';

function readVersion(): string {
  let dir = new URL('.', import.meta.url);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8'));
      if (pkg.name === 'simplevpn' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one folder up
    }
    dir = new URL('..', dir);
  }
  return 'unknown';
}

export const VERSION = readVersion();
