// The status listener: /metrics for Prometheus, /clients and /cluster (the lease store) as JSON. Off unless asked for,
// and on loopback unless told otherwise, since /clients names every client's address.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface StatusSource {
  metricsText(): string;
  clients(): unknown[];
  /** Where leases are recorded, and how that is going. */
  cluster(): unknown;
}

export function startStatus(src: StatusSource, host: string, port: number): Promise<{ close(): Promise<void>; address: string }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(src.metricsText());
    } else if (path === '/cluster') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(src.cluster(), null, 2) + '\n');
    } else if (path === '/clients') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(src.clients(), null, 2) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /clients or /cluster\n');
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve({
        address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
