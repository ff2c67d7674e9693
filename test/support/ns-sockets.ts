// What the fixtures that run a binding inside a throwaway network namespace share
// (fixtures/splice-ns.ts, fixtures/hub-tun-ns.ts): bounded waits, the process's descriptor
// count, a TCP connection on loopback one end of which C takes, and the frames its other end
// reads; and, for the test files, running such a fixture in a namespace made for the run.
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MAX_FRAME, frameLength } from '../../protocol/index.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const fds = () => readdirSync('/proc/self/fd').length;

export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (const t0 = Date.now(); !cond(); await sleep(5)) if (Date.now() - t0 > ms) throw new Error('timed out waiting for ' + what);
}

/** A TCP connection on loopback: `mine` (for attach, not read by Node) and `peer`. */
export async function pair(): Promise<{ mine: net.Socket; peer: net.Socket; close: () => void }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const mine = net.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', onread: { buffer: Buffer.alloc(1024), callback: () => true } });
  await new Promise((r) => mine.once('connect', r));
  const peer = await accepted;
  mine.pause();
  srv.close();
  return { mine, peer, close: () => (mine.destroy(), peer.destroy()) };
}

/** The descriptor of a socket pair()'s `mine`, for C to take. */
export const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

/** The frames the peer reads, parsed as the server would. */
export function frames(peer: net.Socket): Uint8Array[] {
  const out: Uint8Array[] = [];
  let buf = Buffer.alloc(0);
  peer.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const n = frameLength(buf, 0, buf.length, MAX_FRAME);
      if (n < 0) throw new Error('the peer got bytes that are no frame: ' + buf.subarray(0, 32).toString('hex'));
      if (n === 0 || n > buf.length) break;
      out.push(new Uint8Array(buf.subarray(0, n)));
      buf = buf.subarray(n);
    }
  });
  return out;
}

/**
 * Runs the fixture (a compiled .js path) with Node inside a network namespace made for this
 * call (loopback up), deleted afterwards: its exit status, stderr, and the JSON of the line
 * "RESULT <json>" it printed (undefined without one).
 */
export function runInNamespace(prefix: string, fixture: string, timeoutMs = 90_000): { status: number | null; output: string; result: any } {
  const ns = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--enable-source-maps', fixture], { encoding: 'utf8', timeout: timeoutMs });
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.signal ? ' signal ' + r.signal : ''}`, result: line ? JSON.parse(line.slice(7)) : undefined };
  } finally {
    spawnSync('ip', ['netns', 'delete', ns]);
  }
}

/**
 * A fixture's body: run with a time limit, its result printed as "RESULT <json>" for
 * runInNamespace(); on an error, exit 1 with the error and what `soFar` says was seen.
 */
export function fixtureMain(name: string, main: () => Promise<unknown>, soFar: () => unknown = () => undefined): void {
  setTimeout(() => {
    console.error(`${name}: timed out`);
    process.exit(3);
  }, 60_000).unref();
  main().then(
    (r) => console.log('RESULT ' + JSON.stringify(r)),
    (err) => {
      console.error(err, 'so far:', JSON.stringify(soFar()));
      process.exit(1);
    },
  );
}
