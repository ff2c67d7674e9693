// The paths the TUN section measures, each set up on the same star (bench/netlab.ts):
// the raw routed path, simplevpn (plain tcp; tls, ws and wss; tcp through an HTTP proxy), OpenVPN 2.6
// over TCP and wireguard-go, every one hub-and-spoke, client 1 -> hub -> client 2. Each returns the address iperf3 and ping aim at
// (client 2's address on that path), the processes whose CPU is sampled, and stop().
// With `beyond` (a star that has the host beyond the hub), the same paths lead from client 1
// alone to that host instead, internet-bound: each VPN routes the beyond subnet into its
// tunnel as a user would set it up, the hub's kernel forwards it on, and the hub's NAT
// (netlab.ts) brings the replies back.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_BIN, type Host, type LogLine, type Proc, SERVER_BIN, nodeFlags } from '../../test/support/lab.js';
import type { Pki as TlsPki } from '../../test/support/security-kit.js';
import { type Beyond, type Star, addressOf, nodeIn, routeDev, sh } from '../netlab.js';
import { run, sleep, waitOutput } from '../util.js';

export interface PathUp {
  /** Client 2's address on this path; with `beyond`, the beyond host's. */
  target: string;
  /** Processes of the path, by role, whose CPU is sampled during the transfer. */
  procs: Record<string, Proc>;
  /** simplevpn only: the server's packet counters so far (its /metrics). */
  counters?: () => Promise<ServerCounters | null>;
  /** simplevpn only, after stop(): packets each client dropped in its life, from its last log line. */
  clientDrops?: () => Record<string, { socket: number; tun: number }>;
  stop(): Promise<void>;
}

export interface ServerCounters {
  received: number;
  sent: number;
  drops: Record<string, number>;
}

/** The server's /metrics, fetched from inside the hub, as counters. */
async function serverCounters(hub: Host, status: string): Promise<ServerCounters | null> {
  const js = `fetch('http://${status}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))`;
  const r = await hub.exec([process.execPath, '-e', js], 10_000);
  if (r.code !== 0) return null;
  const num = (name: string) => Number(new RegExp(`^simplevpn_${name} (\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
  const drops: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^simplevpn_dropped_packets_total\{reason="(\w+)"\} (\d+)/gm)) if (Number(m[2]) > 0) drops[m[1]] = Number(m[2]);
  return { received: num('received_packets_total'), sent: num('sent_packets_total'), drops };
}

/** The host beyond the hub when a path is to lead there, else null (client 2). */
function beyondOf(s: Star, beyond: boolean | undefined): Beyond | null {
  if (!beyond) return null;
  if (!s.beyond) throw new Error('this star has no host beyond the hub (star(mtu, { beyond: true }))');
  return s.beyond;
}

/**
 * Client 1's route to the beyond host must go into a tun device (the tunnel's: client 1 has
 * no other), not its default route via the hub's link: else the path measured would be the raw one.
 */
async function throughTunnel(s: Star, b: Beyond): Promise<void> {
  const dev = await routeDev(s.c1, b.addr);
  const r = await s.c1.exec(['ip', '-j', 'link', 'show', 'type', 'tun']);
  const tuns = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ ifname: string }>).map((l) => l.ifname) : [];
  if (!dev || !tuns.includes(dev)) throw new Error(`client 1 routes ${b.addr} via ${dev ?? 'nothing'}, not through its tunnel (${tuns.join(', ') || 'no tun device'})`);
}

/** The kernel routing between the veth links (and with `beyond`, the hub's NAT): no tunnel at all. */
export async function rawPath(s: Star, beyond?: boolean): Promise<PathUp> {
  const b = beyondOf(s, beyond);
  return { target: b ? b.addr : s.c2Addr, procs: {}, stop: async () => {} };
}

// ---- simplevpn -----------------------------------------------------------------------------

/** How simplevpn's clients reach the server: plain tcp to port 2002 (the default), TLS to
 * port 2003, a WebSocket on either (ws to 2002, wss to 2003), or plain tcp in an HTTP
 * proxy's CONNECT tunnel. tls and ws are the like-for-like references of wss: wss against
 * tls shows what the WebSocket costs over TLS, ws against tcp what it costs without TLS. */
export type OursTransport = 'tcp' | 'tls' | 'ws' | 'wss' | 'tcp-proxy';

export interface OursOptions {
  mtu: number;
  /** Directory for node --cpu-prof output; no profiling when absent. */
  profileDir?: string;
  /** Suffix of the profile file names. */
  tag?: string;
  /** tcp when absent. */
  transport?: OursTransport;
  /** Both clients with --offload: TUN offloads, super-packets through the tunnel. */
  offload?: boolean;
  /** tls and wss: the server's certificate (its SAN holds the hub's addresses) and the CA the clients trust. */
  tls?: TlsPki;
  /** To the host beyond the hub (client 1 alone, the server pushing a route to its subnet). */
  beyond?: boolean;
  /** The server's tun with offloads (its default; false: SIMPLEVPN_TUN_OFFLOAD=0). On when absent. */
  serverOffload?: boolean;
}

/** tinyproxy's port in the hub (the proxy path). */
const PROXY_PORT = 3128;

/** Waits until something listens on TCP `port` in `h`. */
async function listening(h: Host, port: number, p: Proc, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await h.exec(['ss', '-Hltn', `sport = :${port}`], 5000);
    if (r.code === 0 && r.stdout.trim()) return;
    if (p.exitCode !== null || Date.now() > end) throw new Error(`${p.name} does not listen on ${port} in ${h.name}:\n${p.tail()}`);
    await sleep(100);
  }
}

/**
 * tinyproxy in the hub with a throwaway config: CONNECT to the server's plain port only,
 * from the lab's addresses. Its own log level is kept low: it logs every connection.
 */
async function tinyproxyIn(h: Host, dir: string): Promise<Proc> {
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${PROXY_PORT}`,
      'Listen 0.0.0.0',
      'User nobody',
      'Group nogroup',
      // An idle limit well above any pause between the transfers of one bring-up.
      'Timeout 600',
      'MaxClients 20',
      'LogLevel Warning',
      `PidFile "${join(dir, 'tinyproxy.pid')}"`,
      'Allow 127.0.0.1',
      'Allow 198.18.0.0/16',
      'ConnectPort 2002',
    ].join('\n') + '\n',
  );
  const p = h.spawn('tinyproxy', ['tinyproxy', '-d', '-c', conf]);
  await listening(h, PROXY_PORT, p);
  return p;
}

export async function simplevpnPath(s: Star, o: OursOptions): Promise<PathUp> {
  const prof = (role: string) =>
    o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `${role}-${o.tag ?? 'mtu' + o.mtu}.cpuprofile`] : [];
  const transport = o.transport ?? 'tcp';
  const b = beyondOf(s, o.beyond);
  const serverOffload = o.serverOffload ?? true;
  const secure = transport === 'wss' || transport === 'tls';
  if (secure && !o.tls) throw new Error(`the ${transport} path needs certificates`);
  const procs: Record<string, Proc> = {};
  let dir: string | null = null;
  const stop = async () => {
    // Clients first, so the server does not log their loss; SIGTERM lets --cpu-prof write.
    await Promise.all([procs.client1?.stop('SIGTERM', 5000), procs.client2?.stop('SIGTERM', 5000)]);
    await Promise.all([procs.server?.stop('SIGTERM', 8000), procs.proxy?.stop('SIGTERM', 5000)]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const status = '127.0.0.1:9100';
    const tlsFlags = secure ? ['--tls-cert', o.tls!.server.cert, '--tls-key', o.tls!.server.key] : [];
    // The beyond host's subnet is pushed to the clients as a route through the tunnel (--route).
    const route = b ? ['--route', b.subnet] : [];
    const env = serverOffload ? {} : { SIMPLEVPN_TUN_OFFLOAD: '0' };
    procs.server = nodeIn(s.hub, 'simplevpn-server', SERVER_BIN, ['--log-format', 'json', '--mtu', String(o.mtu), '--status', status, ...route, ...tlsFlags], [...nodeFlags(SERVER_BIN), ...prof('server')], 0, env);
    await procs.server.waitFor('listening', () => true, 15_000);
    // Its tun must have the offloads asked for: the kernel may refuse them (then offload_error says why).
    const tunUp = procs.server.lines.find((l) => l.event === 'tun_up');
    if (b && !tunUp) throw new Error(`the server has no tun, so nothing beyond it is reachable:\n${procs.server.tail()}`);
    if (tunUp && Boolean(tunUp.offload) !== serverOffload) throw new Error(`the server's tun has offloads ${tunUp.offload ? 'on' : 'off'}, not ${serverOffload ? 'on' : 'off'}${tunUp.offload_error ? `: ${tunUp.offload_error}` : ''}`);
    const args = ['--log-format', 'json', '--max-backoff', '2', ...(o.offload ? ['--offload'] : [])];
    // How each client dials the hub at `hubAddr` (the address of its own link). Proxy settings
    // from the environment are ignored (--no-proxy, which would also cancel a --proxy).
    let dial = (hubAddr: string) => ['-s', hubAddr, '--no-proxy'];
    if (transport === 'wss') dial = (hubAddr) => ['-s', `wss://${hubAddr}:2003/`, '--ca', o.tls!.ca, '--no-proxy'];
    else if (transport === 'tls') dial = (hubAddr) => ['-s', `tls://${hubAddr}:2003`, '--ca', o.tls!.ca, '--no-proxy'];
    else if (transport === 'ws') dial = (hubAddr) => ['-s', `ws://${hubAddr}:2002/`, '--no-proxy'];
    else if (transport === 'tcp-proxy') {
      dir = tempDir('svpn-bench-proxy-');
      procs.proxy = await tinyproxyIn(s.hub, dir);
      // The server as the proxy reaches it, on the hub's loopback: the clients' own
      // loopback has no server, so a client that comes up came through the proxy.
      dial = (hubAddr) => ['-s', '127.0.0.1', '--proxy', `http://${hubAddr}:${PROXY_PORT}`];
    }
    procs.client1 = nodeIn(s.c1, 'simplevpn-client1', CLIENT_BIN, [...dial(s.hub1), '--name', 'bench-c1', ...args], prof('client1'));
    // Internet-bound, client 1 alone: client 2 is not on the path.
    if (!b) procs.client2 = nodeIn(s.c2, 'simplevpn-client2', CLIENT_BIN, [...dial(s.hub2), '--name', 'bench-c2', ...args], prof('client2'));
    const clients = b ? ['client1'] : ['client1', 'client2'];
    const ready: Record<string, LogLine> = {};
    for (const role of clients) ready[role] = await procs[role].waitFor('ready', () => true, 15_000);
    const last = ready[clients[clients.length - 1]];
    if (Number(last.mtu) !== o.mtu) throw new Error(`the client was configured with MTU ${last.mtu}, not ${o.mtu}`);
    for (const role of clients) {
      // Each client must have connected the way asked for, with the offloads asked for.
      const c = procs[role].lines.find((l) => l.event === 'connecting');
      const got = `${c?.transport ?? 'tcp'}${c?.proxy ? '-proxy' : ''}`;
      if (got !== transport) throw new Error(`${role} connected over ${got}, not ${transport}`);
      if (Boolean(ready[role].super_packets) !== Boolean(o.offload)) throw new Error(`${role} carries super-packets: ${ready[role].super_packets ?? false}, with --offload ${o.offload ? 'given' : 'not given'}`);
    }
    if (b) {
      if (!String(ready.client1.routes ?? '').split(',').includes(b.subnet)) throw new Error(`client 1 was not pushed the route to ${b.subnet}: ${ready.client1.routes ?? 'none'}`);
      await throughTunnel(s, b);
    }
    const clientDrops = () => {
      const out: Record<string, { socket: number; tun: number }> = {};
      for (const role of clients) {
        const l = [...procs[role].lines].reverse().find((x) => x.event === 'stopped');
        if (l) out[role] = { socket: Number(l.dropped ?? 0), tun: Number(l.tun_dropped ?? 0) };
      }
      return out;
    };
    return { target: b ? b.addr : String(last.address), procs, stop, counters: () => serverCounters(s.hub, status), clientDrops };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---- OpenVPN -------------------------------------------------------------------------------

/** A temp dir that is removed at exit too, even when a signal ends the run. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A throwaway PKI: a CA, a server and two client certificates (EC P-256), in a temp dir. */
export class Pki {
  readonly dir = tempDir('svpn-bench-pki-');

  constructor() {
    const d = this.dir;
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    run('openssl', ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=simplevpn-bench-ca'], { cwd: d });
    writeFileSync(join(d, 'server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n');
    writeFileSync(join(d, 'client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n');
    for (const [name, ext] of [
      ['server', 'server.ext'],
      ['c1', 'client.ext'],
      ['c2', 'client.ext'],
    ]) {
      run('openssl', ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=bench-${name}`], { cwd: d });
      run('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext], { cwd: d });
    }
  }

  files(name: string): string[] {
    return ['--ca', join(this.dir, 'ca.crt'), '--cert', join(this.dir, `${name}.crt`), '--key', join(this.dir, `${name}.key`)];
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The data-channel flags of each cipher mode. OpenVPN 2.6 negotiates the cipher from
 * --data-ciphers; 'none' must be listed there (and, for peers without negotiation, in
 * --cipher); --auth none drops the HMAC that a non-AEAD mode would otherwise add.
 */
const OPENVPN_CIPHERS: Record<'aes-256-gcm' | 'none', string[]> = {
  'aes-256-gcm': ['--data-ciphers', 'AES-256-GCM', '--cipher', 'AES-256-GCM'],
  none: ['--data-ciphers', 'none', '--cipher', 'none', '--auth', 'none'],
};

/** Flags both sides get: userspace data channel (no DCO module here), log to stdout. */
const OPENVPN_COMMON = ['--dev', 'tun', '--disable-dco', '--verb', '3', '--tcp-nodelay'];

/** A CIDR as OpenVPN's network and netmask (`--push "route NET MASK"` wants them). */
function netAndMask(cidr: string): [string, string] {
  const [net, bits] = cidr.split('/');
  const n = Number(bits);
  const mask = [0, 1, 2, 3].map((i) => (n >= (i + 1) * 8 ? 255 : n <= i * 8 ? 0 : (0xff << (8 - (n - i * 8))) & 0xff)).join('.');
  return [net, mask];
}

/** With `beyond`, the server pushes a route to its subnet and client 1 alone connects. */
export async function openvpnPath(s: Star, pki: Pki, cipher: keyof typeof OPENVPN_CIPHERS, beyond?: boolean): Promise<PathUp> {
  const b = beyondOf(s, beyond);
  const procs: Record<string, Proc> = {};
  const stop = async () => {
    await Promise.all(Object.values(procs).map((p) => p.stop('SIGTERM', 5000)));
  };
  const c = OPENVPN_CIPHERS[cipher];
  try {
    procs.server = s.hub.spawn('openvpn-server', [
      'openvpn',
      ...OPENVPN_COMMON,
      ...c,
      '--proto',
      'tcp-server',
      '--port',
      '1194',
      '--server',
      '10.2.0.0',
      '255.255.255.0',
      '--topology',
      'subnet',
      '--client-to-client',
      '--dh',
      'none',
      ...(b ? ['--push', `route ${netAndMask(b.subnet).join(' ')}`] : []),
      ...pki.files('server'),
    ]);
    await waitOutput(procs.server, /Initialization Sequence Completed/, 20_000);
    const client = (h: Host, name: 'c1' | 'c2', hubAddr: string) =>
      h.spawn(`openvpn-${name}`, [
        'openvpn',
        '--client',
        ...OPENVPN_COMMON,
        ...c,
        '--proto',
        'tcp-client',
        '--remote',
        hubAddr,
        '1194',
        '--nobind',
        '--remote-cert-tls',
        'server',
        ...pki.files(name),
      ]);
    procs.client1 = client(s.c1, 'c1', s.hub1);
    if (!b) procs.client2 = client(s.c2, 'c2', s.hub2);
    await waitOutput(procs.client1, /Initialization Sequence Completed/, 30_000);
    if (procs.client2) await waitOutput(procs.client2, /Initialization Sequence Completed/, 30_000);
    const target = b ? b.addr : await addressOf(s.c2, 'tun0');
    if (!target) throw new Error('OpenVPN client 2 has no address on tun0');
    if (b) await throughTunnel(s, b);
    // Both sides must have settled on the cipher asked for.
    const want = cipher === 'none' ? /null-cipher|cipher 'none'/i : /AES-256-GCM/;
    const line = (procs.client2 ?? procs.client1).output.find((l) => /Data Channel: (using negotiated )?cipher/.test(l));
    if (line && !want.test(line)) throw new Error(`OpenVPN negotiated another cipher than ${cipher}: ${line}`);
    return { target, procs, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---- wireguard-go --------------------------------------------------------------------------

interface WgKeys {
  priv: string;
  pub: string;
}

function wgKeys(dir: string, name: string): WgKeys & { file: string } {
  const priv = run('wg', ['genkey']).trim();
  const pub = run('wg', ['pubkey'], { input: priv + '\n' }).trim();
  const file = join(dir, `${name}.key`);
  writeFileSync(file, priv + '\n', { mode: 0o600 });
  return { priv, pub, file };
}

/**
 * wireguard-go on each host (userspace, its own tun), the hub forwarding between peers. With
 * `beyond`, client 1 alone, its AllowedIPs holding the beyond subnet and a route to it into
 * its device (wg-quick would add that route from AllowedIPs; `wg` alone does not).
 */
export async function wireguardGoPath(s: Star, beyond?: boolean): Promise<PathUp> {
  const b = beyondOf(s, beyond);
  const dir = tempDir('svpn-bench-wg-');
  const procs: Record<string, Proc> = {};
  const stop = async () => {
    await Promise.all(Object.values(procs).map((p) => p.stop('SIGTERM', 5000)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const kh = wgKeys(dir, 'hub');
    const k1 = wgKeys(dir, 'c1');
    const k2 = wgKeys(dir, 'c2');
    // Interface names differ per host: wireguard-go's control sockets live in the shared
    // /var/run/wireguard, whatever the namespace.
    const env = { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' };
    const up = async (h: Host, role: string, dev: string, addr: string, prefix: number, peers: string[][]) => {
      procs[role] = h.spawn(`wireguard-go-${role}`, ['wireguard-go', '-f', dev], env);
      for (let i = 0; ; i++) {
        if ((await h.exec(['wg', 'show', dev], 5000)).code === 0) break;
        if (i > 100 || procs[role].exitCode !== null) throw new Error(`wireguard-go did not create ${dev} in ${h.name}:\n${procs[role].tail()}`);
        await sleep(50);
      }
      const key = join(dir, `${role === 'server' ? 'hub' : role === 'client1' ? 'c1' : 'c2'}.key`);
      await sh(h, ['wg', 'set', dev, 'private-key', key, 'listen-port', '51820', ...peers.flat()]);
      await sh(h, ['ip', 'addr', 'add', `${addr}/${prefix}`, 'dev', dev]);
      await sh(h, ['ip', 'link', 'set', dev, 'mtu', '1420', 'up']);
    };
    await up(s.hub, 'server', 'wgbh', '10.1.0.1', 24, [
      ['peer', k1.pub, 'allowed-ips', '10.1.0.2/32', 'endpoint', `${s.c1Addr}:51820`],
      ['peer', k2.pub, 'allowed-ips', '10.1.0.3/32', 'endpoint', `${s.c2Addr}:51820`],
    ]);
    await up(s.c1, 'client1', 'wgb1', '10.1.0.2', 24, [['peer', kh.pub, 'allowed-ips', b ? `10.1.0.0/24,${b.subnet}` : '10.1.0.0/24', 'endpoint', `${s.hub1}:51820`]]);
    if (b) {
      await sh(s.c1, ['ip', 'route', 'add', b.subnet, 'dev', 'wgb1']);
      await throughTunnel(s, b);
      return { target: b.addr, procs, stop };
    }
    await up(s.c2, 'client2', 'wgb2', '10.1.0.3', 24, [['peer', kh.pub, 'allowed-ips', '10.1.0.0/24', 'endpoint', `${s.hub2}:51820`]]);
    return { target: '10.1.0.3', procs, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
