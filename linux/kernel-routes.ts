// The kernel's host routes to the clients of the other servers of a cluster, kept with
// iproute2 for the server (server/src/cluster/peer-routes.ts says which): ADDRESS/32 via
// the underlay address of the server holding it. Changes are batched, one `ip -batch` at a
// time, so a burst of leases costs a few processes, not one each.
//
// Every route is tagged with its own routing protocol number, ROUTE_PROTO: `ip route show
// proto 157` lists them, and flush() removes them all, those of a run that crashed too.
// (Structurally a RouteTable of the server: linux/ does not import the server.)

import { spawn } from 'node:child_process';

export const ROUTE_PROTO = '157';

export interface KernelRoutes {
  replace(address: string, via: string): void;
  remove(address: string): void;
  settled(): Promise<void>;
  flush(): Promise<void>;
}

/** `failed` hears of what the kernel refused, or of ip failing to run. */
export function openKernelRoutes(failed: (err: Error) => void): KernelRoutes {
  const queue = new Map<string, string | null>();
  let running: Promise<void> | null = null;

  const run = (lines: string[]): Promise<void> =>
    new Promise((resolve) => {
      const child = spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('error', (e) => {
        clearTimeout(t);
        failed(new Error(`ip: ${e.message} (iproute2 is needed for the routes to other servers' clients)`));
        resolve();
      });
      child.on('close', (code, signal) => {
        clearTimeout(t);
        // Removing a route that is not there is no failure.
        const bad = err.split('\n').filter((l) => l.trim() && !/No such process|Command failed|Nothing to flush/.test(l));
        if (bad.length || signal) failed(new Error(`ip -batch (${signal ?? 'exit ' + code}): ${bad.join('; ') || 'killed after 10 s'}`));
        resolve();
      });
      child.stdin.on('error', () => {});
      child.stdin.end(lines.join('\n') + '\n');
    });

  const pump = async (): Promise<void> => {
    while (queue.size) {
      const lines = [...queue].map(([a, via]) => (via ? `route replace ${a}/32 via ${via} proto ${ROUTE_PROTO}` : `route del ${a}/32 proto ${ROUTE_PROTO}`));
      queue.clear();
      await run(lines);
    }
    running = null;
  };
  const kick = () => {
    if (!running) running = new Promise((r) => setImmediate(r)).then(pump);
  };
  const settled = async () => {
    while (running) await running;
  };

  return {
    replace(address, via) {
      queue.set(address, via);
      kick();
    },
    remove(address) {
      queue.set(address, null);
      kick();
    },
    settled,
    async flush() {
      await settled();
      await run([`route flush proto ${ROUTE_PROTO}`]);
    },
  };
}
