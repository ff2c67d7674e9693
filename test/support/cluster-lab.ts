// A cluster of simplevpn servers in network namespaces, for test/integration/cluster/:
//
//                         etcd (one node, or three members in one namespace on ports
//                         2379, 2381, 2383; 198.18.k.1 on a link of its own to each server)
//                       /   |    \
//                     s1    s2    s3      simplevpn-server (dist/bin), a tun each, --etcd
//                      \    |    /
//        198.18.100.0/24  [ br0 in "net" ]  the underlay: servers .11 .12 .13, clients .51 ...
//                      /    |    \
//                    c1    c2    c3 ...   SDK clients on real tun devices (fixtures/cluster-client)
//
// Each server routes the addresses of the other servers' clients via their underlay address
// (--cluster-advertise 198.18.100.1N). The servers' namespaces forward (ip_forward=1) with
// loose reverse-path filtering (rp_filter=2), as README.md tells operators. A server's link
// to etcd can be taken down alone: a partition between it and etcd only.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupOnExit } from './exit-cleanup.js';
import { EtcdNode } from './etcd.js';
import { type Host, Lab, type LogLine, type Proc, e2eUnavailable } from './lab.js';
import { FIXTURES } from './paths.js';
import { etcdUnavailable } from './etcd.js';

export function clusterUnavailable(): string | null {
  return e2eUnavailable() ?? etcdUnavailable();
}

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface ClusterServer {
  name: string;
  host: Host;
  /** Its underlay address, and the device that has it. */
  underlay: string;
  underlayDev: string;
  /** Its --cluster-advertise (the underlay address unless a test links the servers otherwise). */
  advertise: string;
  /** The etcd URL(s) it uses (over its own link): one per member, comma-separated. */
  etcdUrl: string;
  /** Etcd's address at the far end of its own link. */
  etcdIp: string;
  /** Its end of the link to etcd. */
  etcdDev: string;
  proc: Proc | null;
}

export interface ClusterClient {
  name: string;
  host: Host;
  proc: Proc;
  /** ready lines so far, with their address and server. */
  readies(): LogLine[];
  /** The address of its latest ready line. */
  address(): string;
}

export const PORT = 2002;
const UNDERLAY = '198.18.100';

export class ClusterLab {
  readonly lab = new Lab();
  readonly net: Host;
  readonly etcdHost: Host;
  readonly servers: ClusterServer[] = [];
  readonly clients: ClusterClient[] = [];
  etcd: EtcdNode | null = null;
  /** The servers' --log-level (the bench's many clients want less than every assignment). */
  serverLogLevel = 'debug';
  /** Where etcd's data directories go (the system's temporary folder unless set: /dev/shm keeps the disk out of a measurement). */
  etcdUnder: string | undefined;
  /** How long a server may take to join the cluster and listen (a loaded machine needs longer). */
  startMs = 20_000;
  /** The servers' --idle-timeout: short, so that the tests see dead clients go soon. */
  idleTimeout = 10;
  /** Every member of etcd (etcd is the first). */
  etcdMembers: EtcdNode[] = [];
  private ports = 0;
  private readonly hostsFiles: Array<() => void> = [];
  private bridged = 0;

  constructor(n = 3) {
    this.net = this.lab.host('net');
    this.etcdHost = this.lab.host('etcd');
    ip(['-n', this.net.ns, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.net.ns, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= n; i++) {
      const host = this.lab.host(`s${i}`);
      const underlay = `${UNDERLAY}.${10 + i}`;
      const underlayDev = this.port(host, underlay);
      const l = this.lab.link(this.etcdHost, host);
      const etcdDev = JSON.parse(ip(['-n', host.ns, '-j', 'addr', 'show', 'to', l.b]))[0].ifname as string;
      // A server forwards between the underlay and its tun; loose reverse-path filtering.
      for (const k of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=2', 'net.ipv4.conf.default.rp_filter=2'])
        spawnSync('ip', ['netns', 'exec', host.ns, 'sysctl', '-q', '-w', k], { timeout: 5000 });
      this.servers.push({ name: `s${i}`, host, underlay, underlayDev, advertise: underlay, etcdUrl: `http://${l.a}:2379`, etcdIp: l.a, etcdDev, proc: null });
    }
  }

  /** A veth from `host` into the bridge, with `address`/24 on its end: the end's name. */
  private port(host: Host, address: string): string {
    const k = ++this.ports;
    const dev = `u${k}`;
    ip(['link', 'add', dev, 'netns', host.ns, 'type', 'veth', 'peer', 'name', `br${k}`, 'netns', this.net.ns]);
    ip(['-n', this.net.ns, 'link', 'set', `br${k}`, 'master', 'br0', 'up']);
    ip(['-n', host.ns, 'addr', 'add', `${address}/24`, 'dev', dev]);
    ip(['-n', host.ns, 'link', 'set', dev, 'up']);
    return dev;
  }

  /** A veth between two hosts, no addresses: the names of its ends. */
  wire(a: Host, b: Host): { a: string; b: string } {
    const k = ++this.ports;
    ip(['link', 'add', `w${k}a`, 'netns', a.ns, 'type', 'veth', 'peer', 'name', `w${k}b`, 'netns', b.ns]);
    ip(['-n', a.ns, 'link', 'set', `w${k}a`, 'up']);
    ip(['-n', b.ns, 'link', 'set', `w${k}b`, 'up']);
    return { a: `w${k}a`, b: `w${k}b` };
  }

  /**
   * Starts etcd, listening on each of its links: one node, or `members` of one cluster
   * (Raft among them), each server then given every member's URL.
   */
  async startEtcd(members = 1): Promise<EtcdNode> {
    const first = this.servers[0]!.etcdIp;
    const specs = Array.from({ length: members }, (_, k) => ({ name: `e${k + 1}`, ip: first, listenIp: '0.0.0.0', host: this.etcdHost, clientPort: 2379 + 2 * k, peerPort: 2380 + 2 * k }));
    const initialCluster = members > 1 ? specs.map((s) => `${s.name}=http://${first}:${s.peerPort}`).join(',') : undefined;
    this.etcdMembers = specs.map((s) => new EtcdNode({ ...s, initialCluster, under: this.etcdUnder }));
    this.etcd = this.etcdMembers[0]!;
    await Promise.all(this.etcdMembers.map((m) => m.ready()));
    for (const s of this.servers) s.etcdUrl = specs.map((m) => `http://${s.etcdIp}:${m.clientPort}`).join(',');
    return this.etcd;
  }

  /** Starts etcd (`members` of it) and every server, each with `extra` options. */
  async startAll(members = 1, extra: string[] = []): Promise<void> {
    await this.startEtcd(members);
    await Promise.all(this.servers.map((_, i) => this.startServer(i, extra)));
  }

  /** Starts server `i` (from 0) and waits until it has joined the cluster. */
  async startServer(i: number, extra: string[] = []): Promise<Proc> {
    const s = this.servers[i]!;
    s.proc = s.host.server([
      '--etcd', s.etcdUrl,
      '--cluster-advertise', s.advertise,
      '--cluster-id', s.name,
      '--idle-timeout', String(this.idleTimeout),
      '--keepalive', '2',
      '--status', '127.0.0.1:9100',
      '--log-level', this.serverLogLevel,
      ...extra,
    ]);
    await s.proc.waitFor('cluster_joined', () => true, this.startMs);
    await s.proc.waitFor('listening', () => true, this.startMs);
    return s.proc;
  }

  /** A host for a client, on the bridge (the underlay); clients' addresses are .51 up. */
  clientHost(name: string): Host {
    const host = this.lab.host(name);
    this.port(host, `${UNDERLAY}.${50 + ++this.bridged}`);
    return host;
  }

  /**
   * Makes `name` resolve to `addresses` (in that order) for programs started in `host`
   * from now on: `ip netns exec` puts /etc/netns/NS/hosts in place of /etc/hosts.
   */
  resolve(host: Host, name: string, addresses: string[]): void {
    const dir = `/etc/netns/${host.ns}`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hosts'), addresses.map((a) => `${a} ${name}\n`).join(''));
    const remove = () => rmSync(dir, { recursive: true, force: true });
    const forget = cleanupOnExit(remove);
    this.hostsFiles.push(() => {
      forget();
      remove();
    });
  }

  /** A client on the bridge whose servers are tried from server `home` on, round the others. */
  client(name: string, home: number, opts: { only?: boolean; address?: string } = {}): ClusterClient {
    const host = this.clientHost(name);
    const order = opts.only ? [this.servers[home]!] : [...this.servers.slice(home), ...this.servers.slice(0, home)];
    const list = order.map((s) => `${s.underlay}:${PORT}`).join(',');
    const proc = host.node(name, join(FIXTURES, 'cluster-client.js'), [name, list, ...(opts.address ? [opts.address] : [])]);
    const c: ClusterClient = {
      name,
      host,
      proc,
      readies: () => proc.lines.filter((l) => l.event === 'ready'),
      address: () => String(c.readies().at(-1)?.address ?? ''),
    };
    this.clients.push(c);
    return c;
  }

  /** The server listening on `underlay`. */
  serverAt(label: string): ClusterServer | undefined {
    return this.servers.find((s) => label.startsWith(s.underlay + ':'));
  }

  /** GET a status path of server `s` (on its loopback), as JSON or text. */
  async status(s: ClusterServer, path: string): Promise<string> {
    const r = await s.host.exec([process.execPath, '-e', `fetch('http://127.0.0.1:9100${path}').then(async (r) => process.stdout.write(await r.text()), (e) => { console.error(String(e)); process.exit(1); })`], 10_000);
    if (r.code !== 0) throw new Error(`GET ${path} on ${s.name}: ${r.stderr}`);
    return r.stdout;
  }

  /** The kernel routes of server `s` that simplevpn put there (proto 157). */
  routes(s: ClusterServer): string[] {
    return ip(['-n', s.host.ns, 'route', 'show', 'proto', '157'])
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  async destroy(): Promise<void> {
    try {
      for (const remove of this.hostsFiles) remove();
      await this.lab.destroy();
    } finally {
      await Promise.all(this.etcdMembers.map((m) => m.stop()));
    }
  }
}
