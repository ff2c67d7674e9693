// Serves the browser example on loopback: index.html and the three scripts it loads (the
// SDK core and WebSocket bundles from dist/sdk/, the page's own from dist/examples/), nothing
// else. `node dist/js/examples/browser/serve.js [--port 8080] [--host 127.0.0.1]`, then open
// http://127.0.0.1:8080/?server=ws://127.0.0.1:2002/&collector=10.0.0.2:5005 .
// It prints one JSON line, {"event":"listening","url":...}, when it is up.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/js/examples/browser/serve.js -> the repository.
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, here.includes('/dist/js/') ? '../../../..' : '../..');
const FILES: Record<string, [string, string]> = {
  '/': ['examples/browser/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['examples/browser/index.html', 'text/html; charset=utf-8'],
  '/simplevpn-sdk.iife.js': ['dist/sdk/simplevpn-sdk.iife.js', 'text/javascript'],
  '/simplevpn-websocket.iife.js': ['dist/sdk/simplevpn-websocket.iife.js', 'text/javascript'],
  '/browser-page.iife.js': ['dist/examples/browser-page.iife.js', 'text/javascript'],
};

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '8080'));

const server = http.createServer((req, res) => {
  const f = FILES[new URL(req.url ?? '/', 'http://x').pathname];
  if (!f || req.method !== 'GET') {
    res.writeHead(404).end('not found\n');
    return;
  }
  try {
    res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' }).end(readFileSync(join(root, f[0])));
  } catch (e) {
    res.writeHead(500).end(`cannot read ${f[0]}: ${(e as Error).message} (run node build.mjs)\n`);
  }
});
server.listen(port, host, () => {
  const a = server.address() as { port: number };
  console.log(JSON.stringify({ event: 'listening', url: `http://${host}:${a.port}/` }));
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => server.close(() => process.exit(0)));
