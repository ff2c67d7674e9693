// IPv6 on a tun device (the server's and the Linux client's): turned on only where the
// server grants IPv6 (--subnet6), configured with iproute2, since the native binding sets
// IPv4 addresses and routes only. Each call is synchronous and throws an Error naming the
// command and what it printed.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  } catch (err: any) {
    const said = String(err?.stderr ?? '').trim() || err?.message || String(err);
    throw new Error(`ip ${args.join(' ')} failed: ${said}`);
  }
}

function sysctl(name: string, key: string, value: string): void {
  writeFileSync(`/proc/sys/net/ipv6/conf/${name}/${key}`, value);
}

/**
 * Turns IPv6 on for the device with `address`/`prefix` (Linux adds the route to the
 * prefix). No link-local address, no router advertisements taken, no duplicate address
 * detection: the far end is the VPN server, which gave the address.
 */
export function enableIpv6(name: string, address: string, prefix: number): void {
  try {
    sysctl(name, 'addr_gen_mode', '1');
    sysctl(name, 'accept_ra', '0');
    sysctl(name, 'disable_ipv6', '0');
  } catch (err: any) {
    throw new Error(`cannot turn IPv6 on for ${name} (is IPv6 in the kernel, and are we root?): ${err?.message ?? err}`);
  }
  ip(['-6', 'addr', 'replace', `${address}/${prefix}`, 'dev', name, 'nodad']);
}

/** Takes the IPv6 address off the device again (the server stopped granting it). */
export function removeIpv6(name: string, address: string, prefix: number): void {
  ip(['-6', 'addr', 'del', `${address}/${prefix}`, 'dev', name]);
}

/** A route to network/prefix through the device. */
export function addRoute6(name: string, network: string, prefix: number): void {
  ip(['-6', 'route', 'replace', `${network}/${prefix}`, 'dev', name]);
}

export function deleteRoute6(name: string, network: string, prefix: number): void {
  ip(['-6', 'route', 'del', `${network}/${prefix}`, 'dev', name]);
}
