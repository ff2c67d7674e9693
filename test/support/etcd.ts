// etcd for the cluster tests: Debian's etcd-server (/usr/bin/etcd), started by the test on
// loopback or inside a namespace of a Lab, with a data directory of its own that stop()
// removes. Each node is one process; several make one cluster (initialCluster).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from './lab.js';
import { freePort } from './server-net.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';

/** Why etcd tests cannot run here, or null. */
export function etcdUnavailable(): string | null {
  if (spawnSync(ETCD, ['--version']).status !== 0) return 'etcd is not installed (apt-get install etcd-server etcd-client)';
  if (spawnSync(ETCDCTL, ['version']).status !== 0) return 'etcdctl is not installed (apt-get install etcd-client)';
  return null;
}

export interface EtcdSpec {
  name: string;
  /** The address it listens on (client port 2379 and peer port 2380 in a namespace; free ports on loopback). */
  ip: string;
  /** The address it listens on, when not `ip` (0.0.0.0: each of its links); it is reached at `ip`. */
  listenIp?: string;
  /** Runs it inside this host's namespace; on loopback of this process's namespace otherwise. */
  host?: Host;
  clientPort?: number;
  peerPort?: number;
  /** name=http://IP:PEERPORT,... for a cluster of several nodes; this node alone otherwise. */
  initialCluster?: string;
  /** Where the data directory goes (a fresh one below it). */
  under?: string;
}

export class EtcdNode {
  readonly url: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  output = '';
  exited = false;

  constructor(readonly spec: EtcdSpec) {
    const cp = spec.clientPort ?? 2379;
    const pp = spec.peerPort ?? 2380;
    this.url = `http://${spec.ip}:${cp}`;
    this.peerUrl = `http://${spec.ip}:${pp}`;
    this.dataDir = mkdtempSync(join(spec.under ?? tmpdir(), `svpn-etcd-${spec.name}-`));
    const listen = spec.listenIp ?? spec.ip;
    const argv = [
      ETCD,
      '--name', spec.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', `http://${listen}:${cp}`,
      '--advertise-client-urls', this.url,
      '--listen-peer-urls', `http://${listen}:${pp}`,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', spec.initialCluster ?? `${spec.name}=${this.peerUrl}`,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `svpn-test-${process.pid}`,
      '--logger', 'zap',
      '--log-level', 'warn',
    ];
    const cmd = spec.host ? ['ip', 'netns', 'exec', spec.host.ns, ...argv] : argv;
    this.child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.output = (this.output + d).slice(-20_000);
      if (process.env.E2E_VERBOSE) process.stderr.write(`[etcd ${spec.name}] ${d}`);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.on('exit', () => (this.exited = true));
  }

  /** etcdctl against this node (in its namespace when it has one). */
  ctl(args: string[], ms = 10_000): { code: number | null; stdout: string; stderr: string } {
    const argv = [ETCDCTL, '--endpoints', this.url, '--dial-timeout', '2s', '--command-timeout', '3s', ...args];
    const cmd = this.spec.host ? ['ip', 'netns', 'exec', this.spec.host.ns, ...argv] : argv;
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: ms, env: { ...process.env, ETCDCTL_API: '3' } });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Waits (bounded) until the node answers as healthy. */
  async ready(ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      if (this.exited) throw new Error(`etcd ${this.spec.name} exited:\n${this.output}`);
      if (this.ctl(['endpoint', 'health'], 5000).code === 0) return;
      if (Date.now() > end) throw new Error(`etcd ${this.spec.name} not healthy within ${ms} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Stops it (SIGTERM, then SIGKILL) and removes its data. */
  async stop(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await new Promise<void>((r) => (this.exited ? r() : this.child.once('exit', () => r())));
      clearTimeout(t);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** One etcd node on 127.0.0.1, on free ports, healthy. */
export async function loopbackEtcd(name = 'solo', under?: string): Promise<EtcdNode> {
  const node = new EtcdNode({ name, ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(), under });
  try {
    await node.ready();
  } catch (err) {
    await node.stop();
    throw err;
  }
  return node;
}
