// simplevpn-server (dist/bin/simplevpn-server.js, built by build.mjs) as a child process:
// run to completion, or keep running with its JSON log lines collected for waiting on.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { SERVER_BIN } from './paths.js';
import { waitFor } from './server-net.js';

export { SERVER_BIN };

function needBin(): void {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} does not exist: build.mjs did not bundle the CLI (run node build.mjs)`);
}

// Tests start many short CLI runs at once (one per flag, per bad file). Two at a time per
// core at most: forty Node start-ups at once on a busy machine would make each one's time
// limit measure the others, not the CLI.
const MAX_RUNNING = Math.max(2, 2 * availableParallelism());
let running = 0;
const queued: Array<() => void> = [];

async function turn<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) await new Promise<void>((go) => queued.push(go));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    queued.shift()?.();
  }
}

type CliResult = { code: number | null; signal: string | null; stdout: string; stderr: string };

/** Runs the CLI to completion (bounded: `ms` from its start, not from when it was asked for). */
export function runCli(args: string[], ms = 30_000, input?: string): Promise<CliResult> {
  needBin();
  return turn(() => runNow(args, ms, input));
}

function runNow(args: string[], ms: number, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_BIN, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // a CLI that exits before reading all of it
      child.stdin!.end(input);
    }
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`simplevpn-server ${args.join(' ')}: still running after ${ms} ms; stderr: ${stderr}`));
    }, ms);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A running simplevpn-server; pass --log-format json to collect its events. */
export class CliServer {
  readonly child: ChildProcess;
  readonly events: any[] = [];
  stderr = '';
  stdout = '';
  exit: { code: number | null; signal: string | null } | null = null;
  private partial = '';

  /** `prefix`: a command that runs the server (e.g. prlimit with its flags). */
  constructor(args: string[], prefix: string[] = []) {
    needBin();
    const argv = [...prefix, process.execPath, SERVER_BIN, ...args];
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d) => (this.stdout += d));
    this.child.stderr!.on('data', (d) => {
      this.stderr += d;
      const lines = (this.partial + d).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) {
        try {
          this.events.push(JSON.parse(l));
        } catch {
          this.events.push({ event: '(text)', line: l });
        }
      }
    });
    this.child.on('close', (code, signal) => (this.exit = { code, signal }));
  }

  /** The first event `name` (from index `from`) that `match` accepts. */
  async event(name: string, ms = 5000, match: (e: any) => boolean = () => true, from = 0): Promise<any> {
    const find = () => this.events.slice(from).find((e) => e.event === name && match(e));
    await waitFor(() => find() !== undefined || this.exit !== null, ms, `log event ${name}`, () => this.stderr.slice(-2000));
    const e = find();
    if (!e) throw new Error(`server exited (${JSON.stringify(this.exit)}) before logging ${name}: ${this.stderr}`);
    return e;
  }

  /**
   * Port of the plain (or, with `tlsListener`, the TLS) listener from the listening line;
   * waited for as long as a start-up with its warm-up may take on a busy machine.
   */
  async port(tlsListener = false): Promise<number> {
    const e = await this.event('listening', 15_000);
    const m = /127\.0\.0\.1:(\d+)/.exec(tlsListener ? e.tls_addresses : e.addresses);
    if (!m) throw new Error('no 127.0.0.1 address in the listening line: ' + JSON.stringify(e));
    return +m[1];
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exit === null) this.child.kill(sig);
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', ms = 7000): Promise<{ code: number | null; signal: string | null }> {
    this.signal(sig);
    await waitFor(() => this.exit !== null, ms, `exit after ${sig}`, () => this.stderr.slice(-2000));
    return this.exit!;
  }

  kill(): void {
    if (this.exit === null) this.child.kill('SIGKILL');
  }
}
