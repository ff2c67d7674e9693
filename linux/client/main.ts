// simplevpn-client: the reference Linux client. The SDK does the protocol; this puts it on a
// real tun device, applies what the server pushes to the interface, and logs. The flags are
// read in args.ts, the changes to the interface worked out in interface-config.ts.
// Exit codes: 0 stopped by SIGINT or SIGTERM, 1 failure (no tun, no privilege),
// 2 bad usage, 3 before the link was ever up, a refusal or a setting that retrying cannot
// fix: the static address or the credentials refused, the server's certificate not
// trusted or not for the name dialled, TLS on a plain port or plain TCP on a TLS port.

import { Client, type DownInfo } from '../../client-sdk/src/client.js';
import { REFUSE_BEARER, REFUSE_IDENTITY, REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, REFUSE_OUTSIDE, TLS_PORT, REFUSE_IN_USE6, REFUSE_OUTSIDE6, formatIPv6, readIpv6Config, OFFLOAD_SUPER, PROTO_EXT, SUPER_HEADER, T_OFFLOAD, eachTlv, u8, T_IPV6, type Tlv } from '../../protocol/index.js';
import { isSuperFrame, superGsoSize } from '../../common/offload/super.js';
import { describeDown } from '../../client-sdk/node/describe.js';
import { nodeClock } from '../../client-sdk/node/clock.js';
import { clientConnect } from './connect.js';
import { sdkCredentials } from './auth.js';
import { createLogger, type Fields, type Logger } from '../../common/log.js';
import { tierUpSooner } from '../../common/tiering.js';
import { VERSION } from '../../common/version.js';
import { disableIpv6, openTun, type TunDevice } from '../tun.js';
import { Coalescer } from '../../common/offload/coalesce.js';
import { addRoute6, deleteRoute6, enableIpv6, removeIpv6 } from '../ipv6.js';
import { type ClientSettings, HELP, parseClientArgs } from './args.js';
import { type Changes, type Configured, interfaceChanges, routeText } from './interface-config.js';
import { TunSender } from './tun-sender.js';
import { NativePath, nativePathEnabled } from './native-path.js';

/** Whether the server's reply declares that it takes (and sends) super-packets. */
function serverTakesSuper(reply: Uint8Array): boolean {
  let yes = false;
  eachTlv(reply, (t, v) => {
    if (t === T_OFFLOAD && v.length === 1) yes = (v[0] & OFFLOAD_SUPER) !== 0;
  });
  return yes;
}

// Refusals that another attempt with the same settings cannot overcome.
const FINAL_REFUSALS = new Set([REFUSE_IN_USE, REFUSE_OUTSIDE, REFUSE_NOT_ALLOWED, REFUSE_AUTH_REQUIRED, REFUSE_AUTH_FAILED, REFUSE_IDENTITY, REFUSE_BEARER, REFUSE_IN_USE6, REFUSE_OUTSIDE6]);
const AUTH_REFUSALS = new Set([REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_IDENTITY, REFUSE_BEARER]);

/**
 * The line to log and exit 3 with when `s` (a 'down' before the link was ever up) cannot
 * be fixed by retrying, or null.
 */
function finalDown(s: DownInfo, o: ClientSettings): { event: string; fields: Fields } | null {
  const server = o.server;
  const reason = describeDown(s, o.timeout);
  if (s.reason === 'refused' && FINAL_REFUSALS.has(s.code) && (s.code !== REFUSE_IN_USE || o.address))
    return {
      event: AUTH_REFUSALS.has(s.code) ? 'auth_refused' : 'address_refused',
      fields: { address: o.address, address6: o.ipv6?.length ? formatIPv6(o.ipv6) : undefined, id: o.credentials?.id, reason },
    };
  if (s.reason === 'certificate')
    return {
      event: 'tls_certificate_rejected',
      fields: {
        server,
        reason,
        fix: `give --ca FILE with the CA that signed the server's certificate (the certificate itself if it is self-signed)${o.tls?.ca ? '' : "; without --ca only the system's trusted roots are accepted"}`,
      },
    };
  if (s.reason === 'certificate_name') {
    const names = s.names?.length ? s.names.join(', ') : '';
    return {
      event: 'tls_certificate_rejected',
      fields: {
        server,
        reason,
        fix: `give --servername NAME with a name the server's certificate carries${names ? ` (${names})` : ''}, or connect with -s to that name`,
      },
    };
  }
  if (s.reason === 'proxy_refused') return { event: 'proxy_refused', fields: { server, proxy: o.proxy?.replace(/\/\/[^@/]*@/, '//***@'), reason } };
  if (s.reason === 'not_tls')
    return { event: 'tls_mismatch', fields: { server, reason: `the server at ${server} does not speak TLS on this port: drop --tls or use its TLS port (${TLS_PORT} by default)`, detail: reason } };
  if (s.reason === 'expects_tls')
    return { event: 'tls_mismatch', fields: { server, reason: `the server at ${server} expects TLS on this port: use --tls`, detail: 'it answered with a TLS alert' } };
  return null;
}

/**
 * Makes the changes on the device and returns what is configured then. A route that cannot
 * be deleted or added is logged and the rest goes on (an added route that failed is not
 * counted as configured: the next assignment tries it again); a failure to set the address
 * is thrown.
 */
function apply(tun: TunDevice, c: Changes, log: Logger): Configured {
  if (c.configure) {
    tun.configure(c.configure);
    log.log('info', 'tun_configured', { name: tun.name, ...c.configure });
  }
  for (const r of c.deleteRoutes) {
    try {
      tun.deleteRoute(r.network, r.prefix);
    } catch (err: any) {
      log.log('warn', 'route_delete_failed', { route: routeText(r), error: err.message });
    }
  }
  const failed = new Set<string>();
  for (const r of c.addRoutes) {
    try {
      tun.addRoute(r.network, r.prefix);
      log.log('info', 'route_added', { route: routeText(r), dev: tun.name });
    } catch (err: any) {
      log.log('warn', 'route_add_failed', { route: routeText(r), error: err.message });
      failed.add(routeText(r));
    }
  }
  return { addressing: c.after.addressing, routes: c.after.routes.filter((r) => !failed.has(routeText(r))), ...apply6(tun.name, c, log) };
}

/**
 * The IPv6 part of the changes: the address (IPv6 is off on the tun until the server grants
 * one) and routes, through iproute2. Failures are logged and left out of what is configured
 * then, so that the next assignment tries them again.
 */
function apply6(name: string, c: Changes, log: Logger): Pick<Configured, 'addressing6' | 'routes6'> {
  const failed = new Set<string>();
  const attempt = (event: string, fields: Fields, fn: () => void): boolean => {
    try {
      fn();
      log.log('info', event, fields);
      return true;
    } catch (err: any) {
      log.log('warn', event + '_failed', { ...fields, error: err.message });
      return false;
    }
  };
  for (const r of c.deleteRoutes6) attempt('route6_deleted', { route: routeText(r), dev: name }, () => deleteRoute6(name, r.network, r.prefix));
  const old = c.removeAddress6;
  if (old) attempt('ipv6_removed', { dev: name, address6: `${old.address}/${old.prefix}` }, () => removeIpv6(name, old.address, old.prefix));
  const a = c.addAddress6;
  if (a && !attempt('ipv6_configured', { dev: name, address6: `${a.address}/${a.prefix}` }, () => enableIpv6(name, a.address, a.prefix))) return { addressing6: null, routes6: [] };
  for (const r of c.addRoutes6) if (!attempt('route6_added', { route: routeText(r), dev: name }, () => addRoute6(name, r.network, r.prefix))) failed.add(routeText(r));
  return { addressing6: c.after.addressing6, routes6: (c.after.routes6 ?? []).filter((r) => !failed.has(routeText(r))) };
}

async function main(argv: string[]): Promise<void> {
  const o = parseClientArgs(argv);
  if (o === 'help') return void process.stdout.write(HELP);
  if (o === 'version') return void process.stdout.write(VERSION + '\n');
  const log = createLogger(o.log);
  // Plain TCP connections can hand their packets to C once the session is up (native-path.ts).
  let nativePath: NativePath | null = null;
  const servers = clientConnect(o, nativePathEnabled() ? (host, port) => (h) => nativePath!.connect(host, port)(h) : undefined);
  // The server of the latest attempt: log lines and final refusals name it.
  let dialled = o.servers[0]!;

  tierUpSooner();
  let client: Client | null = null;
  let sender: TunSender | null = null;
  let tun: TunDevice;
  try {
    tun = openTun({
      name: o.tun,
      onPackets: (packets, count) => sender!.send(packets, count),
      onError: (err) => log.log('error', 'tun_error', { error: err.message }),
      offload: o.offload,
    });
  } catch (err: any) {
    log.log('error', 'tun_failed', { error: err.message, code: err.code });
    process.exit(1);
  }
  sender = new TunSender(tun, () => client!);
  nativePath = new NativePath(
    tun,
    (err) => tunFailed(err),
    (err) => log.log('warn', 'native_path_failed', { error: err.message, fix: 'none needed: the packets take the JavaScript path (SIMPLEVPN_NATIVE_PATH=0 chooses it from the start)' }),
  );
  disableIpv6(tun.name);
  log.log('info', 'tun_created', { name: tun.name, offload: o.offload ? tun.offload : undefined });
  if (tun.offloadError) log.log('warn', 'tun_offload_unavailable', { name: tun.name, reason: tun.offloadError, fix: 'a kernel with TUN offloads (Linux 2.6.27 or later) and a tun device that was not opened elsewhere without them; the tun works without them, slower' });
  // With offloads, the packets of one received chunk are coalesced into super-packets and
  // written once the chunk has been read: a microtask runs right after the socket's callback.
  const coalescer = tun.offload ? new Coalescer(tun) : null;
  let flushQueued = false;
  const flushTun = (): void => {
    flushQueued = false;
    try {
      coalescer!.flush();
    } catch (err: any) {
      tunFailed(err);
    }
  };
  function tunFailed(err: any): void {
    log.log('error', 'tun_failed', { name: tun.name, error: err.message, code: err.code });
    shutdown(1);
  }

  // What is configured on the tun now, so a new assignment changes only what differs.
  let configured: Configured = { addressing: null, routes: [] };
  let everReady = false;

  client = new Client({
    connect: servers.connect,
    credentials: sdkCredentials(o.credentials),
    tun: {
      write: (buf, offset, length) => {
        // false: the device is full or the kernel refused that packet (linux/tun.ts counts
        // which). A throw is the device itself failing (deleted under us): nothing more can
        // be delivered, so the client stops and says why.
        try {
          if (!coalescer) return tun.write(buf, offset, length);
          // A super-packet whole (the server sends them only to a client that declared it takes them).
          if (buf[offset + 9] === PROTO_EXT && isSuperFrame(buf, offset, length))
            return coalescer.pushSuper(buf, offset + SUPER_HEADER, length - SUPER_HEADER, superGsoSize(buf, offset));
          if (!flushQueued) {
            flushQueued = true;
            queueMicrotask(flushTun);
          }
          return coalescer.push(buf, offset, length);
        } catch (err: any) {
          tunFailed(err);
          return false;
        }
      },
    },
    clock: nodeClock,
    address: o.address,
    keepalive: o.keepalive,
    timeout: o.timeout,
    maxBackoff: o.maxBackoff,
    seed: o.seed,
    name: o.name,
    mtu: o.mtu,
    // With offloads: super-packets travel whole when the server says it takes them too.
    tlvs: [...(tun.offload ? [[T_OFFLOAD, u8(OFFLOAD_SUPER)] as Tlv] : []), ...(o.ipv6 ? [[T_IPV6, o.ipv6] as Tlv] : [])],
    onWritable: () => sender!.writable(),
    onState: (s) => {
      if (s.state !== 'ready') sender!.reset();
      if (s.state === 'connecting') {
        dialled = servers.servers[servers.next]!;
        log.log('info', 'connecting', { server: dialled.server, transport: o.transport === 'tcp' ? undefined : o.transport, proxy: dialled.proxy?.replace(/\/\/[^@/]*@/, '//***@') });
      } else if (s.state === 'ready') {
        try {
          configured = apply(tun, interfaceChanges(configured, { ...s, ipv6: readIpv6Config(s.reply) }), log);
        } catch (err: any) {
          log.log('error', 'configure_failed', { error: err.message, code: err.code });
          return shutdown(1);
        }
        everReady = true;
        // A seed server echoes the request, our own TLVs included: only a reply counts.
        tun.superFrames = tun.offload && s.server === 'simplevpn' && serverTakesSuper(s.reply);
        const native = nativePath?.ready(tun.superFrames) ?? false;
        const v6 = configured.addressing6;
        log.log('info', 'ready', {
          address: s.address,
          address6: v6 ? `${v6.address}/${v6.prefix}` : undefined,
          prefix: s.prefix,
          gateway: s.gateway,
          mtu: s.mtu,
          keepalive: s.keepalive,
          routes: s.routes.map(routeText).join(',') || undefined,
          server: s.server,
          via: o.servers.length > 1 ? dialled.server : undefined,
          super_packets: tun.offload ? tun.superFrames : undefined,
          data_path: native ? 'native' : 'js',
        });
      } else if (s.state === 'down') {
        tun.superFrames = false; // the next server may not take them
        // Final: the refusal (or the setting to fix) is the last word, with no retry announced.
        const final = everReady ? null : finalDown(s, { ...o, ...dialled });
        if (final) {
          log.log('error', final.event, final.fields);
          return shutdown(3);
        }
        log.log('warn', 'down', { reason: describeDown(s, o.timeout), code: s.code || undefined, retry_in_s: s.retryIn / 1000 });
      }
    },
  });

  let stopped = false;
  function shutdown(code: number, signal?: string): void {
    if (stopped) return;
    stopped = true;
    if (signal) log.log('info', 'stopping', { signal });
    client?.close();
    tun.close();
    const st = client!.stats;
    const ts = tun.stats;
    // The native path's packets (counted in C) beside the JavaScript path's.
    const ns = tun.nativeStats();
    // Super-packets the native path's coalescer made (splice.c's groSuper).
    const nativeGro = ns.groSuper ?? 0;
    log.log('info', 'stopped', {
      tx_packets: st.txPackets + ns.txPackets,
      rx_packets: st.rxPackets + ns.rxPackets,
      dropped: st.dropped + sender!.dropped + ns.unsplittable,
      tun_dropped: st.rxDropped + ns.tunDropped + ns.tunRejected,
      native_tx_packets: ns.attaches ? ns.txPackets : undefined,
      native_rx_packets: ns.attaches ? ns.rxPackets : undefined,
      native_attaches: ns.attaches || undefined,
      native_rx_control: ns.attaches ? ns.rxControl : undefined,
      connects: st.connects,
      // With offloads: super-packets the kernel handed over (split here), and those made here.
      tun_super_read: tun.offload ? ts.rxSuperPackets + ns.txSuper : undefined,
      tun_super_written: coalescer ? coalescer.stats.superPackets + nativeGro : undefined,
      tun_super_whole: coalescer ? coalescer.stats.passed + ns.rxSuper : undefined,
      tun_unsplittable: ts.rxUnsplittable || undefined,
    });
    process.exitCode = code;
    // Nothing else should be pending; make sure a stuck socket cannot keep us alive.
    setTimeout(() => process.exit(code), 1000).unref();
  }
  process.on('SIGINT', () => shutdown(0, 'SIGINT'));
  process.on('SIGTERM', () => shutdown(0, 'SIGTERM'));
  client.start();
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`simplevpn-client: ${err?.stack ?? err}\n`);
  process.exit(1);
});
